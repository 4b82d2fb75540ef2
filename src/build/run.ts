// RUN: the command runs in the sandbox over an overlay of the stage's layers, with its --mount mounts
// (build/mounts.ts) and --network; the upperdir it leaves is the step's diff.
import fs from 'node:fs';
import path from 'node:path';
import type { ImageConfig } from '../image/types.js';
import { makeInitLayer, RUN_BINDS } from '../overlay/init-layer.js';
import { runInSandbox } from '../overlay/sandbox.js';
import { sandboxSetupError } from '../store/errors.js';
import type { LayeredTree } from '../overlay/tree.js';
import { planMounts, type RunFlags, type SourceLayers } from './mounts.js';

export class RunError extends Error {
  constructor(message: string, readonly exitCode: number, readonly outputTail: string[]) {
    super(message);
  }
}

export interface RunRequest {
  storeRoot: string;
  /** the step's private temp dir: upper/, work/, mnt/ and init/ are made in it */
  stepDir: string;
  /** stored layer diffs, top first, as links relative to storeRoot */
  lowerLinks: string[];
  image: LayeredTree;
  argv: string[];
  config: ImageConfig;
  /** the command's environment: the image's Env plus the build args this step sees */
  env: string[];
  /** RUN --mount and --network (none: no flags) */
  flags?: RunFlags;
  /** where bind mounts without from= read */
  contextDir: string;
  /** layers of a stage or a stored image named by a mount's from= */
  fromLayers: (from: string) => Promise<SourceLayers>;
  /** the build's secrets by id (strata build --secret) */
  secrets?: Map<string, Buffer>;
  onOutput: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
}

const TAIL_LINES = 10;

/** Runs the command; returns the upperdir holding its changes. */
export async function runStep(req: RunRequest): Promise<string> {
  const dirs = Object.fromEntries(['upper', 'work', 'mnt', 'init'].map((d) => [d, path.join(req.stepDir, d)]));
  for (const dir of ['upper', 'work', 'mnt', 'secrets']) fs.mkdirSync(path.join(req.stepDir, dir));
  const mounts = await planMounts(req.flags?.mounts ?? [], {
    storeRoot: req.storeRoot,
    stepDir: req.stepDir,
    contextDir: req.contextDir,
    image: req.image,
    fromLayers: req.fromLayers,
    secrets: req.secrets ?? new Map(),
  });
  makeInitLayer(dirs.init, req.image, mounts.mountpoints);
  const cfg = req.config.config;
  const tail: string[] = [];
  let partial = '';
  const result = await runInSandbox({
    storeRoot: req.storeRoot,
    lowers: [path.relative(req.storeRoot, dirs.init), ...req.lowerLinks],
    upper: dirs.upper,
    work: dirs.work,
    mountpoint: dirs.mnt,
    argv: req.argv,
    env: [...req.env, ...mounts.env],
    user: cfg.User ?? '',
    cwd: cfg.WorkingDir || '/',
    mkdirs: [cfg.WorkingDir || '/', ...Object.keys(cfg.Volumes ?? {})].filter((d) => d !== '/'),
    binds: RUN_BINDS.filter((f) => fs.existsSync(f)).map((f) => ({ source: f, target: f })),
    mounts: mounts.mounts,
    secretsDir: path.join(req.stepDir, 'secrets'),
    network: req.flags?.network === 'none' ? 'none' : 'host',
    onOutput: (chunk, stream) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      tail.push(...lines);
      tail.splice(0, Math.max(0, tail.length - TAIL_LINES));
      req.onOutput(chunk, stream);
    },
    signal: req.signal,
  });
  if (partial) tail.push(partial);
  if (result.exitCode !== 0 || result.signal) {
    const setup = result.signal ? undefined : sandboxSetupError(tail, dirs.mnt, req.storeRoot);
    if (setup) throw setup;
    const how = result.signal ? `was killed by ${result.signal}` : `returned a non-zero code: ${result.exitCode}`;
    throw new RunError(`process "${req.argv.join(' ')}" ${how}`, result.exitCode, tail.slice(-TAIL_LINES));
  }
  return dirs.upper;
}
