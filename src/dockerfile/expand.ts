/**
 * Word expansion: the one place that implements the Dockerfile's
 * "Environment replacement" rules, with BuildKit's semantics.
 *
 *   expandWord(word, env, escape?): string       one word, whitespace kept
 *   expandWords(text, env, escape?): string[]    split on unquoted whitespace
 *   expandInstruction(instr, env, escape?): copy with the fields Docker expands
 *   class ExpansionError                         bad syntax or ${VAR?message}
 *   findHeredocMarkers(line), parseHeredocMarker(word)   heredoc operators (used by parse.ts)
 *   type Env = ReadonlyMap<string,string> | Readonly<Record<string,string>>
 *
 * Supported: $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w},
 * ${VAR:?msg}, ${VAR?msg}, ${VAR#pat}, ${VAR##pat}, ${VAR%pat}, ${VAR%%pat},
 * ${VAR/pat/repl}, ${VAR//pat/repl}; nested expansions in w; single quotes
 * (literal), double quotes (expanding), the escape character. Unset variables
 * expand to the empty string.
 */
import { DockerfileError } from './errors.js';
import type { Instruction, Flags, Heredoc, KeyValue } from './types.js';

export type Env = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/** A word could not be expanded; `reason` is BuildKit's wording. */
export class ExpansionError extends Error {
  readonly word: string;
  readonly reason: string;

  constructor(word: string, reason: string) {
    super(`failed to process "${word}": ${reason}`);
    this.name = 'ExpansionError';
    this.word = word;
    this.reason = reason;
  }
}

export function expandWord(word: string, env: Env, escape = '\\'): string {
  return lex(word, env, escape, {}).result;
}

export function expandWords(text: string, env: Env, escape = '\\'): string[] {
  return lex(text, env, escape, {}).words;
}

/** A `<<NAME` / `<<-NAME` / `<<'NAME'` operator found on an instruction line. */
export interface HeredocMarker {
  name: string;
  expand: boolean;
  chomp: boolean;
}

const HEREDOC_OPERATOR = /^(\d*)<<(-?)([^<]*)$/;
const NO_ENV: Env = new Map();

/**
 * The heredoc operators on an instruction line, in order. Like BuildKit, the
 * line is split with `\` as escape whatever the escape directive says, and a
 * line that cannot be split (unbalanced quotes) has no heredocs.
 */
export function findHeredocMarkers(line: string): HeredocMarker[] {
  let words: string[];
  try {
    words = lex(line, NO_ENV, '\\', { rawQuotes: true, rawEscapes: true, keepUnset: true }).words;
  } catch (err) {
    if (err instanceof ExpansionError) return [];
    throw err;
  }
  const markers: HeredocMarker[] = [];
  for (const word of words) {
    const marker = parseHeredocMarker(word);
    if (marker) markers.push(marker);
  }
  return markers;
}

/**
 * Parses one word as a heredoc operator; undefined when it is not one.
 * Throws ExpansionError for an operator with unbalanced quotes (`<<'EOF`).
 */
export function parseHeredocMarker(word: string): HeredocMarker | undefined {
  const match = HEREDOC_OPERATOR.exec(word);
  const delimiter = match?.[3];
  if (!match || !delimiter) return undefined;
  const unquoted = lex(delimiter, NO_ENV, '\\', { keepUnset: true }).words;
  const quoted = lex(delimiter, NO_ENV, '\\', { keepUnset: true, rawQuotes: true }).words;
  const name = unquoted[0];
  if (unquoted.length !== 1 || quoted.length !== 1 || name === undefined) return undefined;
  // Quote removal changed the delimiter, so part of it was quoted: no expansion.
  const expand = countQuotes(name) === countQuotes(quoted[0] ?? '');
  return { name, expand, chomp: match[2] === '-' };
}

function countQuotes(text: string): number {
  let count = 0;
  for (const ch of text) if (ch === '"' || ch === "'") count++;
  return count;
}

/**
 * Returns a copy of `instruction` with the fields Docker expands replaced by
 * their expansion in `env`: ADD, COPY (sources, dest, flags, expandable
 * heredoc bodies), ENV, EXPOSE, FROM (image, platform), LABEL, STOPSIGNAL,
 * USER, VOLUME, WORKDIR, ARG (names, defaults) and RUN --mount values.
 * RUN/CMD/ENTRYPOINT commands, SHELL and HEALTHCHECK are left to the shell;
 * ONBUILD triggers are expanded when they run, not when defined.
 * Throws DockerfileError located at the instruction.
 */
export function expandInstruction<T extends Instruction>(instruction: T, env: Env, escape = '\\'): T {
  try {
    return expandFields(instruction, env, escape) as T;
  } catch (err) {
    if (!(err instanceof ExpansionError)) throw err;
    const { file, startLine, endLine } = instruction.loc;
    throw new DockerfileError(err.message, { file, line: startLine, endLine });
  }
}

function expandFields(instruction: Instruction, env: Env, escape: string): Instruction {
  const word = (text: string) => expandWord(text, env, escape);
  const pairs = (list: KeyValue[]) => list.map(({ key, value }) => ({ key: word(key), value: word(value) }));
  const flags = (all: Flags, only?: string) =>
    Object.fromEntries(
      Object.entries(all).map(([name, values]) => [name, only && name !== only ? values : values.map(word)]),
    );
  // COPY/ADD heredoc bodies: BuildKit expands them without quote processing and always with `\`.
  const bodies = (heredocs: Heredoc[]) =>
    heredocs.map((doc) =>
      doc.expand ? { ...doc, content: lex(doc.content, env, '\\', { keepQuotes: true }).result } : doc,
    );

  switch (instruction.kind) {
    case 'FROM': {
      const expanded = { ...instruction, image: word(instruction.image) };
      if (instruction.platform !== undefined) expanded.platform = word(instruction.platform);
      return expanded;
    }
    case 'RUN':
      return { ...instruction, flags: flags(instruction.flags, 'mount') };
    case 'ADD':
    case 'COPY':
      return {
        ...instruction,
        sources: instruction.sources.map(word),
        dest: word(instruction.dest),
        flags: flags(instruction.flags),
        heredocs: bodies(instruction.heredocs),
      };
    case 'ENV':
      return { ...instruction, env: pairs(instruction.env) };
    case 'LABEL':
      return { ...instruction, labels: pairs(instruction.labels) };
    case 'EXPOSE':
      return { ...instruction, ports: instruction.ports.flatMap((port) => expandWords(port, env, escape)) };
    case 'VOLUME':
      return { ...instruction, paths: instruction.paths.map(word) };
    case 'USER':
      return { ...instruction, user: word(instruction.user) };
    case 'WORKDIR':
      return { ...instruction, path: word(instruction.path) };
    case 'STOPSIGNAL':
      return { ...instruction, signal: word(instruction.signal) };
    case 'ARG':
      return {
        ...instruction,
        args: instruction.args.map((arg) =>
          arg.default === undefined ? { name: word(arg.name) } : { name: word(arg.name), default: word(arg.default) },
        ),
      };
    case 'CMD':
    case 'ENTRYPOINT':
    case 'SHELL':
    case 'HEALTHCHECK':
    case 'MAINTAINER':
    case 'ONBUILD':
      return { ...instruction };
  }
}

// ---------------------------------------------------------------------------
// The lexer. It walks code points; `$`, quotes and the escape character are
// special. ProcessWord's result keeps whitespace; the word list splits on
// whitespace that is neither quoted, escaped nor inside a braced default.

interface LexOptions {
  /** Keep quote characters in the output (heredoc delimiter detection). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output (heredoc operator detection). */
  rawEscapes?: boolean;
  /** Leave references to unset variables as written instead of expanding to "". */
  keepUnset?: boolean;
  /** Treat quotes as ordinary characters (heredoc bodies). */
  keepQuotes?: boolean;
}

interface LexResult {
  result: string;
  words: string[];
}

/** Bounds `${a:-${b:-...}}` recursion so hostile input cannot overflow the stack. */
const MAX_NESTING = 100;
const SPECIAL_PARAMETERS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);
const REGEX_SPECIAL = new Set(['[', ']', '{', '}', '.', '+', '(', ')', '|', '^', '$']);
// Go's unicode.IsSpace set (JavaScript's \s differs on U+0085 and U+FEFF).
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;
const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

const isSpace = (ch: string) => SPACE.test(ch);
const isDigit = (ch: string) => DIGIT.test(ch);

/** Internal failure; lex() turns it into an ExpansionError naming the whole word. */
class LexFailure extends Error {}

function lex(text: string, env: Env, escape: string, options: LexOptions): LexResult {
  try {
    return new Lexer(text, env, escape, options).run();
  } catch (err) {
    if (err instanceof LexFailure) throw new ExpansionError(text, err.message);
    throw err;
  }
}

function lookup(env: Env, name: string): string | undefined {
  if (env instanceof Map) return env.get(name);
  const record = env as Readonly<Record<string, string>>;
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

class WordCollector {
  private readonly words: string[] = [];
  private word = '';
  private inWord = false;

  /** Adds text that may split words (plain text, results of `$` expansion). */
  addText(text: string): void {
    for (const ch of text) {
      if (!isSpace(ch)) this.addRaw(ch);
      else if (this.inWord && this.word !== '') this.flush();
    }
  }

  /** Adds text that never splits (quoted or escaped). */
  addRaw(text: string): void {
    this.word += text;
    this.inWord = true;
  }

  finish(): string[] {
    if (this.word !== '') this.flush();
    return this.words;
  }

  private flush(): void {
    this.words.push(this.word);
    this.word = '';
    this.inWord = false;
  }
}

class Lexer {
  private readonly chars: string[];
  private pos = 0;
  private depth = 0;
  private rawEscapes: boolean;

  constructor(
    text: string,
    private readonly env: Env,
    private readonly escape: string,
    private readonly options: LexOptions,
  ) {
    this.chars = Array.from(text);
    this.rawEscapes = options.rawEscapes ?? false;
  }

  run(): LexResult {
    return this.until(undefined, this.rawEscapes);
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }

  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  private value(name: string): string | undefined {
    return lookup(this.env, name);
  }

  /** Processes text up to `stop` (consumed) or the end when `stop` is undefined. */
  private until(stop: string | undefined, rawEscapes: boolean): LexResult {
    const savedRawEscapes = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new WordCollector();
      for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
        if (ch === stop) {
          this.next();
          return { result, words: words.finish() };
        }
        if (ch === '$') {
          const expanded = this.dollar();
          result += expanded;
          words.addText(expanded);
          continue;
        }
        if (!this.options.keepQuotes && (ch === "'" || ch === '"')) {
          const quoted = ch === "'" ? this.singleQuoted() : this.doubleQuoted();
          result += quoted;
          words.addRaw(quoted);
          continue;
        }
        this.next();
        if (ch !== this.escape) {
          result += ch;
          words.addText(ch);
          continue;
        }
        if (this.rawEscapes) {
          result += ch;
          words.addRaw(ch);
        }
        const escaped = this.next();
        if (escaped === undefined) break; // a trailing escape character is dropped
        result += escaped;
        words.addRaw(escaped);
      }
      if (stop !== undefined) throw new LexFailure(`unexpected end of statement while looking for matching ${stop}`);
      return { result, words: words.finish() };
    } finally {
      this.rawEscapes = savedRawEscapes;
    }
  }

  /** Everything between single quotes is literal; a single quote cannot be escaped. */
  private singleQuoted(): string {
    let result = '';
    const open = this.next();
    if (this.options.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new LexFailure('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return this.options.rawQuotes ? result + ch : result;
      result += ch;
    }
  }

  /** Double quotes expand `$` and let the escape character quote `"`, `$` and itself only. */
  private doubleQuoted(): string {
    let result = '';
    const open = this.next();
    if (this.options.rawQuotes) result += open;
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new LexFailure('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.next();
        return this.options.rawQuotes ? result + ch : result;
      }
      if (ch === '$') {
        result += this.dollar();
        continue;
      }
      this.next();
      if (ch !== this.escape) {
        result += ch;
        continue;
      }
      if (this.rawEscapes) result += ch;
      const following = this.peek();
      if (following === undefined) continue; // reported as the missing closing quote
      if (following === '"' || following === '$' || following === this.escape) result += this.next();
      else result += ch;
    }
  }

  private dollar(): string {
    this.next(); // $
    if (this.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      const value = this.value(name);
      if (value === undefined && this.options.keepUnset) return `$${name}`;
      return value ?? '';
    }
    if (++this.depth > MAX_NESTING) throw new LexFailure('syntax error: substitutions nested too deeply');
    try {
      return this.braced();
    } finally {
      this.depth--;
    }
  }

  private braced(): string {
    this.next(); // {
    const first = this.peek();
    if (first === undefined) throw new LexFailure("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexFailure('syntax error: bad substitution');

    const name = this.name();
    const operator = this.next();
    if (operator === undefined) throw new LexFailure("syntax error: missing '}'");
    if (operator === '}') {
      const value = this.value(name);
      if (value === undefined && this.options.keepUnset) return `\${${name}}`;
      return value ?? '';
    }
    if (operator === '/') return this.replacement(name);
    if (!':+-?#%'.includes(operator)) throw new LexFailure(`unsupported modifier (${operator}) in substitution`);

    const emptyIsUnset = operator === ':';
    const modifier = emptyIsUnset ? (this.next() ?? '') : operator;
    const spelled = emptyIsUnset ? `:${modifier}` : modifier;
    // Patterns keep their escapes: the pattern matcher interprets them.
    const word = this.operand('}', modifier === '#' || modifier === '%', "syntax error: missing '}'");

    const value = this.value(name);
    if (value === undefined && this.options.keepUnset) return `\${${name}${spelled}${word}}`;
    const missing = value === undefined || (emptyIsUnset && value === '');
    switch (modifier) {
      case '-':
        return missing ? word : (value ?? '');
      case '+':
        return missing ? '' : word;
      case '?':
        if (value === undefined) throw new LexFailure(`${name}: ${word || 'is not allowed to be unset'}`);
        if (missing) throw new LexFailure(`${name}: ${word || 'is not allowed to be empty'}`);
        return value;
      case '#':
      case '%': {
        const longest = word.startsWith(modifier);
        const pattern = longest ? word.slice(1) : word;
        return modifier === '#'
          ? trimPrefix(pattern, value ?? '', longest)
          : trimSuffix(pattern, value ?? '', longest);
      }
      default:
        throw new LexFailure(`unsupported modifier (${spelled}) in substitution`);
    }
  }

  /** ${VAR/pattern/replacement} and ${VAR//pattern/replacement}. */
  private replacement(name: string): string {
    const all = this.peek() === '/';
    if (all) this.next();
    const pattern = this.operand('/', true, "syntax error: missing '/' in ${}");
    const replacement = this.operand('}', true, "syntax error: missing '}'");
    const value = this.value(name);
    if (value === undefined && this.options.keepUnset) return `\${${name}/${pattern}/${replacement}}`;
    const regex = shellPatternToRegex(pattern, true, false, all ? 'gu' : 'u');
    return (value ?? '').replace(regex, () => replacement);
  }

  /** The text of a ${...} operand; running out of input reports `missing`. */
  private operand(stop: string, rawEscapes: boolean, missing: string): string {
    try {
      return this.until(stop, rawEscapes).result;
    } catch (err) {
      if (err instanceof LexFailure && this.peek() === undefined) throw new LexFailure(missing);
      throw err;
    }
  }

  /** A variable name; a leading digit run or one special parameter (`$@`, `$#`, ...) is a name too. */
  private name(): string {
    let name = '';
    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (name === '' && isDigit(ch)) {
        while (this.peek() !== undefined && isDigit(this.peek() as string)) name += this.next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMETERS.has(ch)) return this.next() as string;
      if (!LETTER.test(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }
}

/**
 * Converts a shell pattern (`*`, `?`, `\` escaping `*`, `?` or `\`) to a
 * regular expression. `\}` and `\/` lose their backslash: it only kept them
 * from closing the ${} expression.
 */
function shellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean, flags = 'u'): RegExp {
  const chars = Array.from(pattern);
  let source = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === '*') source += greedy ? '.*' : '.*?';
    else if (ch === '?') source += '.';
    else if (ch === '\\') {
      const escaped = chars[i + 1];
      if (escaped === '}' || escaped === '/') continue;
      if (escaped !== '*' && escaped !== '?' && escaped !== '\\') {
        throw new LexFailure(`invalid pattern (${pattern}) in substitution: invalid escape '\\${escaped ?? ''}'`);
      }
      source += `\\${escaped}`;
      i++;
    } else source += REGEX_SPECIAL.has(ch) ? `\\${ch}` : ch;
  }
  return new RegExp(source, flags);
}

function trimPrefix(pattern: string, value: string, longest: boolean): string {
  const match = shellPatternToRegex(pattern, longest, true).exec(value);
  return match ? value.slice(match[0].length) : value;
}

/** Suffix matching reverses pattern and value so a left-anchored search finds the rightmost match. */
function trimSuffix(pattern: string, value: string, longest: boolean): string {
  const reversed = trimPrefix(reversePattern(pattern), reverse(value), longest);
  return reverse(reversed);
}

function reverse(text: string): string {
  return Array.from(text).reverse().join('');
}

/** Reverses a pattern keeping each `\x` escape pair in order (`a\*c` becomes `c\*a`). */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === '\\' && i + 1 < chars.length) {
      tokens.push(ch + chars[i + 1]);
      i++;
    } else tokens.push(ch);
  }
  return tokens.reverse().join('');
}
