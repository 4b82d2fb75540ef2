// The build plan: which stages the target needs, in order, each with its steps, and for every step
// whether it changes the filesystem (RUN, COPY, ADD, WORKDIR: a layer unless its diff is empty) or
// only the image config. Pure: a parsed Dockerfile in, data out.
import { ArgScope, platformArgs, type PlatformSpec } from '../dockerfile/args.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { expandWord } from '../dockerfile/expand.js';
import type { ParsedDockerfile, Stage, StageInstruction } from '../dockerfile/types.js';

export type StepKind = 'fs' | 'meta';

export interface PlannedStep {
  kind: StepKind;
  instruction: StageInstruction;
  /** the instruction as written (continuations joined): progress and history show it */
  text: string;
  file: string;
  line: number;
}

export type StageBase =
  | { kind: 'scratch' }
  | { kind: 'stage'; index: number }
  | { kind: 'image'; ref: string };

export interface PlannedStage {
  index: number;
  name?: string;
  base: StageBase;
  line: number;
  platform?: string;
  steps: PlannedStep[];
  /** COPY --from names of this stage that are stages, by the name or index written */
  stageRefs: Map<string, number>;
}

export interface BuildPlan {
  file: string;
  escape: string;
  syntax?: string;
  /** the stages the target needs, dependencies first; the last one is the target */
  stages: PlannedStage[];
  /** ARGs before the first FROM (defaults expanded, not yet overridden by build args) */
  globalArgs: { name: string; default?: string }[];
  /** values of the predefined platform ARGs (TARGETARCH, BUILDPLATFORM, ...) */
  predefinedArgs: Record<string, string>;
}

const FS_KINDS = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR']);

/** Whether an instruction changes the filesystem (a step the builder executes) or only the config. */
export const stepKind = (instruction: StageInstruction): StepKind => (FS_KINDS.has(instruction.kind) ? 'fs' : 'meta');

export interface PlanOptions {
  target?: string;
  buildArgs?: Map<string, string>;
  platform?: PlatformSpec;
}

/** A stage's ARG scope: build args, the predefined ARGs and the global ARGs of the plan. */
export function stageArgScope(plan: Pick<BuildPlan, 'globalArgs' | 'predefinedArgs'>, buildArgs: Map<string, string>): ArgScope {
  const scope = new ArgScope(buildArgs, plan.predefinedArgs);
  for (const decl of plan.globalArgs) scope.declareGlobal(decl.name, decl.default);
  scope.enterStage();
  return scope;
}

export function makePlan(parsed: ParsedDockerfile, opts: PlanOptions = {}): BuildPlan {
  const buildArgs = opts.buildArgs ?? new Map<string, string>();
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const predefinedArgs = platformArgs(platform, platform);
  const globals = new ArgScope(buildArgs, predefinedArgs);
  const globalArgs: { name: string; default?: string }[] = [];
  for (const arg of parsed.globalArgs) {
    for (const decl of arg.args) {
      const value = decl.default === undefined ? undefined : expandWord(decl.default, globals.forFrom(), parsed.escape);
      globals.declareGlobal(decl.name, value);
      globalArgs.push({ name: decl.name, default: value });
    }
  }
  const fromEnv = globals.forFrom();
  const byName = new Map<string, number>();
  const planned: PlannedStage[] = [];
  for (const stage of parsed.stages) {
    planned.push(planStage(parsed, stage, byName, fromEnv));
    if (stage.name) byName.set(stage.name, stage.index);
  }
  if (planned.length === 0) throw new DockerfileError('no build stage in current context', { file: parsed.file, line: 1 }, parsed.lines);
  const target = resolveTarget(parsed, planned, opts.target);
  const needed = new Set<number>();
  const visit = (index: number): void => {
    if (needed.has(index)) return;
    needed.add(index);
    const stage = planned[index];
    if (stage.base.kind === 'stage') visit(stage.base.index);
    for (const dep of stage.stageRefs.values()) visit(dep);
  };
  visit(target);
  return {
    file: parsed.file,
    escape: parsed.escape,
    syntax: parsed.syntax,
    stages: planned.filter((s) => needed.has(s.index)),
    globalArgs,
    predefinedArgs,
  };
}

function resolveTarget(parsed: ParsedDockerfile, planned: PlannedStage[], target?: string): number {
  if (target === undefined) return planned.length - 1;
  const stage = planned.find((s) => s.name === target.toLowerCase());
  if (!stage) throw new DockerfileError(`target stage "${target}" could not be found`, { file: parsed.file, line: 1 }, parsed.lines);
  return stage.index;
}

/** Names a step reads from: COPY/ADD --from, RUN --mount=...,from=NAME (which BuildKit does not expand). */
function fromRefs(instruction: StageInstruction): string[] {
  if (instruction.kind === 'COPY' || instruction.kind === 'ADD') return instruction.flags.from?.length ? [instruction.flags.from[instruction.flags.from.length - 1]] : [];
  if (instruction.kind !== 'RUN') return [];
  return (instruction.flags.mount ?? []).flatMap((spec) => spec.split(',').map((f) => f.trim()).filter((f) => /^from=/i.test(f)).map((f) => f.slice(5)));
}

function planStage(parsed: ParsedDockerfile, stage: Stage, byName: Map<string, number>, fromEnv: Map<string, string>): PlannedStage {
  const from = stage.from;
  const image = expandWord(from.image, fromEnv, parsed.escape);
  const line = from.loc.startLine;
  let base: StageBase;
  if (image === 'scratch') base = { kind: 'scratch' };
  else if (byName.has(image.toLowerCase())) base = { kind: 'stage', index: byName.get(image.toLowerCase())! };
  else if (image === '') throw new DockerfileError('base name (FROM) should not be blank', { file: parsed.file, line }, parsed.lines);
  else if (stage.name && image.toLowerCase() === stage.name) throw new DockerfileError(`stage ${stage.name} cannot be based on itself`, { file: parsed.file, line }, parsed.lines);
  else base = { kind: 'image', ref: image };

  const stageRefs = new Map<string, number>();
  const steps: PlannedStep[] = stage.instructions.map((instruction) => {
    for (const ref of fromRefs(instruction)) {
      const name = ref.toLowerCase();
      const index = /^\d+$/.test(ref) ? Number(ref) : name === stage.name ? stage.index : byName.get(name);
      if (index !== undefined) {
        if (index >= stage.index) {
          const reason = index === stage.index ? `circular dependency: stage ${ref} copies from itself` : `stage ${ref} is defined after this one`;
          throw new DockerfileError(reason, { file: parsed.file, line: instruction.loc.startLine }, parsed.lines);
        }
        stageRefs.set(ref, index);
      }
    }
    return {
      kind: stepKind(instruction),
      instruction,
      text: instruction.raw,
      file: parsed.file,
      line: instruction.loc.startLine,
    };
  });
  return { index: stage.index, name: stage.name, base, line, platform: from.platform, steps, stageRefs };
}
