import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { LayerEntry } from '../../src/layer/entry.js';
import { TarFormatError } from '../../src/layer/tar.js';
import { readTar } from '../../src/layer/tar-read.js';
import { writeTar } from '../../src/layer/tar-write.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-tar-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW; plus a value using every byte value.
const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));

const LONG_SPLIT = `${'p'.repeat(120)}/${'n'.repeat(80)}`; // 201 chars: fits ustar prefix + name
const LONG_PAX = `${'x'.repeat(150)}/${'y'.repeat(150)}`; // 301 chars: needs pax
const LONG_TARGET = `../${'t'.repeat(200)}`;

function file(p: string, content: string | Buffer, extra: Partial<LayerEntry> = {}): LayerEntry {
  const source = path.join(tmp, `src-${createHash('sha1').update(p).digest('hex')}`);
  writeFileSync(source, content);
  return { path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, size: Buffer.byteLength(content), mtime: 1700000000, source, ...extra };
}

function sampleEntries(): LayerEntry[] {
  return [
    { path: 'dir', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1700000001 },
    file('dir/file.txt', 'hello\n', { uid: 1000, gid: 1001, xattrs: new Map([['security.capability', CAP], ['user.bin', ALL_BYTES]]) }),
    { path: 'dir/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1700000002, linkname: 'file.txt' },
    { path: 'dir/hard', type: 'hardlink', mode: 0o644, uid: 1000, gid: 1001, size: 0, mtime: 1700000000, linkname: 'dir/file.txt' },
    { path: 'null', type: 'char', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 1700000003, devmajor: 1, devminor: 3 },
    { path: 'sda', type: 'block', mode: 0o660, uid: 0, gid: 6, size: 0, mtime: 1700000004, devmajor: 8, devminor: 0 },
    { path: 'fifo', type: 'fifo', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1700000005 },
    { path: 'tmp', type: 'dir', mode: 0o1777, uid: 0, gid: 0, size: 0, mtime: 1700000006 },
    file('suid', '#!/bin/sh\n', { mode: 0o4755 }),
    file('block512', Buffer.alloc(512, 0x61)),
    file('odd', Buffer.alloc(1000, 0x62)),
    file('empty', ''),
    file(LONG_SPLIT, 'split\n'),
    file(LONG_PAX, 'pax\n'),
    file('bigid', 'id\n', { uid: 1000000000, gid: 2000000000 }),
    file('héllo-ü.txt', 'utf8\n'),
    file('future', 'time\n', { mtime: 10_000_000_000 }),
    { path: 'longlink', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1700000007, linkname: LONG_TARGET },
    file('.wh.deleted', '', { mode: 0o600 }),
  ];
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

async function readAll(input: Readable) {
  const out: { header: LayerEntry; content: Buffer }[] = [];
  for await (const { header, body } of readTar(input)) out.push({ header, content: await collect(body) });
  return out;
}

/** Feeds bytes in small, odd-sized chunks to exercise every boundary case of the reader. */
function chunked(data: Buffer, size = 7): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  })(), { objectMode: false });
}

interface PyMember {
  name: string; type: string; mode: number; uid: number; gid: number; size: number; linkname: string;
  devmajor: number; devminor: number; mtime: number; uname: string; gname: string;
  pax: Record<string, string>; sha256?: string;
}

const PY_LIST = `
import tarfile, json, sys, hashlib
out = []
with tarfile.open(sys.argv[1]) as tf:
    for m in tf:
        d = dict(name=m.name, type=m.type.decode('latin1'), mode=m.mode, uid=m.uid, gid=m.gid, size=m.size,
                 linkname=m.linkname, devmajor=m.devmajor, devminor=m.devminor, mtime=int(m.mtime),
                 uname=m.uname, gname=m.gname,
                 pax={k: v.encode('utf-8', 'surrogateescape').hex() for k, v in m.pax_headers.items()})
        if m.isreg():
            d['sha256'] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
        out.append(d)
print(json.dumps(out))
`;

function pythonList(tarFile: string): PyMember[] {
  return JSON.parse(execFileSync('python3', ['-c', PY_LIST, tarFile], { encoding: 'utf8' })) as PyMember[];
}

function python(script: string, ...args: string[]): void {
  execFileSync('python3', ['-c', script, ...args]);
}

describe('tar writer', () => {
  it('round-trips every entry kind through its own reader, byte-exact xattrs included', async () => {
    const entries = sampleEntries();
    const tar = await collect(writeTar(entries));
    const back = await readAll(chunked(tar));
    expect(back.map((e) => e.header)).toEqual(entries.map(({ source: _, ...rest }) => rest));
    for (const [i, entry] of entries.entries()) {
      const expected = entry.source ? readFileSync(entry.source) : Buffer.alloc(0);
      expect(back[i]!.content.equals(expected)).toBe(true);
    }
    expect(back[1]!.header.xattrs!.get('security.capability')!.equals(CAP)).toBe(true);
    expect(back[1]!.header.xattrs!.get('user.bin')!.equals(ALL_BYTES)).toBe(true);
  });

  it('is read back identically by python tarfile (names, types, S_IFMT modes, ids, pax xattr bytes)', async () => {
    const entries = sampleEntries();
    const tarFile = path.join(tmp, 'sample.tar');
    writeFileSync(tarFile, await collect(writeTar(entries)));
    const members = pythonList(tarFile);
    expect(members.map((m) => m.name)).toEqual(entries.map((e) => e.path));
    expect(members.map((m) => m.type)).toEqual(['5', '0', '2', '1', '3', '4', '6', '5', '0', '0', '0', '0', '0', '0', '0', '0', '0', '2', '0']);
    const byName = new Map(members.map((m) => [m.name, m]));
    expect(byName.get('dir')!.mode).toBe(0o40755);
    expect(byName.get('dir/file.txt')!.mode).toBe(0o100644);
    expect(byName.get('dir/link')!.mode).toBe(0o120777);
    expect(byName.get('dir/hard')!.mode).toBe(0o100644);
    expect(byName.get('null')!.mode).toBe(0o20666);
    expect(byName.get('sda')!.mode).toBe(0o60660);
    expect(byName.get('fifo')!.mode).toBe(0o10600);
    expect(byName.get('tmp')!.mode).toBe(0o41777);
    expect(byName.get('suid')!.mode).toBe(0o104755);
    expect(byName.get('.wh.deleted')!.mode).toBe(0o600); // whiteouts carry bare permissions, as Docker's
    expect(byName.get('dir/file.txt')).toMatchObject({ uid: 1000, gid: 1001, uname: '', gname: '' });
    expect(byName.get('dir/file.txt')!.pax).toEqual({
      'SCHILY.xattr.security.capability': CAP.toString('hex'),
      'SCHILY.xattr.user.bin': ALL_BYTES.toString('hex'),
    });
    expect(byName.get('dir/file.txt')!.sha256).toBe(createHash('sha256').update('hello\n').digest('hex'));
    expect(byName.get('dir/hard')!.linkname).toBe('dir/file.txt');
    expect(byName.get('null')).toMatchObject({ devmajor: 1, devminor: 3 });
    expect(byName.get('sda')).toMatchObject({ devmajor: 8, devminor: 0 });
    expect(byName.get('bigid')).toMatchObject({ uid: 1000000000, gid: 2000000000 });
    expect(byName.get('bigid')!.pax).toEqual({ uid: Buffer.from('1000000000').toString('hex'), gid: Buffer.from('2000000000').toString('hex') });
    expect(byName.get(LONG_SPLIT)!.pax).toEqual({}); // ustar prefix split, no pax needed
    expect(Object.keys(byName.get(LONG_PAX)!.pax)).toEqual(['path']);
    expect(Object.keys(byName.get('héllo-ü.txt')!.pax)).toEqual(['path']);
    expect(byName.get('future')!.mtime).toBe(10_000_000_000);
    expect(byName.get('longlink')!.linkname).toBe(LONG_TARGET);
    expect(byName.get('odd')!.size).toBe(1000);
  });

  it('writes Docker-style ustar headers and ends with exactly two zero blocks', async () => {
    const tar = await collect(writeTar([file('a.txt', 'x'), { path: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 }]));
    expect(tar.length).toBe(512 * 2 + 512 + 1024);
    const h = tar.subarray(0, 512);
    expect(h.toString('latin1', 0, 6)).toBe('a.txt\0');
    expect(h.toString('latin1', 100, 108)).toBe('0100644\0');
    expect(h.toString('latin1', 124, 136)).toBe('00000000001\0');
    expect(h.toString('latin1', 156, 157)).toBe('0');
    expect(h.toString('latin1', 257, 265)).toBe('ustar\x0000');
    expect(h.subarray(265, 329).every((b) => b === 0)).toBe(true); // empty uname/gname
    expect(h.toString('latin1', 329, 345)).toBe('0000000\x000000000\0');
    const dir = tar.subarray(1024, 1536);
    expect(dir.toString('latin1', 0, 3)).toBe('d/\0');
    expect(dir.toString('latin1', 100, 108)).toBe('0040755\0');
    expect(tar.subarray(tar.length - 1024).every((b) => b === 0)).toBe(true);
    expect(await collect(writeTar([]))).toEqual(Buffer.alloc(1024));
  });

  it('is deterministic', async () => {
    const a = await collect(writeTar(sampleEntries()));
    const b = await collect(writeTar(sampleEntries()));
    expect(a.equals(b)).toBe(true);
  });

  it('refuses unclean paths and a file that shrank', async () => {
    await expect(collect(writeTar([file('../x', 'a')]))).rejects.toThrow(/not a clean relative path/);
    await expect(collect(writeTar([{ ...file('ok', 'a'), path: '/abs' }]))).rejects.toThrow(/not a clean relative path/);
    const shrunk = file('shrunk', 'abcdef');
    writeFileSync(shrunk.source!, 'ab');
    await expect(collect(writeTar([shrunk]))).rejects.toThrow(/shrank/);
  });
});

describe('tar reader', () => {
  it('reads GNU long names/links and base-256 ids written by python', async () => {
    const tarFile = path.join(tmp, 'gnu.tar');
    python(`
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as tf:
    t = tarfile.TarInfo('${LONG_PAX}'); t.uid = 10**10; t.gid = 3; t.mtime = 1600000000; data = b'gnu data'; t.size = len(data)
    tf.addfile(t, io.BytesIO(data))
    t = tarfile.TarInfo('l'); t.type = tarfile.SYMTYPE; t.linkname = '${LONG_TARGET}'
    tf.addfile(t)
`, tarFile);
    const back = await readAll(chunked(readFileSync(tarFile), 100));
    expect(back.map((e) => e.header)).toEqual([
      { path: LONG_PAX, type: 'file', mode: 0o644, uid: 10 ** 10, gid: 3, size: 8, mtime: 1600000000 },
      { path: 'l', type: 'symlink', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, linkname: LONG_TARGET },
    ]);
    expect(back[0]!.content.toString()).toBe('gnu data');
  });

  it('applies pax global and per-entry headers, with binary xattrs from python', async () => {
    const tarFile = path.join(tmp, 'pax.tar');
    python(`
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT, pax_headers={'comment': 'global'}) as tf:
    t = tarfile.TarInfo('f'); data = b'x' * 700; t.size = len(data); t.uid = 5
    t.pax_headers = {'SCHILY.xattr.user.bin': bytes(range(256)).decode('utf-8', 'surrogateescape'), 'uid': '4000000000'}
    tf.addfile(t, io.BytesIO(data))
    t = tarfile.TarInfo('g'); tf.addfile(t, io.BytesIO(b''))
`, tarFile);
    const back = await readAll(chunked(readFileSync(tarFile), 513));
    expect(back.map((e) => e.header.path)).toEqual(['f', 'g']);
    expect(back[0]!.header.uid).toBe(4000000000);
    expect(back[0]!.header.xattrs!.get('user.bin')!.equals(Buffer.from(Array.from({ length: 256 }, (_, i) => i)))).toBe(true);
    expect(back[0]!.content.equals(Buffer.alloc(700, 0x78))).toBe(true);
    expect(back[1]!.header.xattrs).toBeUndefined();
  });

  it('reads GNU tar --xattrs --format=posix output', async () => {
    const dir = path.join(tmp, 'gnutar-src');
    execFileSync('mkdir', ['-p', path.join(dir, 'sub')]);
    writeFileSync(path.join(dir, 'sub', 'f'), 'content');
    execFileSync('setfattr', ['-n', 'user.note', '-v', '0xff00fe', path.join(dir, 'sub', 'f')]);
    const tarFile = path.join(tmp, 'gnutar.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=posix', '-C', dir, '-cf', tarFile, 'sub']);
    const back = await readAll(chunked(readFileSync(tarFile), 4096));
    expect(back.map((e) => [e.header.path, e.header.type])).toEqual([['sub', 'dir'], ['sub/f', 'file']]);
    expect(back[1]!.header.xattrs!.get('user.note')).toEqual(Buffer.from([0xff, 0x00, 0xfe]));
    expect(back[1]!.content.toString()).toBe('content');
  });

  it('skips unknown entry types together with their data', async () => {
    const tar = await collect(writeTar([file('a', 'A'.repeat(600)), file('b', 'B')]));
    // Turn 'a' into an unknown type 'Z' (fixing the checksum) and keep its 600 data bytes.
    const header = tar.subarray(0, 512);
    header[156] = 'Z'.charCodeAt(0);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((s, b) => s + b, 0);
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const back = await readAll(chunked(tar, 333));
    expect(back.map((e) => [e.header.path, e.content.toString()])).toEqual([['b', 'B']]);
  });

  it('skips bodies the consumer does not read, and drains the input after the end', async () => {
    const tar = Buffer.concat([await collect(writeTar([file('a', 'a'.repeat(5000)), file('b', 'bb')])), Buffer.alloc(10240)]);
    const input = chunked(tar, 1000);
    const names: string[] = [];
    for await (const { header } of readTar(input)) names.push(header.path);
    expect(names).toEqual(['a', 'b']);
    expect(input.readableEnded).toBe(true);
  });

  it('accepts an archive that ends without its zero blocks', async () => {
    const tar = await collect(writeTar([file('a', 'abc')]));
    const back = await readAll(chunked(tar.subarray(0, tar.length - 1024), 64));
    expect(back.map((e) => e.content.toString())).toEqual(['abc']);
  });

  it('rejects truncated and corrupt input with a clear error', async () => {
    const tar = await collect(writeTar([file('a', 'x'.repeat(3000)), file(LONG_PAX, 'y')]));
    for (const [cut, message] of [[300, /truncated/], [512 + 1000, /content of 'a'.*truncated/], [512 + 3072 + 700, /truncated/]] as const) {
      const err = await readAll(chunked(tar.subarray(0, cut), 128)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TarFormatError);
      expect((err as Error).message).toMatch(message);
    }
    const corrupt = Buffer.from(tar);
    corrupt[10] = 0x41;
    await expect(readAll(chunked(corrupt))).rejects.toThrow(/invalid header checksum at offset 0/);
    await expect(readAll(chunked(Buffer.from('this is not a tar file at all'.repeat(40))))).rejects.toThrow(TarFormatError);
    const loneZero = Buffer.concat([Buffer.alloc(512), tar]);
    await expect(readAll(chunked(loneZero, 4096))).rejects.toThrow(/lone zero block/);
  });
});
