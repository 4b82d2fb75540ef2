// The live progress view on a real terminal: strata runs inside tmux (its own server socket) and
// the test reads the screen with capture-pane while the build runs and after it ends.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { makeContext, strataBin, tempDir, tool } from '../helpers.js';

const socket = `strata-test-${process.pid}`;
const root = tempDir('tty-store');
const ctx = makeContext([
  'FROM scratch',
  'ADD busybox-rootfs.tar /',
  'ENV A=1',
  // output, then a wait long enough for the test to see the step running with its tail
  'RUN for i in 1 2 3 4 5 6 7 8; do echo tail-line-$i; done; sleep 3',
  'RUN echo two > /two',
  '',
].join('\n'));
afterAll(() => {
  try {
    execFileSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  } catch {
    // the server ends by itself once its only session has ended
  }
  for (const dir of [root, ctx]) fs.rmSync(dir, { recursive: true, force: true });
});

const screen = (): string[] => execFileSync('tmux', ['-L', socket, 'capture-pane', '-p', '-t', 'build']).toString().split('\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it.skipIf(!tool('tmux'))('tty: live step lines with the running RUN\'s output tail, then one line per step and the summary', async () => {
  const exitFile = path.join(root, 'exit-code');
  const command = `${process.execPath} ${strataBin} build --root ${root} ${ctx}; echo $? > ${exitFile}; sleep 600`;
  execFileSync('tmux', ['-L', socket, 'new-session', '-d', '-s', 'build', '-x', '100', '-y', '40', '-e', 'CI=', 'sh', '-c', command]);

  // while the RUN waits: its line is live (elapsed time) and the tail of its output is under it
  let live: string[] = [];
  for (let i = 0; i < 300 && !fs.existsSync(exitFile); i++) {
    live = screen();
    if (live.some((l) => l.startsWith('=> [3/4] RUN')) && live.includes('   tail-line-8')) break;
    await sleep(100);
  }
  const runLine = live.findIndex((l) => l.startsWith('=> [3/4] RUN for i in'));
  expect(runLine).toBe(2);
  expect(live[runLine]).toMatch(/ \d+\.\ds$/);
  expect(live.slice(runLine + 1, runLine + 7)).toEqual([3, 4, 5, 6, 7, 8].map((n) => `   tail-line-${n}`));
  expect(live.slice(0, 2)).toEqual([
    expect.stringMatching(/^=> \[1\/4\] ADD busybox-rootfs\.tar \/ +\d+\.\ds layer [0-9a-f]{12} 1\.1MB$/),
    expect.stringMatching(/^=> \[2\/4\] ENV A=1 +0\.0s \(no layer\)$/),
  ]);

  for (let i = 0; i < 600 && !fs.existsSync(exitFile); i++) await sleep(100);
  expect(fs.readFileSync(exitFile, 'utf8').trim()).toBe('0');
  const final = screen().filter((l) => l !== '');
  // the output of a finished step is gone; each step has one line; the summary and the digest follow
  expect(final).toEqual([
    expect.stringMatching(/^=> \[1\/4\] ADD busybox-rootfs\.tar \/ +\d+\.\ds layer [0-9a-f]{12} 1\.1MB$/),
    expect.stringMatching(/^=> \[2\/4\] ENV A=1 +0\.0s \(no layer\)$/),
    expect.stringMatching(/^=> \[3\/4\] RUN for i in 1 2 3 4 5 6 7 8; do echo tail-line-\$i; done; sleep 3 +\d+\.\ds \(no layer\)$/),
    expect.stringMatching(/^=> \[4\/4\] RUN echo two > \/two +\d+\.\ds layer [0-9a-f]{12} \d+B$/),
    expect.stringMatching(/^=> image sha256:[0-9a-f]{64}$/),
    expect.stringMatching(/^ {3}2 layers, 1\.1MB, built in \d+\.\ds$/),
    expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
  ]);
  expect(final[4].slice('=> image '.length)).toBe(final[6]);
}, 120_000);
