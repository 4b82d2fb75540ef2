import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, constants, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fsx } from '../../src/native/index.js';
import type { LayerEntry } from '../../src/layer/entry.js';
import { readUpperdir } from '../../src/layer/diff.js';

const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-diff-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

async function walk(dir: string, opts?: { clampMtime?: number }): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  for await (const entry of readUpperdir(dir, opts)) out.push(entry);
  return out;
}

/** The fields a test compares: everything but source and mtime. */
function shape(e: LayerEntry) {
  const { source: _s, mtime: _m, ...rest } = e;
  return rest;
}

describe('readUpperdir on a real overlay upperdir', () => {
  it('turns deletions, replaced dirs, hardlinks, suid and capabilities into the exact entry list', async () => {
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => path.join(tmp, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, merged]) mkdirSync(d);
    writeFileSync(path.join(lower, 'del1.txt'), 'gone');
    writeFileSync(path.join(lower, 'del2.txt'), 'gone too');
    mkdirSync(path.join(lower, 'dir'));
    writeFileSync(path.join(lower, 'dir', 'old1'), 'old');
    writeFileSync(path.join(lower, 'dir', 'old2'), 'old');
    writeFileSync(path.join(lower, 'repl'), 'a file that becomes a dir');
    writeFileSync(path.join(lower, 'chm'), '#!/bin/sh\n');
    chmodSync(path.join(lower, 'chm'), 0o755);
    mkdirSync(path.join(lower, 'keep'));
    writeFileSync(path.join(lower, 'keep', 'f'), 'untouched');

    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},index=off,redirect_dir=off,metacopy=off`, merged]);
    try {
      rmSync(path.join(merged, 'del1.txt'));
      rmSync(path.join(merged, 'del2.txt'));
      rmSync(path.join(merged, 'dir'), { recursive: true });
      mkdirSync(path.join(merged, 'dir'), { mode: 0o755 });
      writeFileSync(path.join(merged, 'dir', 'new'), 'new');
      rmSync(path.join(merged, 'repl'));
      mkdirSync(path.join(merged, 'repl'), { mode: 0o755 });
      writeFileSync(path.join(merged, 'a'), 'linked');
      linkSync(path.join(merged, 'a'), path.join(merged, 'b'));
      chmodSync(path.join(merged, 'chm'), 0o4755);
      writeFileSync(path.join(merged, 'cap'), 'ping');
      fsx.setxattr(path.join(merged, 'cap'), 'security.capability', CAP);
    } finally {
      execFileSync('umount', [merged]);
    }
    // Overlay really used a shared whiteout inode and marked the recreated dirs opaque.
    expect(lstatSync(path.join(upper, 'del1.txt')).ino).toBe(lstatSync(path.join(upper, 'del2.txt')).ino);
    expect(fsx.getxattr(path.join(upper, 'dir'), 'trusted.overlay.opaque')?.toString()).toBe('y');

    const entries = await walk(upper);
    const file = (p: string, mode: number, size: number) => ({ path: p, type: 'file', mode, uid: 0, gid: 0, size });
    expect(entries.map(shape)).toEqual([
      file('a', 0o644, 6),
      { path: 'b', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, size: 0, linkname: 'a' },
      { ...file('cap', 0o644, 4), xattrs: new Map([['security.capability', CAP]]) },
      file('chm', 0o4755, 10),
      file('.wh.del1.txt', 0o600, 0),
      file('.wh.del2.txt', 0o600, 0),
      { path: 'dir', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 },
      file('dir/.wh..wh..opq', 0o755, 0),
      file('dir/new', 0o644, 3),
      { path: 'repl', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 },
      file('repl/.wh..wh..opq', 0o755, 0),
    ]);
    expect(entries.find((e) => e.path === 'a')!.source).toBe(path.join(upper, 'a'));
    expect(entries.filter((e) => e.path.includes('.wh.')).every((e) => e.source === undefined)).toBe(true);
    const whiteoutMtime = Math.floor(lstatSync(path.join(upper, 'del1.txt')).mtimeMs / 1000);
    expect(entries.find((e) => e.path === '.wh.del1.txt')!.mtime).toBe(whiteoutMtime);
  });
});

describe('readUpperdir on a plain directory', () => {
  it('keeps devices, fifos, symlinks, ownership and sorts by name bytes, parents first', async () => {
    const d = path.join(tmp, 'd');
    mkdirSync(path.join(d, 'sub', 'deeper'), { recursive: true });
    for (const name of ['b', 'B', 'é', 'z', '~', 'sub/deeper/x', 'sub/a']) writeFileSync(path.join(d, name), name);
    execFileSync('chown', ['1234:5678', path.join(d, 'z')]);
    chmodSync(path.join(d, 'sub'), 0o1775);
    symlinkSync('../target with space', path.join(d, 'sub', 'ln'));
    fsx.mknod(path.join(d, 'null'), constants.S_IFCHR | 0o666, 1, 3);
    fsx.mknod(path.join(d, 'loop'), constants.S_IFBLK | 0o660, 7, 300);
    fsx.mknod(path.join(d, 'pipe'), constants.S_IFIFO | 0o644, 0, 0);
    chmodSync(path.join(d, 'null'), 0o666); // mknod honours the umask
    chmodSync(path.join(d, 'loop'), 0o660);
    fsx.setxattr(path.join(d, 'b'), 'user.keep', Buffer.from([0xde, 0xad]));
    fsx.setxattr(path.join(d, 'b'), 'trusted.overlay.origin', Buffer.from('x'));
    const server = net.createServer().listen(path.join(d, 'sock'));
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const entries = await walk(d);
      expect(entries.map((e) => e.path)).toEqual(['B', 'b', 'loop', 'null', 'pipe', 'sub', 'sub/a', 'sub/deeper', 'sub/deeper/x', 'sub/ln', 'z', '~', 'é']);
      const byPath = new Map(entries.map((e) => [e.path, e]));
      expect(byPath.get('b')!.xattrs).toEqual(new Map([['user.keep', Buffer.from([0xde, 0xad])]]));
      expect(shape(byPath.get('null')!)).toEqual({ path: 'null', type: 'char', mode: 0o666, uid: 0, gid: 0, size: 0, devmajor: 1, devminor: 3 });
      expect(shape(byPath.get('loop')!)).toEqual({ path: 'loop', type: 'block', mode: 0o660, uid: 0, gid: 0, size: 0, devmajor: 7, devminor: 300 });
      expect(byPath.get('pipe')!.type).toBe('fifo');
      expect(byPath.get('sub')!.mode).toBe(0o1775);
      expect(byPath.get('sub/ln')).toMatchObject({ type: 'symlink', linkname: '../target with space' });
      expect(byPath.get('z')).toMatchObject({ uid: 1234, gid: 5678, size: 1 });
    } finally {
      server.close();
    }
  });

  it('clamps newer mtimes and gives markers exactly the clamp time', async () => {
    const d = path.join(tmp, 'd');
    mkdirSync(path.join(d, 'opq'), { recursive: true });
    writeFileSync(path.join(d, 'old'), 'old');
    utimesSync(path.join(d, 'old'), 1000, 1000);
    writeFileSync(path.join(d, 'new'), 'new');
    fsx.mknod(path.join(d, 'gone'), constants.S_IFCHR, 0, 0);
    utimesSync(path.join(d, 'gone'), 500, 500);
    fsx.setxattr(path.join(d, 'opq'), 'trusted.overlay.opaque', Buffer.from('y'));
    const entries = await walk(d, { clampMtime: 2000 });
    expect(entries.map((e) => [e.path, e.mtime])).toEqual([
      ['.wh.gone', 2000],
      ['new', 2000],
      ['old', 1000],
      ['opq', 2000],
      ['opq/.wh..wh..opq', 2000],
    ]);
    const unclamped = await walk(d);
    expect(unclamped.find((e) => e.path === '.wh.gone')!.mtime).toBe(500);
  });

  it('refuses names that a layer cannot carry faithfully', async () => {
    const d = path.join(tmp, 'd');
    mkdirSync(d);
    writeFileSync(path.join(d, '.wh.sneaky'), '');
    await expect(walk(d)).rejects.toThrow(/reserved for whiteouts/);
    rmSync(path.join(d, '.wh.sneaky'));
    writeFileSync(Buffer.from(`${d}/bad-\xff`, 'latin1'), '');
    await expect(walk(d)).rejects.toThrow(/not valid UTF-8/);
    rmSync(Buffer.from(`${d}/bad-\xff`, 'latin1'));
    writeFileSync(path.join(d, 'meta'), '');
    fsx.setxattr(path.join(d, 'meta'), 'trusted.overlay.metacopy', Buffer.alloc(0));
    await expect(walk(d)).rejects.toThrow(/metacopy=off/);
  });
});
