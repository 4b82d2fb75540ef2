/**
 * Dockerfile parser.
 *
 *   parseDockerfile(text, file): ParsedDockerfile   throws DockerfileError only
 *
 * Line handling follows BuildKit's parser: parser directives (`# escape=`,
 * `# syntax=`, `# check=`) only at the top; comment lines are dropped, also
 * inside continuations; the escape character at the end of a line continues
 * it (unless itself escaped); blank continuation lines are skipped; after a
 * RUN, COPY or ADD line (or ONBUILD of one) that is not in JSON form, one body
 * is read per heredoc operator, in order.
 *
 * This scanner replaces dockerfile-ast (0.7.1), whose line ranges disagree
 * with BuildKit: a heredoc body line ending in `\` hides the delimiter line
 * that follows it, `3<<EOF` and `<<"A B"` bodies are parsed as instructions,
 * an escaped escape character (`\\`) at the end of a line continues it, and
 * `# escape=` after an unknown directive is still honoured.
 *
 * Words stay unexpanded (see expand.ts); exec form is read with JSON.parse and
 * falls back to shell form when the text is not JSON, as Docker does.
 */
import { DockerfileError } from './errors.js';
import { findHeredocMarkers, parseHeredocMarker, ExpansionError, type HeredocMarker } from './expand.js';
import type {
  ArgInstruction,
  CommandLine,
  Flags,
  FromInstruction,
  Heredoc,
  HealthcheckInstruction,
  Instruction,
  KeyValue,
  OnbuildTrigger,
  ParsedDockerfile,
  SourceLocation,
  Stage,
} from './types.js';

export function parseDockerfile(text: string, file: string): ParsedDockerfile {
  return new Parser(text, file).parse();
}

/** A heredoc body as read from the file, before `<<-` tab stripping. */
interface HeredocBody {
  name: string;
  content: string;
  expand: boolean;
  chomp: boolean;
}

interface LogicalLine {
  /** The instruction joined over continuation lines. */
  text: string;
  loc: SourceLocation;
  heredocs: HeredocBody[];
}

interface SplitCommand {
  keyword: string;
  flags: string[];
  args: string;
}

type FlagKind = 'bool' | 'string' | 'strings';

const FLAG_SPECS: Partial<Record<string, Record<string, FlagKind>>> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string', security: 'string' },
  COPY: { chown: 'string', chmod: 'string', from: 'string', link: 'bool', parents: 'bool', exclude: 'strings' },
  ADD: {
    chown: 'string',
    chmod: 'string',
    checksum: 'string',
    link: 'bool',
    'keep-git-dir': 'bool',
    exclude: 'strings',
  },
  HEALTHCHECK: {
    interval: 'string',
    timeout: 'string',
    'start-period': 'string',
    'start-interval': 'string',
    retries: 'string',
  },
};

const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_INSTRUCTIONS = new Set(['RUN', 'COPY', 'ADD']);
const STAGE_NAME = /^[a-z][a-z0-9._-]*$/;
const DIRECTIVE = /^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=(.*)$/s;
// Go's unicode.IsSpace, used by BuildKit's word splitting and trimming.
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;
const LEADING_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
// Separator between an instruction keyword and its arguments, and for legacy `ENV k v`.
const ARGUMENT_SEPARATOR = /[\t\v\f\r ]+/;
const NANOSECONDS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/u;
const DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gu;
const MIN_HEALTHCHECK_DURATION_NS = 1e6;

class Parser {
  private readonly physical: string[];
  private readonly lines: string[];
  /** Index of the next physical line to read; equals the number of lines read. */
  private next = 0;
  private escape = '\\';
  private directivesDone = false;
  private readonly seenDirectives = new Set<string>();
  private syntax?: string;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    this.physical = splitPhysicalLines(text.startsWith('\ufeff') ? text.slice(1) : text);
    this.lines = this.physical.length === 0 ? [''] : this.physical.map(trimNewline);
  }

  parse(): ParsedDockerfile {
    const globalArgs: ArgInstruction[] = [];
    const stages: Stage[] = [];
    const stageNames = new Set<string>();
    let last: Instruction | undefined;

    for (let line = this.readLogicalLine(); line; line = this.readLogicalLine()) {
      const instruction = this.parseInstruction(line);
      last = instruction;
      if (instruction.kind === 'FROM') {
        const name = instruction.stageName;
        const stage: Stage = { index: stages.length, from: instruction, instructions: [] };
        if (name !== undefined) {
          if (stageNames.has(name)) throw this.error(`duplicate stage name "${name}"`, instruction.loc);
          stageNames.add(name);
          stage.name = name;
        }
        stages.push(stage);
        continue;
      }
      const current = stages[stages.length - 1];
      if (current) current.instructions.push(instruction);
      else if (instruction.kind === 'ARG') globalArgs.push(instruction);
      else {
        throw this.error(
          `no build stage in current context: ${instruction.kind} before the first FROM (only ARG may precede FROM)`,
          instruction.loc,
        );
      }
    }

    if (!last) {
      throw new DockerfileError('file with no instructions', { file: this.file, line: this.lines.length }, this.lines);
    }
    if (stages.length === 0) throw this.error('no build stage: the Dockerfile has no FROM instruction', last.loc);

    const parsed: ParsedDockerfile = { file: this.file, lines: this.lines, escape: this.escape, globalArgs, stages };
    if (this.syntax !== undefined) parsed.syntax = this.syntax;
    return parsed;
  }

  private error(reason: string, loc: SourceLocation, column?: number): DockerfileError {
    const location = { file: this.file, line: loc.startLine, endLine: loc.endLine };
    return new DockerfileError(reason, column === undefined ? location : { ...location, column }, this.lines);
  }

  // -- Lines ----------------------------------------------------------------

  /** The next instruction with its continuation lines joined and heredoc bodies read. */
  private readLogicalLine(): LogicalLine | undefined {
    while (this.next < this.physical.length) {
      const startLine = this.next + 1;
      let [text, complete] = this.trimContinuation(this.readLine(true));
      if (complete && text === '') continue;

      while (!complete && this.next < this.physical.length) {
        const raw = this.physical[this.next] as string;
        const processed = this.readLine(false);
        if (isCommentLine(raw) || stripLeadingSpace(processed) === '') continue;
        let continuation: string;
        [continuation, complete] = this.trimContinuation(processed);
        text += continuation;
      }

      const loc: SourceLocation = { file: this.file, startLine, endLine: this.next };
      const heredocs = this.readHeredocs(text, loc);
      loc.endLine = this.next;
      return { text, loc, heredocs };
    }
    return undefined;
  }

  /** Reads one physical line: newline trimmed, directives applied, comments blanked. */
  private readLine(isFirstLineOfInstruction: boolean): string {
    const lineNumber = this.next + 1;
    let line = trimNewline(this.physical[this.next] as string);
    this.next++;
    if (isFirstLineOfInstruction) line = stripLeadingSpace(line);
    this.applyDirective(line, lineNumber);
    return line.startsWith('#') ? '' : line;
  }

  private applyDirective(line: string, lineNumber: number): void {
    if (this.directivesDone) return;
    const match = DIRECTIVE.exec(line);
    const name = match?.[1]?.toLowerCase();
    const value = trimGoSpace(match?.[2] ?? '');
    if (name === undefined || value === '' || !KNOWN_DIRECTIVES.has(name)) {
      this.directivesDone = true;
      return;
    }
    const loc = { file: this.file, startLine: lineNumber, endLine: lineNumber };
    if (this.seenDirectives.has(name)) throw this.error(`only one ${name} parser directive can be used`, loc);
    this.seenDirectives.add(name);
    if (name === 'syntax') this.syntax = value;
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') {
        throw this.error(`invalid escape token '${value}' does not match \` or \\`, loc);
      }
      this.escape = value;
    }
  }

  /**
   * Removes a line-continuation escape (followed only by spaces or tabs).
   * Returns the text and whether the instruction is complete.
   */
  private trimContinuation(line: string): [string, boolean] {
    let end = line.length;
    while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
    const escaped = end > 0 && line[end - 1] === this.escape;
    // An escaped escape character (`\\`) at the end does not continue the line.
    if (escaped && (end === 1 || line[end - 2] !== this.escape)) return [line.slice(0, end - 1), false];
    return [line, true];
  }

  private readHeredocs(text: string, loc: SourceLocation): HeredocBody[] {
    if (!canContainHeredocs(text)) return [];
    let markers: HeredocMarker[];
    try {
      markers = findHeredocMarkers(text);
    } catch (err) {
      if (err instanceof ExpansionError) throw this.error(`invalid heredoc: ${err.message}`, loc);
      throw err;
    }
    return markers.map((marker) => {
      let content = '';
      while (this.next < this.physical.length) {
        const raw = this.physical[this.next] as string;
        this.next++;
        const candidate = marker.chomp ? trimNewline(raw).replace(/^\t+/, '') : trimNewline(raw);
        if (candidate === marker.name) return { ...marker, content };
        content += raw;
      }
      throw this.error(`unterminated heredoc ${marker.name}`, { ...loc, endLine: this.next });
    });
  }

  // -- Instructions ---------------------------------------------------------

  private parseInstruction(line: LogicalLine): Instruction {
    const command = splitCommand(line.text);
    const kind = command.keyword.toUpperCase();
    const raw = line.text.trim();
    if (kind === 'ONBUILD') return this.parseOnbuild(command, raw, line);
    return this.parseCommand(kind, command, raw, line);
  }

  private parseOnbuild(command: SplitCommand, raw: string, line: LogicalLine): Instruction {
    const fail = (reason: string): never => {
      throw this.error(reason, line.loc);
    };
    this.parseFlags('ONBUILD', command.flags, line.loc);
    if (command.args === '') fail('ONBUILD requires at least one argument');
    const inner = splitCommand(command.args);
    const kind = inner.keyword.toUpperCase();
    if (kind === 'ONBUILD') fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (kind === 'FROM' || kind === 'MAINTAINER') fail(`${kind} isn't allowed as an ONBUILD trigger`);

    const triggerText = raw.replace(/^\s*ONBUILD\s*/i, '');
    const trigger = this.parseCommand(kind, inner, triggerText, line) as OnbuildTrigger;
    const expression = triggerText + line.heredocs.map((doc) => `\n${doc.content}${doc.name}`).join('');
    return { kind: 'ONBUILD', loc: line.loc, raw, trigger, expression };
  }

  private parseCommand(kind: string, command: SplitCommand, raw: string, line: LogicalLine): Instruction {
    const { loc } = line;
    const { args } = command;
    const fail = (reason: string): never => {
      throw this.error(reason, loc);
    };
    const flags = () => this.parseFlags(kind, command.flags, loc);
    const jsonArray = () => {
      try {
        return parseJsonArray(args);
      } catch (err) {
        if (err instanceof NotStringArray) return fail(err.message);
        throw err;
      }
    };
    const commandLine = (): CommandLine => {
      const exec = jsonArray();
      return exec ? { form: 'exec', args: exec } : { form: 'shell', args: [args] };
    };
    const single = (): string => (args === '' ? fail(`${kind} requires exactly one argument`) : args);
    const words = () => splitWords(args, this.escape);

    switch (kind) {
      case 'FROM': {
        const flagValues = flags();
        const list = words();
        const from: FromInstruction = { kind, loc, raw, image: list[0] ?? '' };
        if (list.length === 3 && list[1]?.toLowerCase() === 'as') {
          const name = (list[2] as string).toLowerCase();
          if (!STAGE_NAME.test(name)) {
            fail(`invalid name for build stage: "${list[2]}", name can't start with a number or contain symbols`);
          }
          from.stageName = name;
        } else if (list.length !== 1) {
          fail('FROM requires either one or three arguments');
        }
        const platform = flagValues.platform?.[0];
        if (platform !== undefined) from.platform = platform;
        return from;
      }
      case 'RUN': {
        const flagValues = flags();
        const run = commandLine();
        if (run.form === 'shell' ? args === '' : run.args.length === 0) fail('RUN requires at least one argument');
        const heredocs = run.form === 'shell' ? line.heredocs.map(toHeredoc) : [];
        return { kind, loc, raw, command: run, flags: flagValues, heredocs };
      }
      case 'CMD':
      case 'ENTRYPOINT':
        flags();
        if (args === '') fail(`${kind} requires at least one argument`);
        return { kind, loc, raw, command: commandLine() };
      case 'SHELL': {
        flags();
        const shell = jsonArray();
        if (args === '' || shell?.length === 0) fail('SHELL requires at least one argument');
        if (!shell) return fail('SHELL requires the arguments to be in JSON form');
        return { kind, loc, raw, shell };
      }
      case 'ENV':
        flags();
        return { kind, loc, raw, env: this.parseKeyValues(kind, args, fail) };
      case 'LABEL':
        flags();
        return { kind, loc, raw, labels: this.parseKeyValues(kind, args, fail) };
      case 'ARG': {
        flags();
        const list = words();
        if (list.length === 0) fail('ARG requires at least one argument');
        const declarations = list.map((word) => {
          const eq = word.indexOf('=');
          if (eq < 0) return { name: word };
          if (eq === 0) fail('ARG names can not be blank');
          return { name: word.slice(0, eq), default: word.slice(eq + 1) };
        });
        return { kind, loc, raw, args: declarations };
      }
      case 'ADD':
      case 'COPY':
        return { kind, loc, raw, ...this.parseTransfer(kind, flags(), jsonArray(), line.heredocs, args, fail) };
      case 'EXPOSE': {
        flags();
        const ports = words();
        if (ports.length === 0) fail('EXPOSE requires at least one argument');
        return { kind, loc, raw, ports };
      }
      case 'VOLUME': {
        flags();
        const paths = (jsonArray() ?? words()).map((path) => path.trim());
        if (paths.length === 0) fail('VOLUME requires at least one argument');
        if (paths.includes('')) fail('VOLUME specified can not be an empty string');
        return { kind, loc, raw, paths };
      }
      case 'MAINTAINER':
        flags();
        return { kind, loc, raw, maintainer: single() };
      case 'USER':
        flags();
        return { kind, loc, raw, user: single() };
      case 'WORKDIR':
        flags();
        return { kind, loc, raw, path: single() };
      case 'STOPSIGNAL':
        flags();
        return { kind, loc, raw, signal: single() };
      case 'HEALTHCHECK':
        return { kind, loc, raw, ...this.parseHealthcheck(flags(), args, fail) };
      default: {
        const source = this.lines[loc.startLine - 1] ?? '';
        const column = source.length - stripLeadingSpace(source).length + 1;
        throw this.error(`unknown instruction: ${kind}`, loc, column);
      }
    }
  }

  private parseFlags(kind: string, words: string[], loc: SourceLocation): Flags {
    const spec = FLAG_SPECS[kind] ?? {};
    const flags: Flags = {};
    for (const word of words) {
      const body = word.slice(2);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      const value = eq < 0 ? undefined : body.slice(eq + 1);
      const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
      const fail = (reason: string): never => {
        throw this.error(reason, loc);
      };
      if (type === undefined) fail(`unknown flag: --${name}`);
      const previous = flags[name];
      if (previous && type !== 'strings') fail(`duplicate flag specified: --${name}`);
      if (type === 'bool') {
        if (value === '') fail(`missing a value on flag: --${name}`);
        const normalized = (value ?? 'true').toLowerCase();
        if (normalized !== 'true' && normalized !== 'false') {
          fail(`expecting boolean value for flag --${name}, not: ${value}`);
        }
        flags[name] = [normalized];
      } else {
        if (value === undefined) return fail(`missing a value on flag: --${name}`);
        if (previous) previous.push(value);
        else flags[name] = [value];
      }
    }
    return flags;
  }

  /** ENV and LABEL: `k=v ...`, or the legacy `k v` where v is the rest of the line. */
  private parseKeyValues(kind: string, args: string, fail: (reason: string) => never): KeyValue[] {
    const words = splitWords(args, this.escape);
    const first = words[0];
    if (first === undefined) return fail(`${kind} requires at least one argument`);
    if (!first.includes('=')) {
      const separator = ARGUMENT_SEPARATOR.exec(args);
      if (!separator) return fail(`${kind} must have two arguments`);
      return [{ key: args.slice(0, separator.index), value: args.slice(separator.index + separator[0].length) }];
    }
    return words.map((word) => {
      const eq = word.indexOf('=');
      if (eq < 0) fail(`Syntax error - can't find = in ${JSON.stringify(word)}. Must be of the form: name=value`);
      if (eq === 0) fail(`${kind} names can not be blank`);
      return { key: word.slice(0, eq), value: word.slice(eq + 1) };
    });
  }

  private parseTransfer(
    kind: 'ADD' | 'COPY',
    flags: Flags,
    exec: string[] | undefined,
    bodies: HeredocBody[],
    args: string,
    fail: (reason: string) => never,
  ) {
    const words = exec ?? splitWords(args, this.escape);
    const dest = words[words.length - 1];
    if (words.length < 2 || dest === undefined) {
      return fail(
        `${kind} requires at least two arguments, but only one was provided. Destination could not be determined.`,
      );
    }
    const markerOf = (word: string) => {
      if (exec) return undefined;
      try {
        return parseHeredocMarker(word);
      } catch (err) {
        if (err instanceof ExpansionError) return undefined; // BuildKit treats these as plain paths too
        throw err;
      }
    };
    if (markerOf(dest)) fail(`${kind} cannot accept a heredoc as a destination`);

    const sources: string[] = [];
    const heredocs: Heredoc[] = [];
    for (const source of words.slice(0, -1)) {
      const marker = markerOf(source);
      if (!marker) {
        sources.push(source);
        continue;
      }
      const content = bodies.find((body) => body.name === marker.name)?.content ?? '';
      heredocs.push(toHeredoc({ ...marker, content }));
    }
    return { sources, dest, flags, heredocs };
  }

  private parseHealthcheck(flags: Flags, args: string, fail: (reason: string) => never) {
    if (args === '') return fail('HEALTHCHECK requires at least one argument');
    const separator = /\s/.exec(args);
    const type = (separator ? args.slice(0, separator.index) : args).toUpperCase();
    const rest = separator ? stripLeadingSpace(args.slice(separator.index)) : '';
    if (type === 'NONE') {
      if (rest !== '') fail('HEALTHCHECK NONE takes no arguments');
      return { test: ['NONE'] };
    }
    if (type !== 'CMD') fail(`Unknown type ${JSON.stringify(type)} in HEALTHCHECK (try CMD)`);

    let exec: string[] | undefined;
    try {
      exec = parseJsonArray(rest);
    } catch (err) {
      if (err instanceof NotStringArray) return fail(err.message);
      throw err;
    }
    if (exec ? exec.length === 0 : rest === '') fail('Missing command after HEALTHCHECK CMD');
    const health: Omit<HealthcheckInstruction, 'kind' | 'loc' | 'raw'> = { test: exec ? ['CMD', ...exec] : ['CMD-SHELL', rest] };

    const duration = (name: string): number | undefined => {
      const text = flags[name]?.[0];
      if (text === undefined || text === '') return undefined;
      const ns = parseGoDuration(text);
      if (ns === undefined) return fail(`invalid duration for --${name}: ${JSON.stringify(text)}`);
      if (ns !== 0 && ns < MIN_HEALTHCHECK_DURATION_NS) fail(`Interval "${name}" cannot be less than 1ms`);
      return ns;
    };
    const interval = duration('interval');
    const timeout = duration('timeout');
    const startPeriod = duration('start-period');
    const startInterval = duration('start-interval');
    if (interval !== undefined) health.intervalNs = interval;
    if (timeout !== undefined) health.timeoutNs = timeout;
    if (startPeriod !== undefined) health.startPeriodNs = startPeriod;
    if (startInterval !== undefined) health.startIntervalNs = startInterval;

    const retries = flags.retries?.[0];
    if (retries !== undefined && retries !== '') {
      const count = /^[+-]?\d+$/.test(retries) ? Number(retries) : NaN;
      if (!Number.isSafeInteger(count) || Math.abs(count) > 2 ** 31 - 1) {
        fail(`invalid value for --retries: ${JSON.stringify(retries)}`);
      }
      if (count < 0) fail(`--retries cannot be negative (${count})`);
      health.retries = count;
    }
    return health;
  }
}

// -- Helpers ----------------------------------------------------------------

class NotStringArray extends Error {
  constructor() {
    super('when using JSON array syntax, arrays must be comprised of strings only');
  }
}

/**
 * Exec-form arguments when `args` is a JSON array of strings; undefined when
 * it is not JSON (shell form). A JSON array holding non-strings is an error.
 */
function parseJsonArray(args: string): string[] | undefined {
  const text = stripLeadingSpace(args);
  if (!text.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  if (!value.every((item) => typeof item === 'string')) throw new NotStringArray();
  return value as string[];
}

/** Whether the instruction line may introduce heredocs: RUN/COPY/ADD (or ONBUILD of one) not in JSON form. */
function canContainHeredocs(text: string): boolean {
  let command = splitCommand(text);
  if (command.keyword.toUpperCase() === 'ONBUILD') command = splitCommand(command.args);
  if (!HEREDOC_INSTRUCTIONS.has(command.keyword.toUpperCase())) return false;
  try {
    return parseJsonArray(command.args) === undefined;
  } catch (err) {
    if (err instanceof NotStringArray) return false; // reported when the instruction is parsed
    throw err;
  }
}

function toHeredoc(body: HeredocBody): Heredoc {
  const content = body.chomp
    ? body.content
        .split('\n')
        .map((line) => line.replace(/^\t+/, ''))
        .join('\n')
    : body.content;
  return { name: body.name, content, expand: body.expand, chomp: body.chomp };
}

/** Splits into lines that keep their `\n`, like BuildKit's scanner. */
function splitPhysicalLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline + 1;
    lines.push(text.slice(start, end));
    start = end;
  }
  return lines;
}

function trimNewline(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === '\n' || line[end - 1] === '\r')) end--;
  return line.slice(0, end);
}

function stripLeadingSpace(text: string): string {
  return text.replace(LEADING_SPACE, '');
}

/** Trims Go regexp `\s` (`[\t\n\f\r ]`) from both ends. */
function trimGoSpace(text: string): string {
  const isGoSpace = (ch: string | undefined) =>
    ch === ' ' || ch === '\t' || ch === '\n' || ch === '\f' || ch === '\r';
  let start = 0;
  let end = text.length;
  while (start < end && isGoSpace(text[start])) start++;
  while (end > start && isGoSpace(text[end - 1])) end--;
  return text.slice(start, end);
}

function isCommentLine(raw: string): boolean {
  return stripLeadingSpace(trimNewline(raw)).startsWith('#');
}

/** Keyword, builder flags (`--name[=value]` words before the arguments) and the arguments. */
function splitCommand(text: string): SplitCommand {
  const line = text.trim();
  const separator = ARGUMENT_SEPARATOR.exec(line);
  if (!separator) return { keyword: line, flags: [], args: '' };
  const { flags, rest } = extractFlags(line.slice(separator.index + separator[0].length));
  return { keyword: line.slice(0, separator.index), flags, args: rest.trim() };
}

/**
 * Reads leading `--flag` words. Quotes group and are removed and `\` escapes
 * inside flag words (always `\`, whatever the escape directive); a bare `--`
 * ends the flags.
 */
function extractFlags(line: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  const isAsciiSpace = (ch: string) => ch === ' ' || (ch >= '\t' && ch <= '\r');
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let quoted = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const ch = line[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isAsciiSpace(ch)) continue;
      if (ch !== '-' || line[pos + 1] !== '-') return { flags, rest: line.slice(pos) };
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (quoted || word !== '')) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isAsciiSpace(ch)) {
        if (word === '--') return { flags, rest: line.slice(pos) };
        if (quoted || word !== '') flags.push(word);
        phase = 'spaces';
        word = '';
        quoted = false;
      } else if (ch === "'" || ch === '"') {
        quote = ch;
        quoted = true;
        phase = 'quote';
      } else if (ch === '\\') {
        if (pos + 1 < line.length) word += line[++pos];
      } else {
        word += ch;
      }
      continue;
    }
    if (ch === quote) phase = 'word';
    else if (ch === '\\') {
      if (pos + 1 < line.length) word += line[++pos];
      else phase = 'word';
    } else word += ch;
  }
  return { flags, rest: '' };
}

/**
 * Splits on unquoted, unescaped whitespace, keeping quotes and escapes in the
 * words for expansion to process (BuildKit's parseWords). Also used for
 * COPY/ADD/VOLUME/EXPOSE/FROM, where BuildKit splits on any whitespace, so
 * that `COPY "a b" /dst` names one file instead of failing.
 */
function splitWords(text: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(text);
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let quoted = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    const ch = chars[pos] ?? '';
    const atEnd = pos === chars.length;
    if (phase === 'spaces') {
      if (atEnd) break;
      if (SPACE.test(ch)) continue;
      phase = 'word';
    }
    if (atEnd) {
      if (quoted || word !== '') words.push(word);
      break;
    }
    if (phase === 'word') {
      if (SPACE.test(ch)) {
        if (quoted || word !== '') words.push(word);
        phase = 'spaces';
        word = '';
        quoted = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        quoted = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue; // a trailing escape character is dropped
        word += ch;
        pos++;
        word += chars[pos];
        continue;
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      pos++;
      word += chars[pos];
      continue;
    }
    word += ch;
  }
  return words;
}

/** Parses Go's time.ParseDuration syntax (`1m30s`, `1.5h`, `300ms`) into nanoseconds. */
function parseGoDuration(text: string): number | undefined {
  if (text === '0' || text === '+0' || text === '-0') return 0;
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) {
    total += Number(amount) * (NANOSECONDS[unit as string] as number);
  }
  return Math.round(text.startsWith('-') ? -total : total);
}
