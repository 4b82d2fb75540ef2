// Renderers for build events: plain (one line per event, for logs and CI), tty (a live view of the
// steps, BuildKit style) and rawjson (one JSON object per event, for tools). All write to stderr by
// default, so stdout stays free for the digest or an archive streamed with `-o -`.
//
// The tty view is written by hand (cursor-up + erase-down over a region of whole, clipped lines)
// rather than with log-update or ink: it needs a dozen escape codes, and those libraries bring
// 10+ (log-update) or React (ink) dependencies for the same two operations.
import type { BuildEvent, ProgressSink } from './events.js';

export type ProgressMode = 'auto' | 'plain' | 'tty' | 'rawjson';

/** A sink that may hold a live region on the terminal: close() settles it (call it before
 * anything else writes to the same stream, e.g. an error report). */
export type Renderer = ProgressSink & { close(): void };

export const humanSize = (bytes: number): string => {
  const units = ['B', 'kB', 'MB', 'GB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)}${units[u]}`;
};

const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

/** `auto` is tty on a terminal, plain in CI, on a dumb terminal, or when stderr is a file or pipe. */
export function resolveMode(mode: ProgressMode, out: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Exclude<ProgressMode, 'auto'> {
  if (mode !== 'auto') return mode;
  return out.isTTY && !env.CI && env.TERM !== 'dumb' ? 'tty' : 'plain';
}

export function makeRenderer(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): Renderer {
  const resolved = resolveMode(mode, out);
  if (resolved === 'rawjson') return Object.assign((event: BuildEvent) => void out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`), { close() {} });
  if (resolved === 'tty') return ttyRenderer(out);
  return plainRenderer(out);
}

/** One line for the events both renderers print as they are. */
function describe(event: BuildEvent): string | undefined {
  switch (event.type) {
    case 'build-start':
      return `building ${event.dockerfile} (${event.steps} steps)`;
    case 'note':
      return `note: ${event.message}`;
    case 'export':
      return `exported ${event.kind} to ${event.dest === '-' ? 'stdout' : event.dest}`;
    case 'blob':
      return `${event.action} ${short(event.digest)} ${event.state === 'progress' || event.state === 'done' ? `${humanSize(event.bytes)}/${humanSize(event.total)}${event.state === 'done' ? ' done' : ''}` : event.state === 'exists' ? 'already there' : 'mounted'}`;
    case 'build-done':
      return `built ${event.manifestDigest} (${event.layers} layers, ${humanSize(event.size)}) in ${event.seconds.toFixed(2)}s`;
    default:
      return undefined;
  }
}

const layerNote = (event: Extract<BuildEvent, { type: 'step-done' }>): string =>
  event.layer ? ` layer ${short(event.layer.digest)} ${humanSize(event.layer.size)}` : event.emptyLayer ? ' (no layer)' : '';

// Escape sequences and control characters in RUN output: in a log they could rewrite earlier lines
// (cursor moves, clear screen), in the live view they would break its line count. Colours go too:
// logs stay plain text, and the live view dims the output itself.
// eslint-disable-next-line no-control-regex
export const TERMINAL_ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\^_]|[\x00-\x08\x0b-\x1f\x7f]/g;

/** RUN output as the live view can show it: no escapes, tabs as spaces (a tab's width depends on
 * the column, and the region's lines must not wrap). */
const forTerminal = (line: string): string => line.replace(TERMINAL_ESCAPES, '').replace(/\t/g, '    ');

/** Splits RUN output into complete lines per step; a carriage return (progress bars) ends a line
 * too, so nothing is ever overwritten. */
class LineSplitter {
  private readonly pending = new Map<number, string>();

  push(step: number, text: string): string[] {
    const lines = ((this.pending.get(step) ?? '') + text).split(/\r\n|\n|\r/);
    this.pending.set(step, lines.pop() ?? '');
    return lines;
  }

  /** The unterminated rest of a step's output. */
  flush(step: number): string | undefined {
    const rest = this.pending.get(step);
    this.pending.delete(step);
    return rest || undefined;
  }

  peek(step: number): string {
    return this.pending.get(step) ?? '';
  }
}

/** For logs: one line per event, each with the time since the build started; RUN output prefixed
 * with its step. Commit and blob progress at most once a second per step or blob. */
function plainRenderer(out: NodeJS.WriteStream): Renderer {
  const started = Date.now();
  const lines = new LineSplitter();
  const lastProgress = new Map<string, number>();
  const stamp = (): string => `#${((Date.now() - started) / 1000).toFixed(3)}`;
  const write = (line: string): void => void out.write(`${stamp()} ${line.replace(TERMINAL_ESCAPES, '')}\n`);
  const throttled = (key: string): boolean => {
    const now = Date.now();
    if (now - (lastProgress.get(key) ?? 0) < 1000) return true;
    lastProgress.set(key, now);
    return false;
  };
  const sink = (event: BuildEvent): void => {
    switch (event.type) {
      case 'step-start':
        return write(`[${event.step}/${event.total}] ${event.instruction}`);
      case 'step-output':
        for (const line of lines.push(event.step, event.text)) write(`[${event.step}] ${line}`);
        return;
      case 'step-commit':
        if (!throttled(`step ${event.step}`)) write(`[${event.step}] committing ${humanSize(event.bytes)}`);
        return;
      case 'step-done':
      case 'step-error': {
        const rest = lines.flush(event.step);
        if (rest) write(`[${event.step}] ${rest}`);
        if (event.type === 'step-error') return write(`[${event.step}] ERROR ${event.message}`);
        return write(event.cached ? `[${event.step}] CACHED` : `[${event.step}] DONE ${event.seconds.toFixed(2)}s${layerNote(event)}`);
      }
      case 'blob':
        if (event.state === 'progress' && throttled(`blob ${event.digest}`)) return;
        return write(describe(event)!);
      default: {
        const line = describe(event);
        if (line) write(line);
      }
    }
  };
  return Object.assign(sink, { close() {} });
}

interface LiveStep {
  step: number;
  title: string;
  started: number;
  tail: string[];
  committed?: number;
}

const TAIL_LINES = 6;
const FRAME_MS = 100;

const color = {
  running: (s: string) => `\x1b[36m${s}\x1b[0m`,
  done: (s: string) => `\x1b[34m${s}\x1b[0m`,
  cached: (s: string) => `\x1b[34m${s}\x1b[0m`,
  error: (s: string) => `\x1b[31m${s}\x1b[0m`,
  dim: (s: string) => `\x1b[2m${s}\x1b[0m`,
  bold: (s: string) => `\x1b[1m${s}\x1b[0m`,
};

/**
 * A live view on a terminal. Finished steps are printed once, as permanent lines; below them a
 * region is redrawn every 100 ms with each running step (elapsed time, bytes committed so far) and
 * the last lines of its output, and blobs in transfer. Every line of the region is clipped to the
 * terminal width so it never wraps: the region's height is then exactly the number of lines
 * drawn, which is what cursor-up needs to find its top again.
 */
function ttyRenderer(out: NodeJS.WriteStream): Renderer {
  const running = new Map<number, LiveStep>();
  const blobs = new Map<string, string>();
  const lines = new LineSplitter();
  let drawn = 0;
  let closed = false;
  // a pseudo-terminal without a size reports 0 columns and rows
  const width = (): number => Math.max(20, (out.columns || 100) - 1);
  const clip = (s: string, max = width()): string => {
    const chars = [...s];
    return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : s;
  };
  const elapsed = (from: number): string => `${((Date.now() - from) / 1000).toFixed(1)}s`;
  /** `title ... status` across the width, BuildKit style: the status right-aligned and kept whole,
   * the title clipped to make room for it. */
  const row = (title: string, status: string): string => {
    const room = Math.max(10, width() - [...status].length - 2);
    return `${clip(title, room).padEnd(room)}  ${status}`;
  };

  const region = (): string[] => {
    const steps = [...running.values()].sort((a, b) => a.step - b.step);
    const rows = Math.max(3, (out.rows || 24) - 2);
    const perStep = Math.max(1, Math.min(TAIL_LINES, Math.floor((rows - steps.length - blobs.size) / Math.max(1, steps.length))));
    const result: string[] = [];
    for (const s of steps) {
      const commit = s.committed !== undefined ? `committing ${humanSize(s.committed)}  ` : '';
      result.push(color.running(row(`=> ${s.title}`, `${commit}${elapsed(s.started)}`)));
      const partial = forTerminal(lines.peek(s.step));
      const tail = partial ? [...s.tail, partial] : s.tail;
      for (const line of tail.slice(-perStep)) result.push(color.dim(clip(`   ${line}`)));
    }
    for (const line of blobs.values()) result.push(color.running(clip(`=> ${line}`)));
    return result.slice(-rows);
  };

  /** One write per frame: erase the region, add permanent lines, draw the region again. */
  const frame = (permanent: string[] = []): void => {
    if (closed) return;
    const live = region();
    let text = drawn > 0 ? `\x1b[${drawn}A\r\x1b[0J` : '';
    for (const line of permanent) text += `${line}\n`;
    for (const line of live) text += `${line}\n`;
    drawn = live.length;
    if (text) out.write(text);
  };

  out.write('\x1b[?25l'); // no cursor blinking over the region
  const showCursor = (): void => void out.write('\x1b[?25h');
  process.once('exit', showCursor);
  const timer = setInterval(() => frame(), FRAME_MS);
  timer.unref();

  const sink = (event: BuildEvent): void => {
    switch (event.type) {
      case 'build-start':
        return;
      case 'step-start':
        running.set(event.step, { step: event.step, title: `[${event.step}/${event.total}] ${event.instruction}`, started: Date.now(), tail: [] });
        return frame();
      case 'step-output': {
        const s = running.get(event.step);
        const complete = lines.push(event.step, event.text);
        if (s) {
          s.tail.push(...complete.map(forTerminal));
          s.tail.splice(0, Math.max(0, s.tail.length - TAIL_LINES));
        }
        return; // drawn with the next frame: output can come in thousands of small chunks
      }
      case 'step-commit': {
        const s = running.get(event.step);
        if (s) s.committed = event.bytes;
        return;
      }
      case 'step-done':
      case 'step-error': {
        const s = running.get(event.step);
        running.delete(event.step);
        lines.flush(event.step);
        const title = `=> ${s?.title ?? `[${event.step}]`}`;
        if (event.type === 'step-error') return frame([color.error(row(`=> ERROR ${s?.title ?? `[${event.step}]`}`, s ? elapsed(s.started) : ''))]);
        if (event.cached) return frame([color.cached(clip(`=> CACHED ${s?.title ?? `[${event.step}]`}`))]);
        return frame([color.done(row(title, `${event.seconds.toFixed(1)}s${layerNote(event)}`))]);
      }
      case 'blob':
        if (event.state === 'progress') {
          blobs.set(event.digest, describe(event)!);
          return;
        }
        blobs.delete(event.digest);
        return frame([`=> ${describe(event)}`]);
      case 'build-done':
        frame([color.bold(`=> image ${event.manifestDigest}`), `   ${event.layers} layers, ${humanSize(event.size)}, built in ${event.seconds.toFixed(1)}s`]);
        return renderer.close();
      default: {
        const line = describe(event);
        if (line) frame([`=> ${line}`]);
      }
    }
  };
  const renderer = Object.assign(sink, {
    close(): void {
      if (closed) return;
      // Steps still running when the build stops were cancelled (another stage failed, or a signal).
      const cancelled = [...running.values()].sort((a, b) => a.step - b.step).map((s) => color.error(clip(`=> CANCELED ${s.title}`)));
      running.clear();
      blobs.clear();
      frame(cancelled); // the region erased, so a report written next starts below the last line
      closed = true;
      clearInterval(timer);
      process.removeListener('exit', showCursor);
      showCursor();
    },
  });
  return renderer;
}
