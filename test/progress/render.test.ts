// The renderers fed with a fixed sequence of build events: plain as a snapshot (times masked), the
// tty view through a minimal terminal (test/progress/screen.ts), rawjson parsed back.
import { describe, expect, it, vi } from 'vitest';
import type { BuildEvent } from '../../src/progress/events.js';
import { makeRenderer, resolveMode } from '../../src/progress/render.js';
import { screenOf } from './screen.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const LAYER = `sha256:${'cd'.repeat(32)}`;

/** A stream that records what is written, with a terminal's size when asked. */
function sink(tty?: { columns: number; rows: number }): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  return {
    isTTY: Boolean(tty),
    columns: tty?.columns,
    rows: tty?.rows,
    write: (chunk: string) => chunks.push(chunk) > 0,
    text: () => chunks.join(''),
  } as unknown as NodeJS.WriteStream & { text: () => string };
}

const start = (step: number, instruction: string): BuildEvent => ({ type: 'step-start', step, total: 4, stage: '0', instruction, line: step + 1 });

const EVENTS: BuildEvent[] = [
  { type: 'build-start', dockerfile: 'Dockerfile', steps: 4 },
  start(1, 'ADD busybox-rootfs.tar /'),
  { type: 'step-done', step: 1, layer: { digest: LAYER, size: 1056742 }, emptyLayer: false, cached: true, seconds: 0 },
  start(2, 'ENV A=1'),
  { type: 'step-done', step: 2, emptyLayer: true, cached: false, seconds: 0.001 },
  start(3, 'RUN ./configure && make'),
  { type: 'step-output', step: 3, stream: 'stdout', text: 'checking for cc... yes\nbuilding' },
  { type: 'step-output', step: 3, stream: 'stderr', text: ' 10%\r 50%\r100%\n\x1b[2J\x1b[31mred\x1b[0m\tdone\n' },
  { type: 'step-commit', step: 3, bytes: 2_500_000 },
  { type: 'step-output', step: 3, stream: 'stdout', text: 'no newline at the end' },
  { type: 'step-done', step: 3, layer: { digest: LAYER, size: 2_345_678 }, emptyLayer: false, cached: false, seconds: 12.345 },
  start(4, 'RUN false'),
  { type: 'step-error', step: 4, message: 'process "/bin/sh -c false" returned a non-zero code: 1' },
  { type: 'export', kind: 'oci', dest: 'out.tar' },
  { type: 'export', kind: 'tar', dest: '-' },
  { type: 'build-done', manifestDigest: DIGEST, configDigest: DIGEST, layers: 2, size: 3_402_420, seconds: 12.5 },
];

describe('plain', () => {
  it('one line per event, output prefixed with its step, \\r and cursor escapes never reach the log', () => {
    const out = sink();
    const render = makeRenderer('plain', out);
    for (const event of EVENTS) render(event);
    render.close();
    const masked = out.text().replace(/^#\d+\.\d{3} /gm, '#T ');
    expect(masked).toMatchInlineSnapshot(`
      "#T building Dockerfile (4 steps)
      #T [1/4] ADD busybox-rootfs.tar /
      #T [1] CACHED
      #T [2/4] ENV A=1
      #T [2] DONE 0.00s (no layer)
      #T [3/4] RUN ./configure && make
      #T [3] checking for cc... yes
      #T [3] building 10%
      #T [3]  50%
      #T [3] 100%
      #T [3] red	done
      #T [3] committing 2.5MB
      #T [3] no newline at the end
      #T [3] DONE 12.35s layer cdcdcdcdcdcd 2.3MB
      #T [4/4] RUN false
      #T [4] ERROR process "/bin/sh -c false" returned a non-zero code: 1
      #T exported oci to out.tar
      #T exported tar to stdout
      #T built sha256:abababababababababababababababababababababababababababababababab (2 layers, 3.4MB) in 12.50s
      "
    `);
  });
});

describe('tty', () => {
  it('the final screen: a line per step with its status, no output of finished steps, the summary', () => {
    const out = sink({ columns: 60, rows: 20 });
    const render = makeRenderer('tty', out);
    for (const event of EVENTS) render(event);
    render.close();
    expect(screenOf(out.text(), 60)).toEqual([
      '=> CACHED [1/4] ADD busybox-rootfs.tar /',
      '=> [2/4] ENV A=1                            0.0s (no layer)',
      '=> [3/4] RUN ./configure &…  12.3s layer cdcdcdcdcdcd 2.3MB',
      '=> ERROR [4/4] RUN false                               0.0s',
      '=> exported oci to out.tar',
      '=> exported tar to stdout',
      // the digest is never clipped: it wraps, as permanent lines may
      `=> image ${DIGEST}`.slice(0, 60),
      `=> image ${DIGEST}`.slice(60),
      '   2 layers, 3.4MB, built in 12.5s',
      '',
    ]);
    expect(out.text().endsWith('\x1b[?25h')).toBe(true); // the cursor is shown again
  });

  it('while a RUN runs: its line with elapsed time and bytes committed, the tail of its output under it', () => {
    vi.useFakeTimers();
    try {
      const out = sink({ columns: 50, rows: 20 });
      const render = makeRenderer('tty', out);
      for (const event of EVENTS.slice(0, 10)) render(event);
      vi.advanceTimersByTime(2500);
      const screen = screenOf(out.text(), 50);
      expect(screen.slice(0, 2)).toEqual(['=> CACHED [1/4] ADD busybox-rootfs.tar /', '=> [2/4] ENV A=1                  0.0s (no layer)']);
      expect(screen[2]).toMatch(/^=> \[3\/4\] RUN \.\/configure…  committing 2\.5MB  2\.\ds$/);
      // complete lines, each \r-separated part as its own line, escapes gone, tabs as spaces, then the partial line
      expect(screen.slice(3)).toEqual(['   checking for cc... yes', '   building 10%', '    50%', '   100%', '   red    done', '   no newline at the end', '']);
      render.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('long instructions and output are clipped to the width: nothing wraps, so the redraw stays in place', () => {
    const out = sink({ columns: 30, rows: 10 });
    const render = makeRenderer('tty', out);
    render(start(1, `RUN echo ${'x'.repeat(100)}`));
    render({ type: 'step-output', step: 1, stream: 'stdout', text: `${'y'.repeat(100)}\n` });
    render(start(2, 'RUN sleep 1'));
    const live = screenOf(out.text(), 30);
    expect(live).toEqual([expect.stringMatching(/^=> \[1\/4\] RUN echo x+…  0\.0s$/), expect.stringMatching(/^ {3}y+…$/), expect.stringMatching(/^=> \[2\/4\] RUN sleep 1 +0\.0s$/), '']);
    for (const line of live) expect([...line].length).toBeLessThan(30);
    render.close();
    // steps still running when the build stops are shown as cancelled, nothing is left "running"
    expect(screenOf(out.text(), 30)).toEqual([`=> CANCELED [1/4] RUN echo x…`, '=> CANCELED [2/4] RUN sleep 1', '']);
  });
});

describe('rawjson and auto', () => {
  it('rawjson: one object per event with a time', () => {
    const out = sink();
    const render = makeRenderer('rawjson', out);
    for (const event of EVENTS) render(event);
    const lines = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as BuildEvent & { time: string });
    expect(lines.map(({ time, ...event }) => (expect(Date.parse(time)).not.toBeNaN(), event))).toEqual(EVENTS);
  });

  it('auto is tty only on a terminal outside CI and not on a dumb terminal', () => {
    expect(resolveMode('auto', { isTTY: true }, { TERM: 'xterm' })).toBe('tty');
    expect(resolveMode('auto', { isTTY: false }, { TERM: 'xterm' })).toBe('plain');
    expect(resolveMode('auto', { isTTY: true }, { TERM: 'xterm', CI: 'true' })).toBe('plain');
    expect(resolveMode('auto', { isTTY: true }, { TERM: 'dumb' })).toBe('plain');
    expect(resolveMode('tty', { isTTY: false }, { CI: 'true' })).toBe('tty');
  });
});
