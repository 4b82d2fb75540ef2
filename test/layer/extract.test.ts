import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, constants, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync,
  rmSync, symlinkSync, utimesSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fsx } from '../../src/native/index.js';
import { readUpperdir } from '../../src/layer/diff.js';
import { commitLayer } from '../../src/layer/commit.js';
import { decompressedStream } from '../../src/layer/compression.js';
import { LayerExtractError, extractLayer } from '../../src/layer/extract.js';
import { writeTar } from '../../src/layer/tar-write.js';
import type { LayerEntry } from '../../src/layer/entry.js';
import { writeMemberTar, type TarMember } from '../helpers.js';

const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-extract-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** What an overlay upperdir looks like after a RUN step, built by hand so every kind of entry is present. */
function makeUpperdir(u: string): void {
  mkdirSync(path.join(u, 'usr', 'bin'), { recursive: true });
  writeFileSync(path.join(u, 'usr', 'bin', 'ping'), 'ELF...');
  chmodSync(path.join(u, 'usr', 'bin', 'ping'), 0o4755);
  fsx.setxattr(path.join(u, 'usr', 'bin', 'ping'), 'security.capability', CAP);
  linkSync(path.join(u, 'usr', 'bin', 'ping'), path.join(u, 'usr', 'bin', 'ping6'));
  symlinkSync('ping', path.join(u, 'usr', 'bin', 'pong'));
  writeFileSync(path.join(u, 'owned'), 'x'.repeat(1500));
  execFileSync('chown', ['1000:2000', path.join(u, 'owned')]);
  fsx.setxattr(path.join(u, 'owned'), 'user.blob', Buffer.from([0xff, 0x00, 0x80]));
  writeFileSync(path.join(u, 'héllo wörld'), 'utf8');
  mkdirSync(path.join(u, `${'d'.repeat(120)}`));
  writeFileSync(path.join(u, `${'d'.repeat(120)}`, 'f'.repeat(150)), 'long');
  mkdirSync(path.join(u, 'dev'));
  fsx.mknod(path.join(u, 'dev', 'null'), constants.S_IFCHR | 0o666, 1, 3);
  chmodSync(path.join(u, 'dev', 'null'), 0o666);
  fsx.mknod(path.join(u, 'dev', 'loop0'), constants.S_IFBLK | 0o660, 7, 0);
  fsx.mknod(path.join(u, 'pipe'), constants.S_IFIFO | 0o600, 0, 0);
  // Whiteouts: overlay links them all to one inode.
  fsx.mknod(path.join(u, 'deleted'), constants.S_IFCHR, 0, 0);
  linkSync(path.join(u, 'deleted'), path.join(u, 'dev', 'gone'));
  mkdirSync(path.join(u, 'opaque'));
  fsx.setxattr(path.join(u, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'));
  writeFileSync(path.join(u, 'opaque', 'only'), 'only me');
  mkdirSync(path.join(u, 'ro', 'inner'), { recursive: true });
  writeFileSync(path.join(u, 'ro', 'inner', 'file'), 'inside a read-only dir');
  chmodSync(path.join(u, 'ro', 'inner'), 0o555);
  chmodSync(path.join(u, 'ro'), 0o500);
  mkdirSync(path.join(u, 'tmp'));
  chmodSync(path.join(u, 'tmp'), 0o1777);
  for (const p of ['owned', 'ro/inner/file', 'opaque']) utimesSync(path.join(u, p), 1234567890, 1234567890);
}

interface Node {
  type: string; mode: number; uid: number; gid: number; mtime: number;
  content?: string; target?: string; rdev?: string; xattrs: Record<string, string>;
}

/** Every observable property of a tree, keyed by relative path; also the groups of hardlinked paths. */
function snapshot(root: string, skipWhiteoutLinks = true): { nodes: Record<string, Node>; links: string[][] } {
  const nodes: Record<string, Node> = {};
  const inodes = new Map<number, string[]>();
  const visit = (rel: string) => {
    const abs = path.join(root, rel);
    for (const name of readdirSync(abs).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const child = path.join(root, childRel);
      const st = lstatSync(child);
      const xattrs: Record<string, string> = {};
      for (const x of fsx.listxattr(child).sort()) xattrs[x] = fsx.getxattr(child, x)!.toString('hex');
      const node: Node = {
        type: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'fifo',
        mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), xattrs,
      };
      if (st.isFile()) node.content = createHash('sha256').update(readFileSync(child)).digest('hex');
      if (st.isSymbolicLink()) node.target = readlinkSync(child);
      if (st.isCharacterDevice() || st.isBlockDevice()) node.rdev = st.rdev.toString(16);
      nodes[childRel] = node;
      const whiteout = st.isCharacterDevice() && st.rdev === 0;
      if (!st.isDirectory() && st.nlink > 1 && !(whiteout && skipWhiteoutLinks)) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), childRel]);
      if (st.isDirectory()) visit(childRel);
    }
  };
  visit('');
  return { nodes, links: [...inodes.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort() };
}

async function tarOf(entries: LayerEntry[]): Promise<Readable> {
  const parts: Buffer[] = [];
  for await (const chunk of writeTar(entries)) parts.push(chunk);
  return Readable.from([Buffer.concat(parts)]);
}

describe('extractLayer', () => {
  it('round-trips an upperdir through commit and extract, whiteouts and opaque dirs included', async () => {
    const upper = path.join(tmp, 'upper');
    mkdirSync(upper);
    makeUpperdir(upper);
    const blob = path.join(tmp, 'layer.tar.gz');
    const committed = await commitLayer(readUpperdir(upper), blob);

    const { stream, compression, isTar } = await decompressedStream(blob);
    expect([compression, isTar]).toEqual(['gzip', true]);
    const dest = path.join(tmp, 'lower');
    const result = await extractLayer(stream, dest);
    expect(result.entries).toBe(committed.entries);

    const before = snapshot(upper);
    const after = snapshot(dest);
    expect(after).toEqual(before);
    // Spot-check what the comparison covers.
    expect(after.nodes['deleted']).toMatchObject({ type: 'char', rdev: '0', mode: 0 });
    expect(after.nodes['dev/gone']).toMatchObject({ type: 'char', rdev: '0' });
    expect(after.nodes['opaque']!.xattrs).toEqual({ 'trusted.overlay.opaque': '79' });
    expect(after.nodes['usr/bin/ping']).toMatchObject({ mode: 0o4755, xattrs: { 'security.capability': CAP.toString('hex') } });
    expect(after.nodes['ro']!.mode).toBe(0o500);
    expect(after.links).toEqual([['usr/bin/ping', 'usr/bin/ping6']]);
    expect(after.nodes['owned']).toMatchObject({ uid: 1000, gid: 2000, mtime: 1234567890 });
  });

  it('produces a lowerdir that overlay honours: whiteouts hide files, opaque dirs hide lower contents', async () => {
    const base = path.join(tmp, 'base');
    mkdirSync(path.join(base, 'opaque'), { recursive: true });
    writeFileSync(path.join(base, 'deleted'), 'from base');
    writeFileSync(path.join(base, 'kept'), 'from base');
    writeFileSync(path.join(base, 'opaque', 'hidden'), 'from base');
    const upper = path.join(tmp, 'upper');
    mkdirSync(upper);
    makeUpperdir(upper);
    const blob = path.join(tmp, 'layer.tar.gz');
    await commitLayer(readUpperdir(upper), blob);
    const lower = path.join(tmp, 'lower');
    await extractLayer((await decompressedStream(blob)).stream, lower);

    const merged = path.join(tmp, 'merged');
    mkdirSync(merged);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower}:${base}`, merged]);
    try {
      expect(existsSync(path.join(merged, 'deleted'))).toBe(false);
      expect(readFileSync(path.join(merged, 'kept'), 'utf8')).toBe('from base');
      expect(readdirSync(path.join(merged, 'opaque'))).toEqual(['only']);
    } finally {
      execFileSync('umount', [merged]);
    }
  });

  it("keeps whiteout files as they are in 'keep' mode and never applies overlay xattrs from the archive", async () => {
    const dest = path.join(tmp, 'dest');
    const entries: LayerEntry[] = [
      { path: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, xattrs: new Map([['trusted.overlay.redirect', Buffer.from('/etc')], ['user.ok', Buffer.from('1')]]) },
      { path: 'd/.wh.x', type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 0 },
      { path: 'd/.wh..wh..opq', type: 'file', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 },
    ];
    await extractLayer(await tarOf(entries), dest, { whiteouts: 'keep' });
    expect(readdirSync(path.join(dest, 'd')).sort()).toEqual(['.wh..wh..opq', '.wh.x']);
    expect(fsx.listxattr(path.join(dest, 'd'))).toEqual(['user.ok']);
  });

  it('fills read-only directories before making them read-only (checked without root privileges)', async () => {
    const owner = { uid: 1000, gid: 1000 };
    const dir = (p: string, mode: number): LayerEntry => ({ path: p, type: 'dir', mode, ...owner, size: 0, mtime: 100 });
    const src = path.join(tmp, 'f');
    writeFileSync(src, 'read me');
    const tar = await tarOf([dir('ro', 0o555), dir('ro/sub', 0o500), { path: 'ro/sub/f', type: 'file', mode: 0o444, ...owner, size: 7, mtime: 100, source: src }]);
    const dest = path.join(tmp, 'dest');
    mkdirSync(dest);
    execFileSync('chown', ['1000:1000', dest]);
    chmodSync(tmp, 0o755);
    // Root's CAP_DAC_OVERRIDE would hide the problem; the effective ids drop it, the saved uid 0 restores it.
    process.setegid!(1000);
    process.seteuid!(1000);
    try {
      await extractLayer(tar, dest);
    } finally {
      process.seteuid!(0);
      process.setegid!(0);
    }
    expect(lstatSync(path.join(dest, 'ro')).mode & 0o7777).toBe(0o555);
    expect(lstatSync(path.join(dest, 'ro', 'sub')).mode & 0o7777).toBe(0o500);
    expect(readFileSync(path.join(dest, 'ro', 'sub', 'f'), 'utf8')).toBe('read me');
  });

  it('replaces what is in the way: a symlink by a file (without writing through it), a dir by a file', async () => {
    const dest = path.join(tmp, 'dest');
    const canary = path.join(tmp, 'canary');
    writeFileSync(canary, 'canary');
    const script = `
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tf:
    t = tarfile.TarInfo('s'); t.type = tarfile.SYMTYPE; t.linkname = sys.argv[2]; tf.addfile(t)
    t = tarfile.TarInfo('s'); t.size = 5; tf.addfile(t, io.BytesIO(b'pwned'))
    t = tarfile.TarInfo('d'); t.type = tarfile.DIRTYPE; tf.addfile(t)
    t = tarfile.TarInfo('d/child'); t.size = 1; tf.addfile(t, io.BytesIO(b'c'))
    t = tarfile.TarInfo('d'); t.size = 4; tf.addfile(t, io.BytesIO(b'file'))
`;
    const tarFile = path.join(tmp, 'replace.tar');
    execFileSync('python3', ['-c', script, tarFile, canary]);
    await extractLayer((await decompressedStream(tarFile)).stream, dest);
    expect(readFileSync(canary, 'utf8')).toBe('canary');
    expect(readFileSync(path.join(dest, 's'), 'utf8')).toBe('pwned');
    expect(readFileSync(path.join(dest, 'd'), 'utf8')).toBe('file');
  });
});

describe('extractLayer against tar-slip', () => {
  // tmp/box/{dest,canary}; anything outside dest must stay exactly as it was.

  function outsideDest(box: string, dest: string) {
    const all = snapshot(path.dirname(box), false);
    const destRel = path.relative(path.dirname(box), dest);
    return Object.fromEntries(Object.entries(all.nodes).filter(([p]) => p !== destRel && !p.startsWith(`${destRel}/`)));
  }

  async function attempt(members: (canary: string) => TarMember[]): Promise<{ error: unknown; dest: string }> {
    const box = path.join(tmp, 'box');
    const dest = path.join(box, 'dest');
    const canary = path.join(box, 'canary');
    rmSync(box, { recursive: true, force: true });
    mkdirSync(canary, { recursive: true });
    mkdirSync(dest); // creating it changes box's mtime; do that before the snapshot
    writeFileSync(path.join(canary, 'file'), 'canary');
    utimesSync(path.join(canary, 'file'), 1000, 1000);
    const tarFile = path.join(tmp, 'evil.tar');
    writeMemberTar(tarFile, members(canary));
    const before = outsideDest(box, dest);
    const error = await extractLayer((await decompressedStream(tarFile)).stream, dest).then(() => undefined, (e: unknown) => e);
    expect(outsideDest(box, dest)).toEqual(before);
    expect(fsx.listxattr(canary)).toEqual([]);
    return { error, dest };
  }

  const cases: [string, (canary: string) => TarMember[], RegExp][] = [
    ['../x', () => [{ name: '../x', data: 'evil' }], /'\.\.\/x' contains '\.\.'/],
    ['a/../../x', () => [{ name: 'a/../../x', data: 'evil' }], /contains '\.\.'/],
    ['/../x', () => [{ name: '/../x', data: 'evil' }], /contains '\.\.'/],
    ['symlink to an absolute dir, then a file through it', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/x', data: 'evil' }], /'l' is a symlink; refusing/],
    ['symlink to a relative dir, then a dir through it', () => [{ name: 'l', type: 'symlink', linkname: '../canary' }, { name: 'l/sub', type: 'dir' }], /'l' is a symlink/],
    ['hardlink to ../../etc/passwd', () => [{ name: 'h', type: 'hardlink', linkname: '../../etc/passwd' }], /contains '\.\.'/],
    ['hardlink to an absolute path outside', (c) => [{ name: 'h', type: 'hardlink', linkname: `${c}/file` }], /is not a file extracted earlier/],
    ['hardlink through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'h', type: 'hardlink', linkname: 'l/file' }], /is not a file extracted earlier/],
    ['whiteout of ..', () => [{ name: '.wh...' }], /whiteout of '\.\.'/],
    ['whiteout of .. in a subdir', () => [{ name: 'a/.wh...' }], /whiteout of '\.\.'/],
    ['empty whiteout name', () => [{ name: 'a/.wh.' }], /whiteout of ''/],
    ['whiteout through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/.wh.file' }], /'l' is a symlink/],
    ['opaque marker through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/.wh..wh..opq' }], /'l' is a symlink/],
    ['whiteout inside a .. path', () => [{ name: '../.wh.canary' }], /contains '\.\.'/],
  ];

  for (const [title, members, message] of cases) {
    it(`rejects ${title}`, async () => {
      const { error } = await attempt(members);
      expect(error).toBeInstanceOf(LayerExtractError);
      expect((error as Error).message).toMatch(message);
    });
  }

  it('neutralises absolute names by extracting them inside dest', async () => {
    const { error, dest } = await attempt(() => [{ name: '/abs', data: 'inside' }, { name: '/etc/passwd', data: 'fake' }]);
    expect(error).toBeUndefined();
    expect(readFileSync(path.join(dest, 'abs'), 'utf8')).toBe('inside');
    expect(readFileSync(path.join(dest, 'etc', 'passwd'), 'utf8')).toBe('fake');
  });
});

describe('decompressedStream', () => {
  async function read(stream: Readable): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  it('sniffs gzip, bzip2, xz, zstd and plain tars, and tells tars from other files', async () => {
    const src = path.join(tmp, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'f'), 'x'.repeat(100_000));
    const tar = path.join(tmp, 'plain.tar');
    const parts: Buffer[] = [];
    for await (const chunk of writeTar(readUpperdir(src))) parts.push(chunk);
    const tarBytes = Buffer.concat(parts);
    writeFileSync(tar, tarBytes);
    const text = path.join(tmp, 'notes.txt');
    writeFileSync(text, 'just some text\n'.repeat(100));

    for (const [tool, ext, compression] of [['gzip', 'gz', 'gzip'], ['bzip2', 'bz2', 'bzip2'], ['xz', 'xz', 'xz'], ['zstd', 'zst', 'zstd']] as const) {
      for (const [file, bytes, isTar] of [[tar, tarBytes, true], [text, readFileSync(text), false]] as const) {
        execFileSync(tool, ['-k', '-f', '-q', file]);
        const result = await decompressedStream(`${file}.${ext}`);
        expect([result.compression, result.isTar]).toEqual([compression, isTar]);
        expect((await read(result.stream)).equals(bytes)).toBe(true);
      }
    }
    const plain = await decompressedStream(tar);
    expect([plain.compression, plain.isTar]).toEqual(['none', true]);
    expect((await read(plain.stream)).equals(tarBytes)).toBe(true);
    const empty = path.join(tmp, 'empty');
    writeFileSync(empty, '');
    const none = await decompressedStream(empty);
    expect([none.compression, none.isTar]).toEqual(['none', false]);
    none.stream.destroy();
  });

  it('surfaces corruption found by an external decompressor as a stream error', async () => {
    const file = path.join(tmp, 'data');
    writeFileSync(file, Buffer.alloc(2_000_000, 0x61));
    execFileSync('xz', ['-k', file]);
    const xz = readFileSync(`${file}.xz`);
    xz[xz.length - 20] ^= 0xff; // inside the index/footer: only noticed at the end
    writeFileSync(`${file}.xz`, xz);
    const { stream } = await decompressedStream(`${file}.xz`);
    await expect(read(stream)).rejects.toThrow(/xz -dc .* failed/);
  });
});
