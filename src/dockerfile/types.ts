/**
 * Typed result of parsing a Dockerfile (see parse.ts).
 *
 * Words are kept as written (quotes, `$VAR` and escapes intact): expansion
 * needs the build-time environment, so it is done later by expandInstruction()
 * in expand.ts, which returns a copy of the instruction with final values.
 *
 * Exports: SourceLocation, Heredoc, CommandLine, KeyValue, ArgDeclaration,
 * Flags, one interface per instruction, the unions Instruction,
 * StageInstruction and OnbuildTrigger, Stage and ParsedDockerfile.
 */

/** Where an instruction is: 1-based inclusive lines, continuation and heredoc lines included. */
export interface SourceLocation {
  file: string;
  startLine: number;
  endLine: number;
}

/** A here-document body attached to RUN, COPY or ADD. */
export interface Heredoc {
  /** Delimiter after quote removal, e.g. `EOF` for `<<'EOF'`. */
  name: string;
  /** Body with its line endings; for `<<-` leading tabs are already stripped. */
  content: string;
  /** False when any part of the delimiter was quoted (`<<'EOF'`, `<<"EOF"`). */
  expand: boolean;
  /** True for `<<-`. */
  chomp: boolean;
}

/**
 * A command as written: exec form is the JSON array, shell form is the single
 * argument text (`args` has exactly one element) to be passed to the shell.
 */
export interface CommandLine {
  form: 'exec' | 'shell';
  args: string[];
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface ArgDeclaration {
  name: string;
  /** Absent for `ARG NAME`; the empty string for `ARG NAME=`. */
  default?: string;
}

/**
 * Builder flags by name without the leading `--`, in order of appearance.
 * Boolean flags hold `"true"` or `"false"`; repeatable flags (`--mount`,
 * `--exclude`) hold one entry per occurrence.
 */
export type Flags = Record<string, string[]>;

interface InstructionBase<K extends string> {
  /** Upper-case keyword. */
  kind: K;
  loc: SourceLocation;
  /** The instruction text joined over continuation lines, without heredoc bodies. */
  raw: string;
}

export interface FromInstruction extends InstructionBase<'FROM'> {
  image: string;
  platform?: string;
  /** Lower-cased name from `AS name`. */
  stageName?: string;
}

export interface RunInstruction extends InstructionBase<'RUN'> {
  command: CommandLine;
  flags: Flags;
  heredocs: Heredoc[];
}

export interface CmdInstruction extends InstructionBase<'CMD'> {
  command: CommandLine;
}

export interface EntrypointInstruction extends InstructionBase<'ENTRYPOINT'> {
  command: CommandLine;
}

export interface LabelInstruction extends InstructionBase<'LABEL'> {
  labels: KeyValue[];
}

export interface MaintainerInstruction extends InstructionBase<'MAINTAINER'> {
  maintainer: string;
}

export interface ExposeInstruction extends InstructionBase<'EXPOSE'> {
  ports: string[];
}

export interface EnvInstruction extends InstructionBase<'ENV'> {
  env: KeyValue[];
}

interface FileTransfer {
  /** Source paths or URLs; heredoc sources are in `heredocs` instead. */
  sources: string[];
  dest: string;
  flags: Flags;
  /** Inline files (`COPY <<EOF /dest`), named by their delimiter. */
  heredocs: Heredoc[];
}

export interface AddInstruction extends InstructionBase<'ADD'>, FileTransfer {}

export interface CopyInstruction extends InstructionBase<'COPY'>, FileTransfer {}

export interface VolumeInstruction extends InstructionBase<'VOLUME'> {
  paths: string[];
}

export interface UserInstruction extends InstructionBase<'USER'> {
  user: string;
}

export interface WorkdirInstruction extends InstructionBase<'WORKDIR'> {
  path: string;
}

export interface ArgInstruction extends InstructionBase<'ARG'> {
  args: ArgDeclaration[];
}

export interface OnbuildInstruction extends InstructionBase<'ONBUILD'> {
  trigger: OnbuildTrigger;
  /** Trigger text as stored in the image config (heredoc bodies appended, as BuildKit does). */
  expression: string;
}

export interface StopsignalInstruction extends InstructionBase<'STOPSIGNAL'> {
  signal: string;
}

export interface HealthcheckInstruction extends InstructionBase<'HEALTHCHECK'> {
  /** `["NONE"]`, `["CMD", ...args]` (exec form) or `["CMD-SHELL", command]`. */
  test: string[];
  /** Durations in nanoseconds, as in the image config; absent when not given. */
  intervalNs?: number;
  timeoutNs?: number;
  startPeriodNs?: number;
  startIntervalNs?: number;
  retries?: number;
}

export interface ShellInstruction extends InstructionBase<'SHELL'> {
  shell: string[];
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | LabelInstruction
  | MaintainerInstruction
  | ExposeInstruction
  | EnvInstruction
  | AddInstruction
  | CopyInstruction
  | EntrypointInstruction
  | VolumeInstruction
  | UserInstruction
  | WorkdirInstruction
  | ArgInstruction
  | OnbuildInstruction
  | StopsignalInstruction
  | HealthcheckInstruction
  | ShellInstruction;

/** Instructions that can appear inside a stage (FROM starts a stage instead). */
export type StageInstruction = Exclude<Instruction, FromInstruction>;

/** Instructions allowed after ONBUILD. */
export type OnbuildTrigger = Exclude<Instruction, FromInstruction | MaintainerInstruction | OnbuildInstruction>;

export interface Stage {
  /** Lower-cased `AS` name. */
  name?: string;
  index: number;
  from: FromInstruction;
  instructions: StageInstruction[];
}

export interface ParsedDockerfile {
  file: string;
  /** Original lines without line terminators, for error frames. */
  lines: string[];
  /** Escape character from the `# escape=` directive: `\` or `` ` ``. */
  escape: string;
  /** Value of the `# syntax=` directive; recorded only, strata has one built-in frontend. */
  syntax?: string;
  /** ARG instructions before the first FROM. */
  globalArgs: ArgInstruction[];
  stages: Stage[];
}
