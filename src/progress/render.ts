// Renderers for build events: plain (one line per event, for logs and CI), tty (a live view of the
// steps, BuildKit style) and rawjson (one JSON object per event, for tools).
import type { BuildEvent, ProgressSink } from './events.js';

export type ProgressMode = 'auto' | 'plain' | 'tty' | 'rawjson';

const humanSize = (bytes: number): string => {
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

export function makeRenderer(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): ProgressSink {
  const resolved = mode === 'auto' ? (out.isTTY && !process.env.CI ? 'tty' : 'plain') : mode;
  if (resolved === 'rawjson') return (event) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  if (resolved === 'tty') return ttyRenderer(out);
  return plainRenderer(out);
}

function describe(event: BuildEvent): string | undefined {
  switch (event.type) {
    case 'build-start':
      return `building ${event.dockerfile} (${event.steps} steps)`;
    case 'note':
      return `note: ${event.message}`;
    case 'step-start':
      return `[${event.step}/${event.total}] ${event.instruction}`;
    case 'step-done':
      if (event.cached) return `[${event.step}] CACHED`;
      return `[${event.step}] DONE ${event.seconds.toFixed(2)}s${event.layer ? ` layer ${short(event.layer.digest)} ${humanSize(event.layer.size)}` : event.emptyLayer ? ' (no layer)' : ''}`;
    case 'step-error':
      return `[${event.step}] ERROR ${event.message}`;
    case 'export':
      return `exported ${event.kind} to ${event.dest}`;
    case 'build-done':
      return `built ${event.manifestDigest} (${event.layers} layers, ${humanSize(event.size)}) in ${event.seconds.toFixed(2)}s`;
    default:
      return undefined;
  }
}

function plainRenderer(out: NodeJS.WriteStream): ProgressSink {
  const started = Date.now();
  const pending = new Map<number, string>();
  const stamp = (): string => `#${((Date.now() - started) / 1000).toFixed(3)}`;
  return (event) => {
    if (event.type === 'step-output') {
      // whole lines only, each prefixed with its step, so parallel output stays readable
      const text = (pending.get(event.step) ?? '') + event.text;
      const lines = text.split('\n');
      pending.set(event.step, lines.pop() ?? '');
      for (const line of lines) out.write(`${stamp()} [${event.step}] ${line}\n`);
      return;
    }
    if (event.type === 'step-done' || event.type === 'step-error') {
      const rest = pending.get(event.step);
      if (rest) out.write(`${stamp()} [${event.step}] ${rest}\n`);
      pending.delete(event.step);
    }
    const line = describe(event);
    if (line) out.write(`${stamp()} ${line}\n`);
  };
}

/** A live view: finished steps scroll up, the running step shows its elapsed time and output tail. */
function ttyRenderer(out: NodeJS.WriteStream): ProgressSink {
  let running: { step: number; title: string; started: number; tail: string[] } | undefined;
  let drawn = 0;
  const TAIL = 6;
  const width = (): number => Math.max(20, (out.columns ?? 100) - 1);
  const clip = (s: string): string => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s);
  const erase = (): void => {
    if (drawn > 0) out.write(`\x1b[${drawn}A\x1b[0J`);
    drawn = 0;
  };
  const draw = (): void => {
    erase();
    if (!running) return;
    const lines = [`\x1b[36m=> ${clip(running.title)}  ${((Date.now() - running.started) / 1000).toFixed(1)}s\x1b[0m`, ...running.tail.map((l) => `\x1b[2m   ${clip(l)}\x1b[0m`)];
    out.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  return (event) => {
    switch (event.type) {
      case 'step-start':
        running = { step: event.step, title: `[${event.step}/${event.total}] ${event.instruction}`, started: Date.now(), tail: [] };
        draw();
        return;
      case 'step-output':
        if (running) {
          running.tail.push(...event.text.split('\n').filter(Boolean));
          running.tail.splice(0, Math.max(0, running.tail.length - TAIL));
        }
        return;
      case 'step-done':
      case 'step-error': {
        erase();
        const title = running?.title ?? `[${event.step}]`;
        const status = event.type === 'step-error' ? `\x1b[31mERROR\x1b[0m` : event.cached ? 'CACHED' : `\x1b[32mDONE\x1b[0m ${event.seconds.toFixed(1)}s`;
        out.write(`=> ${clip(title)}  ${status}\n`);
        if (event.type === 'step-error') for (const l of running?.tail ?? []) out.write(`   ${clip(l)}\n`);
        running = undefined;
        return;
      }
      default: {
        const line = describe(event);
        if (line && event.type !== 'build-start') {
          erase();
          out.write(`${line}\n`);
          draw();
        }
        if (event.type === 'build-done') clearInterval(timer);
      }
    }
  };
}
