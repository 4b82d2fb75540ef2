// Environment failures give one line naming the cause and what to do, no stack trace, and lose
// nothing: a full disk (a 2 MiB tmpfs store), a read-only store (a read-only bind mount), not root
// (setpriv to nobody), and a store on a filesystem overlayfs refuses as upperdir (overlayfs itself).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeContext, repoRoot, strata, strataBin, tempDir, type Run } from '../helpers.js';
import { overlayMountsAnywhere } from './procs.js';

let ctx: string;
let scratch: string;
const mounted: string[] = [];

function mount(args: string[], target: string): void {
  fs.mkdirSync(target, { recursive: true });
  execFileSync('mount', [...args, target]);
  mounted.unshift(target);
}

function expectOneLine(run: Run, message: string | RegExp): void {
  expect(run.code).not.toBe(0);
  const errors = run.stderr.split('\n').filter((l) => l.startsWith('ERROR: '));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo ran > /ran\n');
  scratch = tempDir('env-errors');
});

afterAll(() => {
  for (const target of mounted) execFileSync('umount', ['-l', target]);
  fs.rmSync(ctx, { recursive: true, force: true });
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('environment errors', () => {
  it('disk full: names ENOSPC and prune, leaves no temp dir, partial layer or mount', async () => {
    const small = path.join(scratch, 'small');
    mount(['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs'], small);
    const root = path.join(small, 'store');
    const run = await strata(['build', '--root', root, '--progress', 'plain', ctx]);
    expectOneLine(run, /^ERROR: .*Dockerfile:2: no space left on the device holding .* \(ENOSPC\): free space there, run `strata prune`, or point --root at a larger filesystem$/);
    const fsck = await strata(['fsck', '--root', root]);
    expect(fsck.stdout).toBe('checked 0 blobs, 0 layers, 0 tags, 0 cache records: clean\n');
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
    expect(overlayMountsAnywhere(root)).toEqual([]);
  });

  it('read-only store: names EROFS for a build; listing and checking still work', async () => {
    const root = path.join(scratch, 'rw');
    const built = await strata(['build', '--root', root, '-q', '-t', 'test/ro:1', ctx]);
    expect(built.code).toBe(0);
    const ro = path.join(scratch, 'ro');
    mount(['--bind', root], ro);
    execFileSync('mount', ['-o', 'remount,ro,bind', ro]);

    const run = await strata(['build', '--root', ro, ctx]);
    expectOneLine(run, new RegExp(`^ERROR: ${ro}/\\S+ is on a read-only filesystem \\(EROFS\\): the store must be writable; remount it read-write or point --root at a writable directory$`));
    const images = await strata(['images', '--root', ro]);
    expect(images.stdout).toContain(`test/ro:1`);
    expect(images.stdout).toContain(built.stdout.trim());
    const fsck = await strata(['fsck', '--root', ro]);
    expect(fsck.stdout).toMatch(/^checked 4 blobs, 2 layers, 1 tags, \d+ cache records: clean\n$/);
    const prune = await strata(['prune', '--root', ro]);
    expectOneLine(prune, /is on a read-only filesystem \(EROFS\)/);
  });

  it('not root: says that strata build must run as root', async () => {
    const root = path.join(scratch, 'nobody');
    fs.mkdirSync(root);
    fs.chownSync(root, 65534, 65534);
    fs.chmodSync(ctx, 0o755); // a readable context: what is refused is the user, not the files
    const run = await new Promise<Run>((resolve) => {
      const child = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, strataBin, 'build', '--root', root, ctx], { cwd: repoRoot });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    expectOneLine(run, /^ERROR: strata build must run as root \(running as uid 65534\): RUN needs mount and pid namespaces and an overlay mount, and layers keep file owners; run it with sudo$/);
    expect(fs.readdirSync(root)).toEqual([]); // refused before touching the store
  });

  it('a store on a filesystem that cannot hold an upperdir: names the filesystem and what to use', async () => {
    const layers = path.join(scratch, 'ovl');
    for (const d of ['lower', 'upper', 'work']) fs.mkdirSync(path.join(layers, d), { recursive: true });
    const merged = path.join(layers, 'merged');
    mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${layers}/lower,upperdir=${layers}/upper,workdir=${layers}/work`], merged);
    const root = path.join(merged, 'store');
    const run = await strata(['build', '--root', root, ctx]);
    expectOneLine(run, new RegExp(`^ERROR: .*Dockerfile:3: the kernel refused the overlay mount \\(Invalid argument\\): the store ${root} is on overlayfs, which cannot hold an overlay upperdir; point --root at ext4, xfs, btrfs or tmpfs$`));
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
  });
});
