// One `strata build`: read and plan the Dockerfile, build the target into the store, tag it and
// write the requested outputs. Everything the CLI's build command does, without the CLI.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDockerfile } from '../dockerfile/parse.js';
import { parseImageName } from '../image/names.js';
import { serializeManifest } from '../image/manifest.js';
import { serializeConfig, withLabels } from '../image/mutate.js';
import type { ImageSource } from '../image/source.js';
import { MediaType } from '../image/types.js';
import { makePlan, type BuildPlan } from '../plan/plan.js';
import type { BuildEvent, ProgressSink } from '../progress/events.js';
import { requireRoot } from '../store/errors.js';
import { Store } from '../store/store.js';
import { writeDockerArchive } from '../transport/docker-archive.js';
import { writeOciArchive } from '../transport/oci-archive.js';
import { writeOciDir } from '../transport/oci-dir.js';
import { writeRootfsDir, writeRootfsTar } from '../transport/rootfs.js';
import type { RegistryOptions } from '../transport/registry/client.js';
import { cacheImage, openLocalCache, openRegistryCache, pushRegistryCache, writeLocalCache, type CacheImport, type CacheSpec } from '../transport/cache.js';
import { pushToDestination } from '../transport/registry/push.js';
import type { BaseImageOptions } from './base-image.js';
import { build, type BuildResult } from './builder.js';
import { openContext } from './context.js';

/** Where an image goes after the build, buildx's exporters: `oci` and `docker` archives, `tar` (the
 * flattened root filesystem) to a file or to stdout ("-"); `oci-dir` and `local` (the root
 * filesystem unpacked) into a directory. */
export type OutputSpec = { type: 'oci' | 'docker' | 'oci-dir' | 'local' | 'tar'; dest: string };

export class UsageError extends Error {}

const OUTPUT_TYPES: readonly OutputSpec['type'][] = ['oci', 'docker', 'tar', 'local', 'oci-dir'];
const DIRECTORY_OUTPUTS: readonly OutputSpec['type'][] = ['oci-dir', 'local'];

/** `--output` as buildx reads it: `type=oci,dest=out.tar`, `-` (the rootfs tar on stdout) or a bare
 * directory (`type=local,dest=DIR`). */
export function parseOutput(spec: string): OutputSpec {
  if (spec === '-') return { type: 'tar', dest: '-' };
  if (!spec.includes('=')) {
    if (spec === '') throw new UsageError('--output: empty value; use type=oci,dest=out.tar, a directory, or - for stdout');
    return { type: 'local', dest: spec };
  }
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`--output ${spec}: expected key=value pairs such as type=oci,dest=out.tar`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  for (const key of fields.keys()) {
    if (key !== 'type' && key !== 'dest') throw new UsageError(`--output ${spec}: unsupported key ${key} (strata reads type= and dest=)`);
  }
  const type = fields.get('type') as OutputSpec['type'] | undefined;
  const dest = fields.get('dest');
  if (!type || !OUTPUT_TYPES.includes(type)) throw new UsageError(`--output ${spec}: type must be one of ${OUTPUT_TYPES.join(', ')}`);
  if (!dest) throw new UsageError(`--output ${spec}: dest= is required`);
  if (dest === '-' && DIRECTORY_OUTPUTS.includes(type)) throw new UsageError(`--output ${spec}: a ${type} output is a directory and cannot go to stdout`);
  return { type, dest };
}

/** At most one output may write to stdout, which then carries nothing else. */
export function checkOutputs(outputs: OutputSpec[]): OutputSpec[] {
  if (outputs.filter((o) => o.dest === '-').length > 1) throw new UsageError('--output: only one output can go to stdout (dest=-)');
  return outputs;
}

/** `--platform`: strata builds for the host only (no emulation); `local` means the host. */
export function checkPlatforms(values: string[]): string[] {
  const host = hostPlatform();
  const hostName = `${host.os}/${host.architecture}`;
  const platforms = values.flatMap((v) => v.split(',')).map((v) => v.trim());
  for (const value of platforms) {
    const [osName, arch, variant] = value.split('/');
    const matches = value === 'local' || (osName === host.os && arch === host.architecture && (variant === undefined || (arch === 'arm64' && variant === 'v8')));
    if (!matches) throw new UsageError(`--platform ${value}: strata builds only for the host platform ${hostName} (no emulation)`);
  }
  return platforms;
}

export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[os.arch()] ?? os.arch() };
}

/** SOURCE_DATE_EPOCH when set, else 0: the same inputs give the same digest (see README). */
export function buildEpoch(): number {
  const value = process.env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return 0;
  if (!/^\d+$/.test(value)) throw new UsageError(`SOURCE_DATE_EPOCH must be a number of seconds, got ${value}`);
  return Number(value);
}

async function writeOutput(store: Store, image: ImageSource, output: OutputSpec, tags: string[]): Promise<void> {
  switch (output.type) {
    case 'oci':
      return writeOciArchive(image, output.dest, tags);
    case 'docker':
      return writeDockerArchive(image, output.dest, tags);
    case 'oci-dir':
      return writeOciDir(image, output.dest, tags);
    case 'local':
      return writeRootfsDir(image, output.dest);
    case 'tar':
      return writeRootfsTar(image, output.dest, await store.makeTemp('rootfs'));
  }
}

export interface PlanRequest {
  contextDir: string;
  dockerfile?: string;
  target?: string;
  buildArgs?: Map<string, string>;
}

export function loadPlan(req: PlanRequest): { plan: BuildPlan; lines: string[]; dockerfile: string } {
  const contextDir = path.resolve(req.contextDir);
  if (!fs.statSync(contextDir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`build context ${req.contextDir} is not a directory`);
  const dockerfile = req.dockerfile ?? path.join(req.contextDir, 'Dockerfile');
  let text: string;
  try {
    text = fs.readFileSync(dockerfile, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read Dockerfile ${dockerfile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const display = path.relative(process.cwd(), dockerfile) || dockerfile;
  const parsed = parseDockerfile(text, display);
  const plan = makePlan(parsed, { target: req.target, buildArgs: req.buildArgs, platform: hostPlatform() });
  return { plan, lines: parsed.lines, dockerfile: display };
}

export interface BuildRequest extends PlanRequest {
  root: string;
  tags: string[];
  outputs: OutputSpec[];
  progress: ProgressSink;
  signal?: AbortSignal;
  /** `--no-cache`: run every step even when the step cache has its result */
  noCache?: boolean;
  /** `--no-cache-filter`: stages (name or index) whose steps always run */
  noCacheFilter?: string[];
  /** `--label`: added to the final image's config (no history entry, as buildx) */
  labels?: Record<string, string>;
  /** `--metadata-file`: buildx's JSON about the result, plus strata's layer list */
  metadataFile?: string;
  /** `--cache-from`: exported step caches to reuse */
  cacheFrom?: CacheSpec[];
  /** `--cache-to`: where to export the step cache of this build */
  cacheTo?: CacheSpec[];
  /** `--secret`: values by id for RUN --mount=type=secret */
  secrets?: Map<string, Buffer>;
  /** `--push`: push the image to every `-t` name's registry after tagging */
  push?: boolean;
  /** `--creds`, `--insecure-registry`, `--cert-dir`, `--pull`: for FROM pulls and --push */
  registry?: Omit<BaseImageOptions, 'platform' | 'progress'>;
}

export async function runBuild(req: BuildRequest): Promise<BuildResult> {
  for (const tag of req.tags) parseImageName(tag); // a bad name fails before anything is built
  if (req.push && req.tags.length === 0) throw new UsageError('--push needs at least one -t NAME to push to');
  checkOutputs(req.outputs);
  const { plan, dockerfile } = loadPlan(req);
  if (plan.syntax) req.progress({ type: 'note', message: `# syntax=${plan.syntax} is ignored: strata has one built-in Dockerfile frontend` });
  requireRoot('build');
  const store = await Store.open(req.root);
  const lease = await store.lease(); // what this build uses stays until it ends (or dies), whatever prune runs
  // The summary (build-done) comes last, with the digest of the image as labelled and exported.
  let summary: Extract<BuildEvent, { type: 'build-done' }> | undefined;
  const built = await build({
    store,
    plan,
    contextDir: req.contextDir,
    context: await openContext(req.contextDir, dockerfile),
    buildArgs: req.buildArgs ?? new Map(),
    platform: hostPlatform(),
    epoch: buildEpoch(),
    progress: (event) => (event.type === 'build-done' ? (summary = event) : req.progress(event)),
    signal: req.signal,
    noCache: req.noCache,
    noCacheFilter: req.noCacheFilter,
    cacheFrom: await openCaches(req.cacheFrom ?? [], req.registry ?? {}, req.progress),
    secrets: req.secrets,
    baseImages: req.registry,
  });
  for (const spec of req.cacheTo ?? []) await exportCache(store, spec, built, req.registry ?? {}, req.progress);
  const result = req.labels && Object.keys(req.labels).length > 0 ? await withImageLabels(store, built, req.labels) : built;
  const image = await store.image(result.manifestDigest);
  for (const output of req.outputs) {
    await writeOutput(store, image, output, req.tags).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot write the ${output.type} output to ${output.dest}: ${err.code ?? err.message}`);
    });
    req.progress({ type: 'export', kind: output.type, dest: output.dest });
  }
  // Tags last: a build whose output failed leaves no name pointing at it.
  for (const tag of req.tags) await store.tag(tag, result.manifestDigest);
  for (const tag of req.push ? req.tags : []) {
    const pushed = await pushToDestination(image, tag, { ...req.registry, storeRoot: store.root, name: tag, progress: req.progress });
    req.progress({ type: 'note', message: `pushed ${tag} ${pushed}` });
  }
  if (req.metadataFile) writeMetadataFile(req.metadataFile, image, result, req.tags);
  if (summary) req.progress({ ...summary, manifestDigest: result.manifestDigest, configDigest: result.configDigest });
  await lease.release();
  return result;
}

/** The --cache-from sources that exist; a missing one is the normal first run, noted, not an error. */
async function openCaches(specs: CacheSpec[], registry: RegistryOptions, progress: ProgressSink): Promise<CacheImport[]> {
  const opened: CacheImport[] = [];
  for (const spec of specs) {
    const source = spec.type === 'local' ? await openLocalCache(spec.dir) : await openRegistryCache(spec.ref, registry, hostPlatform());
    if (source) opened.push(source);
    else progress({ type: 'note', message: `cache ${spec.type === 'local' ? spec.dir : spec.ref} not found; building without it` });
  }
  return opened;
}

/** --cache-to: mode=min exports the final stage's steps, mode=max every stage's. */
async function exportCache(store: Store, spec: CacheSpec, built: BuildResult, registry: RegistryOptions, progress: ProgressSink): Promise<void> {
  const records = built.cacheRecords.filter((r) => spec.mode === 'max' || r.target);
  const image = cacheImage(records, (digest) => store.blobPath(digest));
  if (spec.type === 'local') await writeLocalCache(spec.dir, image);
  else {
    await store.putBlob(image.configBytes); // pushes read every blob from a file
    await pushRegistryCache(image, spec.ref, { ...registry, progress });
  }
  progress({ type: 'export', kind: `cache (${records.length} steps)`, dest: spec.type === 'local' ? spec.dir : spec.ref });
}

/** The built image with labels added to its config: new config and manifest blobs in the store. */
async function withImageLabels(store: Store, built: BuildResult, labels: Record<string, string>): Promise<BuildResult> {
  const image = await store.image(built.manifestDigest);
  const configBytes = serializeConfig(withLabels(image.config, labels));
  const configDigest = await store.putBlob(configBytes);
  const manifest = { ...image.manifest, config: { ...image.manifest.config, digest: configDigest, size: configBytes.length } };
  const manifestDigest = await store.putBlob(serializeManifest(manifest));
  return { ...built, manifestDigest, configDigest };
}

/** The keys buildx writes (`containerimage.digest`, `containerimage.config.digest`,
 * `containerimage.descriptor`, `image.name`) and strata's `layers`. */
function writeMetadataFile(file: string, image: ImageSource, result: BuildResult, tags: string[]): void {
  const metadata: Record<string, unknown> = {
    'containerimage.config.digest': result.configDigest,
    'containerimage.descriptor': { mediaType: image.manifest.mediaType ?? MediaType.ociManifest, digest: result.manifestDigest, size: image.manifestBytes.length },
    'containerimage.digest': result.manifestDigest,
    ...(tags.length > 0 ? { 'image.name': tags.join(',') } : {}),
    layers: result.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffId: l.diffId })),
  };
  try {
    fs.writeFileSync(file, `${JSON.stringify(metadata, null, 2)}\n`);
  } catch (err) {
    throw new Error(`cannot write the metadata file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
