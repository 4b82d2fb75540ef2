/**
 * Errors that point into a Dockerfile.
 *
 *   class DockerfileError extends Error
 *     file, line (1-based), endLine, column?, reason; message = "file:line: reason"
 *     frame(lines?): BuildKit-style source excerpt
 *   formatDockerfileError(err, lines?): string   what the CLI prints for any error
 */

export interface ErrorLocation {
  file: string;
  line: number;
  /** Last line of a multi-line instruction; defaults to `line`. */
  endLine?: number;
  column?: number;
}

/** Lines of context shown before and after the offending lines. */
const CONTEXT_LINES = 2;
const RULE = '--------------------';

export class DockerfileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly endLine: number;
  readonly column?: number;
  /** The message without the location prefix. */
  readonly reason: string;
  /** Source lines kept so frame() works without the caller holding the file. */
  private readonly sourceLines?: readonly string[];

  constructor(reason: string, location: ErrorLocation, sourceLines?: readonly string[]) {
    super(`${location.file}:${location.line}: ${reason}`);
    this.name = 'DockerfileError';
    this.file = location.file;
    this.line = location.line;
    this.endLine = Math.max(location.line, location.endLine ?? location.line);
    if (location.column !== undefined) this.column = location.column;
    this.reason = reason;
    this.sourceLines = sourceLines;
  }

  /**
   * Renders the error like BuildKit does:
   *
   *     Dockerfile:3
   *     --------------------
   *        1 | FROM scratch
   *        2 | ADD x /
   *     >>>3 | FROOM y
   *     --------------------
   *     ERROR: unknown instruction: FROOM
   *
   * `lines` are the file's lines; defaults to those given at construction.
   * Without lines only the header and the ERROR line are printed.
   */
  frame(lines: readonly string[] | undefined = this.sourceLines): string {
    const header = `${this.file}:${this.line}`;
    const footer = `ERROR: ${this.reason}`;
    if (!lines || lines.length === 0 || this.line > lines.length) return `${header}\n${footer}`;

    const first = Math.max(1, this.line - CONTEXT_LINES);
    const last = Math.min(lines.length, this.endLine + CONTEXT_LINES);
    const width = String(last).length;
    const body: string[] = [];
    for (let n = first; n <= last; n++) {
      const marker = n >= this.line && n <= this.endLine ? '>>>' : '   ';
      body.push(`${marker}${String(n).padStart(width)} | ${lines[n - 1]}`);
    }
    return [header, RULE, ...body, RULE, footer].join('\n');
  }
}

/** What the CLI prints for an error: a frame for Dockerfile errors, the message otherwise. */
export function formatDockerfileError(err: unknown, lines?: readonly string[]): string {
  if (err instanceof DockerfileError) return err.frame(lines);
  if (err instanceof Error) return `ERROR: ${err.message}`;
  return `ERROR: ${String(err)}`;
}
