// What several commands share: the store option, repeatable flags, and error reporting.
import fs from 'node:fs';
import path from 'node:path';
import { RunError } from '../build/run.js';
import { UsageError } from '../build/session.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { explainEnvironmentError } from '../store/errors.js';
import { TERMINAL_ESCAPES } from '../progress/render.js';
import { Store } from '../store/store.js';
import { packageRoot } from '../native/index.js';

export const rootOption = { type: 'string', describe: 'local store (env STRATA_ROOT; default /var/lib/strata as root)', default: Store.defaultRoot() } as const;

/** Repeatable flags: yargs gives one value as a string and repeats as an array (`array: true`
 * would also swallow the positional context that follows). */
export const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** `--build-arg NAME=VALUE`, or `--build-arg NAME` to pass the variable from the environment. */
export function parseBuildArgs(values: string | string[] | undefined): Map<string, string> {
  const args = new Map<string, string>();
  for (const value of list(values)) {
    const eq = value.indexOf('=');
    if (eq > 0) args.set(value.slice(0, eq), value.slice(eq + 1));
    else if (process.env[value] !== undefined) args.set(value, process.env[value]!);
  }
  return args;
}

/** `--label KEY=VALUE` (repeatable); `--label KEY` sets an empty value, as docker does. */
export function parseLabels(values: string | string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of list(values)) {
    const eq = value.indexOf('=');
    const key = eq < 0 ? value : value.slice(0, eq);
    if (key === '') throw new UsageError(`--label ${value}: the label needs a key (KEY=VALUE)`);
    labels[key] = eq < 0 ? '' : value.slice(eq + 1);
  }
  return labels;
}

/** Required positionals are declared optional (`cmd [name]`) and checked with this: with `<name>`
 * yargs checks the count first, so in `strata build --frobnicate CTX` (the flag takes CTX as its
 * value) it would complain about a missing context instead of naming the unknown flag. */
export const requirePositional = (...names: string[]) => (argv: Record<string, unknown>): true | string => {
  const missing = names.filter((name) => argv[name] === undefined || argv[name] === '' || (Array.isArray(argv[name]) && argv[name].length === 0));
  return missing.length === 0 ? true : `missing the ${missing.map((n) => n.toUpperCase()).join(' and ')} argument${missing.length > 1 ? 's' : ''}`;
};

/** strata's version, from its package.json. */
export function packageVersion(): string {
  const file = path.join(packageRoot, 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

/** yargs' validation messages as one line that names the flag the way the user typed it. */
export function usageMessage(msg: string, args: string[]): string {
  const unknown = /^Unknown arguments?: (.*)$/s.exec(msg);
  if (unknown) {
    const flags = args.slice(0, args.includes('--') ? args.indexOf('--') : undefined);
    return unknown[1].split(', ').map((name) => {
      const dashed = name.length === 1 ? `-${name}` : `--${name}`;
      if (flags.some((a) => a === dashed || a.startsWith(`${dashed}=`) || (name.length === 1 && /^-[a-zA-Z]+$/.test(a) && a.includes(name)))) return `unknown flag ${dashed}`;
      return flags.find((a) => !a.startsWith('-')) === name ? `unknown command ${name}` : `unexpected argument ${name}`;
    }).join('; ');
  }
  const choice = /Argument: (\S+), Given: (.*), Choices: (.*)$/s.exec(msg);
  if (choice) return `--${choice[1]} ${choice[2].replace(/^"|"$/g, '')}: expected one of ${choice[3].replace(/"/g, '')}`;
  return msg.replace(/\s*\n\s*/g, ' ');
}

/** Prints an error the way a user can act on it, and returns the exit code. */
export function report(err: unknown, debug: boolean): number {
  const environment = explainEnvironmentError(err); // disk full, read-only store, not root, no overlay
  if (environment !== undefined) {
    process.stderr.write(`ERROR: ${environment}\n`);
  } else if (err instanceof DockerfileError) {
    const lines = fs.existsSync(err.file) ? fs.readFileSync(err.file, 'utf8').split(/\r?\n/) : undefined;
    process.stderr.write(`${withCaret(err.frame(lines), err, lines)}\n`);
    const cause = err.cause;
    if (cause instanceof RunError) {
      // the command's own escapes (clear screen, cursor moves) must not rewrite the report
      if (cause.outputTail.length) process.stderr.write(`last output:\n${cause.outputTail.map((l) => `  ${l.replace(TERMINAL_ESCAPES, '')}`).join('\n')}\n`);
      process.stderr.write(`exit code: ${cause.exitCode}\n`);
    }
  } else {
    process.stderr.write(`ERROR: ${(err as Error).message ?? String(err)}\n`);
  }
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}

/** Under the offending line of a frame, a caret at the column the parser names (BuildKit shows the
 * line only; the caret says where on it). */
function withCaret(frame: string, err: DockerfileError, lines: string[] | undefined): string {
  if (err.column === undefined || !lines || err.line > lines.length) return frame;
  const rows = frame.split('\n');
  const marked = rows.findIndex((row) => new RegExp(`^>>> *${err.line} \\| `).test(row));
  if (marked < 0) return frame;
  const prefix = rows[marked].indexOf('| ') + 2;
  rows.splice(marked + 1, 0, `${' '.repeat(prefix + err.column - 1)}^`);
  return rows.join('\n');
}
