// One `strata build`: read and plan the Dockerfile, build the target into the store, tag it and
// write the requested outputs. Everything the CLI's build command does, without the CLI.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDockerfile } from '../dockerfile/parse.js';
import { parseImageName } from '../image/names.js';
import type { ImageSource } from '../image/source.js';
import { makePlan, type BuildPlan } from '../plan/plan.js';
import type { ProgressSink } from '../progress/events.js';
import { Store } from '../store/store.js';
import { writeDockerArchive } from '../transport/docker-archive.js';
import { writeOciArchive } from '../transport/oci-archive.js';
import { writeOciDir } from '../transport/oci-dir.js';
import { build, type BuildResult } from './builder.js';

export type OutputSpec = { type: 'oci' | 'docker' | 'oci-dir'; dest: string };

export class UsageError extends Error {}

/** `type=oci,dest=out.tar` as buildx writes it. */
export function parseOutput(spec: string): OutputSpec {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new UsageError(`--output ${spec}: expected key=value pairs such as type=oci,dest=out.tar`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const type = fields.get('type');
  const dest = fields.get('dest');
  if (type !== 'oci' && type !== 'docker' && type !== 'oci-dir') throw new UsageError(`--output ${spec}: type must be oci, docker or oci-dir`);
  if (!dest) throw new UsageError(`--output ${spec}: dest= is required`);
  return { type, dest };
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

function writeOutput(image: ImageSource, output: OutputSpec, tags: string[]): Promise<void> {
  if (output.type === 'oci') return writeOciArchive(image, output.dest, tags);
  if (output.type === 'docker') return writeDockerArchive(image, output.dest, tags);
  return writeOciDir(image, output.dest, tags);
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
}

export async function runBuild(req: BuildRequest): Promise<BuildResult> {
  for (const tag of req.tags) parseImageName(tag); // a bad name fails before anything is built
  const { plan } = loadPlan(req);
  if (plan.syntax) req.progress({ type: 'note', message: `# syntax=${plan.syntax} is ignored: strata has one built-in Dockerfile frontend` });
  const store = await Store.open(req.root);
  const result = await build({
    store,
    plan,
    contextDir: req.contextDir,
    buildArgs: req.buildArgs ?? new Map(),
    platform: hostPlatform(),
    epoch: buildEpoch(),
    progress: req.progress,
    signal: req.signal,
  });
  const image = await store.image(result.manifestDigest);
  for (const output of req.outputs) {
    await writeOutput(image, output, req.tags).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`cannot write the ${output.type} output to ${output.dest}: ${err.code ?? err.message}`);
    });
    req.progress({ type: 'export', kind: output.type, dest: output.dest });
  }
  // Tags last: a build whose output failed leaves no name pointing at it.
  for (const tag of req.tags) await store.tag(tag, result.manifestDigest);
  return result;
}
