// SIGKILL (and now and then SIGTERM or SIGINT) of the builder at seeded random moments of a build
// with RUN, ADD and an export. After each kill: no overlay mount of the store is left (in this namespace or any other), `strata fsck`
// finds the store clean, and the next build over what the dead one left gives the expected digest.
// CI runs STRATA_KILLS=6; scripts/kill-test.sh runs 50 (STRATA_KILL_SEED picks other moments).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { seededRandom } from '../../src/util/seeded-random.js';
import { makeContext, overlayMountsUnder, strata, tempDir } from '../helpers.js';
import { overlayMountsAnywhere, processesOf, startStrata, waitForNothingLeft } from './procs.js';

const KILLS = Number(process.env.STRATA_KILLS ?? 6);
const SEED = Number(process.env.STRATA_KILL_SEED ?? 20261123);
/** Mostly SIGKILL; SIGTERM and SIGINT check the graceful stop leaves the same clean store. */
const SIGNALS: NodeJS.Signals[] = ['SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGTERM', 'SIGINT'];

const DOCKERFILE = `FROM scratch
ADD busybox-rootfs.tar /
RUN for i in $(seq 1 100); do echo "line $i" > /tmp/f$i; done && rm /etc/passwd
ADD data.tar.gz /data/
RUN cat /data/* /tmp/f1 > /sum
COPY extra.txt /extra.txt
`;

let ctx: string;
let store: string;
let work: string;
let expected: string;
let buildSeconds: number;

const buildArgs = (out: string): string[] => ['build', '--root', store, '--no-cache', '-q', '-t', 'test/kill:1', '-o', `type=oci,dest=${out}`, ctx];

beforeAll(async () => {
  ctx = makeContext(DOCKERFILE, { 'extra.txt': 'extra\n' });
  const data = path.join(ctx, 'data');
  fs.mkdirSync(data);
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, `part${i}`), `part ${i}\n`.repeat(2000));
  execFileSync('tar', ['-czf', path.join(ctx, 'data.tar.gz'), '-C', data, '.']);
  fs.rmSync(data, { recursive: true });
  store = tempDir('kill-store');
  work = tempDir('kill-out');
  // The reference: a whole build in a store of its own, timed to spread the kills over it.
  const reference = tempDir('kill-ref');
  const started = Date.now();
  const run = await strata(['build', '--root', reference, '-q', ctx]);
  buildSeconds = (Date.now() - started) / 1000;
  expect(run.stderr).toBe('');
  expected = run.stdout.trim();
  expect(expected).toMatch(/^sha256:[0-9a-f]{64}$/);
  fs.rmSync(reference, { recursive: true, force: true });
});

afterAll(() => {
  for (const dir of [ctx, store, work]) fs.rmSync(dir, { recursive: true, force: true });
});

describe(`SIGKILL/SIGTERM/SIGINT of the builder at ${KILLS} seeded moments (seed ${SEED})`, () => {
  it('leaves no mount, a clean store, and the next build gives the expected digest', async () => {
    const random = seededRandom(SEED);
    for (let kill = 0; kill < KILLS; kill++) {
      const delayMs = Math.round(random() * buildSeconds * 1000);
      const signal = SIGNALS[Math.floor(random() * SIGNALS.length)];
      const where = `${signal} ${kill + 1}/${KILLS} at ${delayMs} ms`;
      const victim = startStrata(buildArgs(path.join(work, `killed-${kill}.tar`)));
      await new Promise((r) => setTimeout(r, delayMs));
      victim.kill(signal);
      const stopped = await victim.done;
      if (signal !== 'SIGKILL' && stopped.code !== 0 && stopped.code !== null) {
        // caught: the build stops with a one-line reason (before node installed the handler, the
        // signal's default action ends it silently, code null)
        expect(stopped.stderr, where).toContain(`strata: ${signal} received, stopping the build`);
        expect(stopped.stderr, where).toMatch(new RegExp(`ERROR: .*interrupted by ${signal}`));
        expect(stopped.stderr, where).not.toMatch(/\n\s+at /);
      }
      await waitForNothingLeft(store);
      expect(overlayMountsUnder(store), where).toEqual([]); // /proc/self/mountinfo
      expect(overlayMountsAnywhere(store), where).toEqual([]);
      expect(processesOf(store), where).toEqual([]);

      const fsck = await strata(['fsck', '--root', store]);
      expect(fsck.stdout + fsck.stderr, where).toMatch(/: clean\n$/);
      expect(fsck.code, where).toBe(0);
      // fsck (like any command) removed what the dead build left
      expect(fs.readdirSync(path.join(store, 'tmp')), where).toEqual([]);
      expect(fs.readdirSync(path.join(store, 'leases')), where).toEqual([]);

      const out = path.join(work, `after-${kill}.tar`);
      const next = await strata(buildArgs(out));
      expect(next.stderr, `${where}: the next build`).toBe('');
      expect(next.stdout.trim(), where).toBe(expected);
      expect(fs.statSync(out).size, where).toBeGreaterThan(0);
    }
    const final = await strata(['fsck', '--root', store]);
    expect(final.stdout).toMatch(/ 1 tags, \d+ cache records: clean\n$/);
  }, 120_000 + KILLS * 30_000);
});
