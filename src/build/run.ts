// RUN: the command runs in the sandbox over an overlay of the stage's layers; the upperdir it leaves
// is the step's diff.
import fs from 'node:fs';
import path from 'node:path';
import type { ImageConfig } from '../image/types.js';
import { makeInitLayer, RUN_BINDS } from '../overlay/init-layer.js';
import { runInSandbox } from '../overlay/sandbox.js';
import type { LayeredTree } from '../overlay/tree.js';

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
  onOutput: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
}

const TAIL_LINES = 10;

/** Runs the command; returns the upperdir holding its changes. */
export async function runStep(req: RunRequest): Promise<string> {
  const dirs = Object.fromEntries(['upper', 'work', 'mnt', 'init'].map((d) => [d, path.join(req.stepDir, d)]));
  for (const dir of ['upper', 'work', 'mnt']) fs.mkdirSync(dirs[dir]);
  makeInitLayer(dirs.init, req.image);
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
    env: req.env,
    user: cfg.User ?? '',
    cwd: cfg.WorkingDir || '/',
    mkdirs: [cfg.WorkingDir || '/', ...Object.keys(cfg.Volumes ?? {})].filter((d) => d !== '/'),
    binds: RUN_BINDS.filter((f) => fs.existsSync(f)).map((f) => ({ source: f, target: f })),
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
    const how = result.signal ? `was killed by ${result.signal}` : `returned a non-zero code: ${result.exitCode}`;
    throw new RunError(`process "${req.argv.join(' ')}" ${how}`, result.exitCode, tail.slice(-TAIL_LINES));
  }
  return dirs.upper;
}
