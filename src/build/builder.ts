// Walks the build plan: each stage starts from its base (scratch, an earlier stage or a stored image)
// and applies its steps in order. Metadata steps edit the image config; filesystem steps produce an
// upperdir that is committed as a layer (or, when empty, as an empty_layer history entry).
import fs from 'node:fs';
import path from 'node:path';
import { commitLayer } from '../layer/commit.js';
import { readUpperdir } from '../layer/diff.js';
import { buildManifest, serializeManifest } from '../image/manifest.js';
import * as mutate from '../image/mutate.js';
import { MediaType, type Digest, type ImageConfig, type LayerRecord } from '../image/types.js';
import { LayeredTree } from '../overlay/tree.js';
import { UpperWriter } from '../overlay/upper.js';
import type { ProgressSink } from '../progress/events.js';
import { type Store } from '../store/store.js';
import { stageArgScope, type BuildPlan, type PlannedStage, type PlannedStep } from '../plan/plan.js';
import { copyInto } from './copy.js';
import { runStep } from './run.js';
import { resolveChown } from './users.js';
import { applyMetadata, resolveFsStep, runEnv, StepError, type StageState } from './steps.js';

export interface BuildOptions {
  store: Store;
  plan: BuildPlan;
  contextDir: string;
  buildArgs: Map<string, string>;
  platform: { os: string; architecture: string; variant?: string };
  /** seconds since the epoch for created times and the mtime clamp (SOURCE_DATE_EPOCH) */
  epoch: number;
  progress: ProgressSink;
  signal?: AbortSignal;
}

export interface BuildResult {
  manifestDigest: Digest;
  configDigest: Digest;
  layers: LayerRecord[];
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const built = new Map<number, StageState>();
  const total = opts.plan.stages.reduce((n, s) => n + s.steps.length, 0);
  opts.progress({ type: 'build-start', dockerfile: opts.plan.file, steps: total });
  let stepNumber = 0;
  let last: StageState | undefined;
  for (const stage of opts.plan.stages) {
    let state = await baseState(opts, stage, built);
    for (const step of stage.steps) {
      opts.signal?.throwIfAborted();
      stepNumber++;
      state = await runPlannedStep(opts, stage, step, state, stepNumber, total, built);
    }
    built.set(stage.index, state);
    last = state;
  }
  if (!last) throw new StepError('nothing to build', { file: opts.plan.file, line: 1 });
  const image = await writeImage(opts.store, last, opts.epoch);
  const size = last.layers.reduce((n, l) => n + l.size, 0);
  opts.progress({ type: 'build-done', ...image, layers: last.layers.length, size, seconds: (Date.now() - started) / 1000 });
  return { ...image, layers: last.layers };
}

async function baseState(opts: BuildOptions, stage: PlannedStage, built: Map<number, StageState>): Promise<StageState> {
  const fresh = {
    name: stage.name,
    args: stageArgScope(opts.plan, opts.buildArgs),
    cmdSet: false,
    escape: opts.plan.escape,
  };
  const where = { file: opts.plan.file, line: stage.line };
  switch (stage.base.kind) {
    case 'scratch':
      return { ...fresh, config: mutate.emptyConfig(opts.platform), layers: [] };
    case 'stage': {
      const from = built.get(stage.base.index);
      if (!from) throw new StepError(`stage ${stage.base.index} was not built`, where);
      return { ...fresh, config: from.config, layers: from.layers };
    }
    case 'image': {
      const image = await imageLayers(opts.store, stage.base.ref, where);
      return { ...fresh, config: image.config, layers: image.layers };
    }
  }
}

async function imageLayers(store: Store, ref: string, where: { file: string; line: number }): Promise<{ config: ImageConfig; layers: LayerRecord[] }> {
  const image = await store.image(ref).catch(() => {
    throw new StepError(`image not found in the local store: ${ref}`, where);
  });
  const layers: LayerRecord[] = [];
  for (const diffId of image.config.rootfs.diff_ids) layers.push(await store.layerRecord(diffId));
  return { config: image.config, layers };
}

function lowerDirs(store: Store, layers: LayerRecord[]): string[] {
  return layers.map((l) => path.join(store.layerDir(l.diffId), 'diff')).reverse();
}

async function runPlannedStep(
  opts: BuildOptions, stage: PlannedStage, step: PlannedStep, state: StageState,
  number: number, total: number, built: Map<number, StageState>,
): Promise<StageState> {
  const started = Date.now();
  const { store, progress } = opts;
  progress({ type: 'step-start', step: number, total, stage: stage.name ?? String(stage.index), instruction: step.text, line: step.line });
  const created = isoTime(opts.epoch);
  if (step.kind === 'meta') {
    const next = applyMetadata(state, step, created);
    progress({ type: 'step-done', step: number, emptyLayer: true, cached: false, seconds: (Date.now() - started) / 1000 });
    return next;
  }
  const stepDir = await store.makeTemp('step');
  try {
    const lowers = lowerDirs(store, state.layers);
    let upper: string;
    const resolved = resolveFsStep(state, step);
    if (resolved.action === 'run') {
      upper = await runStep({
        storeRoot: store.root,
        stepDir,
        lowerLinks: state.layers.map((l) => store.shortLink(l.diffId)).reverse(),
        image: new LayeredTree(lowers),
        argv: resolved.argv,
        config: state.config,
        env: runEnv(state),
        onOutput: (chunk, stream) => progress({ type: 'step-output', step: number, stream, text: chunk.toString('utf8') }),
        signal: opts.signal,
      });
    } else {
      upper = path.join(stepDir, 'upper');
      fs.mkdirSync(upper);
      const writer = new UpperWriter(upper, lowers);
      if (resolved.action === 'workdir') {
        writer.mkdir(writer.resolve(resolved.path));
      } else {
        const fromTree = resolved.from === undefined
          ? new LayeredTree([path.resolve(opts.contextDir)])
          : new LayeredTree(lowerDirs(store, await sourceLayers(store, resolved.from, stage, built, step)));
        await copyInto(writer, {
          sources: resolved.sources,
          dest: resolved.dest,
          workdir: state.config.config.WorkingDir ?? '/',
          from: fromTree,
          fromLabel: resolved.from === undefined ? 'build context' : `stage ${resolved.from}`,
          chown: resolved.chown ? resolveChown(resolved.chown, writer.merged) : undefined,
          chmod: resolved.chmod,
          extractArchives: resolved.action === 'add',
        });
      }
    }
    const blobFile = path.join(stepDir, 'layer.tar.gz');
    const committed = await commitLayer(readUpperdir(upper, { clampMtime: opts.epoch }), blobFile);
    let next: StageState;
    let layer: LayerRecord | undefined;
    if (committed.entries === 0) {
      next = { ...state, config: mutate.appendHistory(state.config, { created, created_by: step.text }) };
    } else {
      layer = { digest: committed.digest, diffId: committed.diffId, size: committed.size, mediaType: MediaType.ociLayerGzip };
      await store.adoptBlob(blobFile, layer.digest);
      await store.addLayer(layer, upper);
      next = {
        ...state,
        layers: [...state.layers, layer],
        config: mutate.appendLayer(state.config, layer.diffId, { created, created_by: step.text }),
      };
    }
    if (resolved.action === 'workdir') next = { ...next, config: mutate.withWorkingDir(next.config, resolved.path) };
    progress({
      type: 'step-done', step: number, cached: false, emptyLayer: !layer,
      layer: layer && { digest: layer.digest, size: layer.size }, seconds: (Date.now() - started) / 1000,
    });
    return next;
  } catch (err) {
    progress({ type: 'step-error', step: number, message: (err as Error).message });
    throw err instanceof StepError ? err : StepError.wrap(err as Error, step);
  } finally {
    await fs.promises.rm(stepDir, { recursive: true, force: true });
  }
}

/** The layers COPY --from reads: an earlier stage's, or else a stored image's. */
async function sourceLayers(store: Store, from: string, stage: PlannedStage, built: Map<number, StageState>, step: PlannedStep): Promise<LayerRecord[]> {
  const index = stage.stageRefs.get(from);
  if (index === undefined) return (await imageLayers(store, from, step)).layers;
  const state = built.get(index);
  if (!state) throw new StepError(`COPY --from=${from}: stage ${index} was not built`, step);
  return state.layers;
}

export const isoTime = (epoch: number): string => new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');

async function writeImage(store: Store, state: StageState, epoch: number): Promise<{ manifestDigest: Digest; configDigest: Digest }> {
  const config: ImageConfig = mutate.withCreated(state.config, isoTime(epoch));
  const configBytes = mutate.serializeConfig(config);
  const configDigest = await store.putBlob(configBytes);
  const manifest = buildManifest({ mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length }, state.layers);
  const manifestBytes = serializeManifest(manifest);
  const manifestDigest = await store.putBlob(manifestBytes);
  return { manifestDigest, configDigest };
}
