// What each instruction means for the stage's state: metadata instructions edit the image config,
// filesystem instructions are resolved (words expanded with the stage's ENV and ARGs) into an action
// the builder executes.
import type { ArgScope } from '../dockerfile/args.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { expandInstruction } from '../dockerfile/expand.js';
import type { CommandLine, Heredoc, StageInstruction } from '../dockerfile/types.js';
import * as mutate from '../image/mutate.js';
import type { ImageConfig, LayerRecord } from '../image/types.js';
import type { PlannedStep } from '../plan/plan.js';
import { isGitSource, isUrl, parseChecksum } from './fetch.js';
import { MountSpecError, parseRunFlags, type RunFlags } from './mounts.js';

export interface StageState {
  config: ImageConfig;
  layers: LayerRecord[];
  name?: string;
  /** the stage's ARGs: in the environment of RUN and in expansions, never in the image */
  args: ArgScope;
  /** whether this stage set CMD itself (ENTRYPOINT resets an inherited CMD only) */
  cmdSet: boolean;
  escape: string;
}

/** An error of one step: it names the Dockerfile and line. */
export class StepError extends DockerfileError {
  static wrap(err: Error, step: PlannedStep): StepError {
    const wrapped = new StepError(err.message, { file: step.file, line: step.line });
    wrapped.cause = err;
    return wrapped;
  }
}

export type FsAction =
  | { action: 'run'; argv: string[]; flags: RunFlags }
  | { action: 'workdir'; path: string }
  | {
      action: 'copy' | 'add';
      sources: string[];
      /** heredoc files (`COPY <<EOF /dest`): their content is part of what the step writes */
      inline: { name: string; content: string }[];
      dest: string;
      from?: string;
      chown?: string;
      chmod?: number;
      /** --exclude patterns */
      excludes: string[];
      /** ADD --checksum, validated (`sha256:<hex>`) */
      checksum?: string;
    };

const DEFAULT_SHELL = ['/bin/sh', '-c'];

function configEnv(config: ImageConfig): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of config.config.Env ?? []) {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
  }
  return env;
}

function expanded(state: StageState, step: PlannedStep): StageInstruction {
  return expandInstruction(step.instruction, state.args.expansionEnv(configEnv(state.config)), state.escape) as StageInstruction;
}

/** The environment of a RUN: the image's Env, plus the stage's ARGs and undeclared proxy args. */
export function runEnv(state: StageState): string[] {
  return [...state.args.runEnv(configEnv(state.config))].map(([name, value]) => `${name}=${value}`);
}

/**
 * RUN heredocs as BuildKit runs them: `RUN <<EOF` alone makes the body the shell script; otherwise
 * the bodies follow the command line inside the script, so the shell feeds them to the command
 * (a quoted delimiter keeps the shell from expanding the body, as in the Dockerfile).
 */
function withHeredocs(command: CommandLine, heredocs: Heredoc[]): CommandLine {
  if (heredocs.length === 0 || command.form === 'exec') return command;
  const text = command.args[0];
  if (heredocs.length === 1 && /^<<-?\s*["']?\w+["']?\s*$/.test(text.trim())) return { form: 'shell', args: [heredocs[0].content] };
  const delimiter = (h: Heredoc): string => (h.expand ? h.name : `'${h.name}'`);
  let script = text.replace(/<<(-?)\s*["']?(\w+)["']?/g, (_m, dash: string, name: string) => {
    const h = heredocs.find((d) => d.name === name);
    return h ? `<<${dash}${delimiter(h)}` : _m;
  });
  for (const h of heredocs) script += `\n${h.content}${h.content.endsWith('\n') ? '' : '\n'}${h.name}`;
  return { form: 'shell', args: [script] };
}

function commandArgv(state: StageState, command: CommandLine): string[] {
  if (command.form === 'exec') return command.args;
  return [...(state.config.config.Shell ?? DEFAULT_SHELL), command.args[0]];
}

/** RUN --mount/--network/--security, with bad values reported on the RUN's line. */
function runFlags(flags: Record<string, string[]>, state: StageState, step: PlannedStep): RunFlags {
  try {
    return parseRunFlags(flags, state.config.config.WorkingDir || '/');
  } catch (err) {
    if (err instanceof MountSpecError) throw new StepError(err.message, { file: step.file, line: step.line });
    throw err;
  }
}

const lastFlag = (flags: Record<string, string[]>, name: string): string | undefined => flags[name]?.[flags[name].length - 1];

export function resolveFsStep(state: StageState, step: PlannedStep): FsAction {
  const ins = expanded(state, step);
  switch (ins.kind) {
    case 'RUN':
      return { action: 'run', argv: commandArgv(state, withHeredocs(ins.command, ins.heredocs)), flags: runFlags(ins.flags, state, step) };
    case 'WORKDIR':
      // resolved as the config will record it (Docker's normalizeWorkdir, in one place: mutate)
      return { action: 'workdir', path: mutate.withWorkingDir(state.config, ins.path).config.WorkingDir ?? '/' };
    case 'COPY':
    case 'ADD': {
      const where = { file: step.file, line: step.line };
      const chmod = lastFlag(ins.flags, 'chmod');
      if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw new StepError(`invalid --chmod=${chmod}: an octal mode is expected`, where);
      if (lastFlag(ins.flags, 'parents') === 'true') throw new StepError(`${ins.kind} --parents is not supported yet`, where);
      if (lastFlag(ins.flags, 'keep-git-dir') === 'true') throw new StepError('ADD --keep-git-dir is not supported: ADD of git repositories is not implemented', where);
      for (const source of ins.sources) {
        if (isUrl(source) && ins.kind === 'COPY') throw new StepError(`${source}: source can't be a URL for COPY (use ADD)`, where);
        if (isGitSource(source)) throw new StepError(`${source}: ADD of git repositories is not supported yet`, where);
      }
      const checksumFlag = lastFlag(ins.flags, 'checksum');
      let checksum: string | undefined;
      if (checksumFlag !== undefined) {
        if (ins.sources.length + ins.heredocs.length !== 1) throw new StepError("checksum can't be specified for multiple sources", where);
        if (!isUrl(ins.sources[0] ?? '')) throw new StepError("checksum can't be specified for non-HTTP sources", where);
        try {
          checksum = parseChecksum(checksumFlag);
        } catch (err) {
          throw new StepError((err as Error).message, where);
        }
      }
      return {
        action: ins.kind === 'COPY' ? 'copy' : 'add',
        sources: ins.sources,
        inline: ins.heredocs.map((h) => ({ name: h.name, content: h.content })),
        dest: ins.dest,
        from: lastFlag(ins.flags, 'from'),
        chown: lastFlag(ins.flags, 'chown'),
        chmod: chmod === undefined ? undefined : parseInt(chmod, 8),
        excludes: ins.flags.exclude ?? [],
        checksum,
      };
    }
    default:
      throw new StepError(`${ins.kind} does not change the filesystem`, { file: step.file, line: step.line });
  }
}

/** Applies a metadata instruction: a new config plus its empty_layer history entry. */
export function applyMetadata(state: StageState, step: PlannedStep, created: string): StageState {
  const ins = expanded(state, step);
  let config = state.config;
  let cmdSet = state.cmdSet;
  switch (ins.kind) {
    case 'ENV':
      for (const { key, value } of ins.env) config = mutate.withEnv(config, key, value);
      break;
    case 'LABEL':
      config = mutate.withLabels(config, Object.fromEntries(ins.labels.map((l) => [l.key, l.value])));
      break;
    case 'MAINTAINER':
      // the image's author field, as Docker and BuildKit set it (not a label)
      config = { ...config, author: ins.maintainer };
      break;
    case 'EXPOSE':
      config = mutate.withExposedPorts(config, ins.ports);
      break;
    case 'VOLUME':
      config = mutate.withVolumes(config, ins.paths);
      break;
    case 'USER':
      config = mutate.withUser(config, ins.user);
      break;
    case 'STOPSIGNAL':
      config = mutate.withStopSignal(config, ins.signal);
      break;
    case 'SHELL':
      config = mutate.withShell(config, ins.shell);
      break;
    case 'CMD':
      config = mutate.withCmd(config, commandArgv(state, ins.command));
      cmdSet = true;
      break;
    case 'ENTRYPOINT':
      config = mutate.withEntrypoint(config, commandArgv(state, ins.command), { resetCmd: !cmdSet });
      break;
    case 'HEALTHCHECK':
      config = mutate.withHealthcheck(config, {
        Test: ins.test,
        Interval: ins.intervalNs,
        Timeout: ins.timeoutNs,
        StartPeriod: ins.startPeriodNs,
        StartInterval: ins.startIntervalNs,
        Retries: ins.retries,
      });
      break;
    case 'ONBUILD':
      config = mutate.withOnBuild(config, [...(config.config.OnBuild ?? []), ins.expression]);
      break;
    case 'ARG':
      // nothing in the image but, as in Docker and BuildKit, an empty_layer history entry
      for (const decl of ins.args) state.args.declare(decl.name, decl.default);
      break;
    default:
      throw new StepError(`${ins.kind} is not a metadata instruction`, { file: step.file, line: step.line });
  }
  config = mutate.appendHistory(config, { created, created_by: step.text });
  return { ...state, config, cmdSet };
}
