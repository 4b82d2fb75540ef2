// What several commands share: the store option, repeatable flags, and error reporting.
import fs from 'node:fs';
import { RunError } from '../build/run.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { Store } from '../store/store.js';

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

/** Prints an error the way a user can act on it, and returns the exit code. */
export function report(err: unknown, debug: boolean): number {
  if (err instanceof DockerfileError) {
    const lines = fs.existsSync(err.file) ? fs.readFileSync(err.file, 'utf8').split(/\r?\n/) : undefined;
    process.stderr.write(`${err.frame(lines)}\n`);
    const cause = err.cause;
    if (cause instanceof RunError) {
      if (cause.outputTail.length) process.stderr.write(`last output:\n${cause.outputTail.map((l) => `  ${l}`).join('\n')}\n`);
      process.stderr.write(`exit code: ${cause.exitCode}\n`);
    }
  } else {
    process.stderr.write(`ERROR: ${(err as Error).message ?? String(err)}\n`);
  }
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}
