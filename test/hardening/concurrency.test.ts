// Four builds at once on one store - two of one Dockerfile, two of another sharing its first layer -
// while `strata prune --all` runs over and over: every build succeeds with the digest it has in a
// store of its own, and the store is clean afterwards. Builds lock nothing against each other (the
// shared layers are installed by atomic renames) and their leases keep prune off what they use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { makeContext, strata, tempDir } from '../helpers.js';
import { overlayMountsAnywhere, startStrata } from './procs.js';

const A = `FROM scratch
ADD busybox-rootfs.tar /
RUN for i in $(seq 1 50); do echo "a $i" > /tmp/a$i; done
COPY a.txt /a.txt
`;
const B = `FROM scratch
ADD busybox-rootfs.tar /
RUN rm /etc/passwd && echo b > /b
RUN mkdir /srv && echo served > /srv/index
`;

let ctxA: string;
let ctxB: string;
let store: string;
const expected: Record<string, string> = {};

beforeAll(async () => {
  ctxA = makeContext(A, { 'a.txt': 'a\n' });
  ctxB = makeContext(B);
  for (const [name, ctx] of [['a', ctxA], ['b', ctxB]]) {
    const own = tempDir('conc-ref');
    const run = await strata(['build', '--root', own, '-q', ctx]);
    expect(run.stderr).toBe('');
    expected[name] = run.stdout.trim();
    fs.rmSync(own, { recursive: true, force: true });
  }
  expect(expected.a).not.toBe(expected.b);
  store = tempDir('conc-store');
});

afterAll(() => {
  for (const dir of [ctxA, ctxB, store]) fs.rmSync(dir, { recursive: true, force: true });
});

describe('concurrent builds on one store', () => {
  it('4 builds at once, with prune --all running, all give their own digests', async () => {
    const builds = [['a', ctxA, 'test/a:1'], ['a', ctxA, 'test/a:2'], ['b', ctxB, 'test/b:1'], ['b', ctxB, 'test/b:2']]
      .map(([name, ctx, tag]) => ({ name, tag, proc: startStrata(['build', '--root', store, '-q', '-t', tag, ctx]) }));
    let finished = false;
    const pruning = (async () => {
      let runs = 0;
      while (!finished) {
        const run = await strata(['prune', '--all', '--root', store]);
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        runs++;
      }
      return runs;
    })();
    const results = await Promise.all(builds.map((b) => b.proc.done));
    finished = true;
    expect(await pruning).toBeGreaterThan(0);
    builds.forEach((b, i) => {
      expect(results[i].stderr, b.tag).toBe('');
      expect(results[i].code, b.tag).toBe(0);
      expect(results[i].stdout.trim(), b.tag).toBe(expected[b.name]);
    });

    const images = await strata(['images', '--root', store]);
    for (const b of builds) expect(images.stdout).toMatch(new RegExp(`^${b.tag.replace('/', '\\/')}\\s+${expected[b.name]}$`, 'm'));
    const fsck = await strata(['fsck', '--root', store]);
    expect(fsck.stdout).toMatch(/ 4 tags, \d+ cache records: clean\n$/);
    expect(fs.readdirSync(`${store}/tmp`)).toEqual([]);
    expect(fs.readdirSync(`${store}/leases`)).toEqual([]);
    expect(overlayMountsAnywhere(store)).toEqual([]);
    // one copy of the shared base layer: 3 layers of A + 3 of B, the ADD layer counted once
    expect(fs.readdirSync(`${store}/layers`)).toHaveLength(5);
  });
});
