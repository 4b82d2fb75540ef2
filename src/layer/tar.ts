// The tar format itself: turning a LayerEntry into header blocks and a header block back into
// fields. Streaming lives in tar-write.ts and tar-read.ts; both use only what is here.
//
// Headers are encoded by hand rather than through tar-stream's pack: tar-stream builds pax records
// as JS strings (binary xattrs such as security.capability come out UTF-8-mangled) and decides on
// its own when to add pax headers. A ustar block is 512 bytes of fixed fields, so owning it costs
// little and makes the output byte-for-byte deterministic. The choices follow Go's archive/tar as
// Docker uses it (moby pkg/archive), so layers look like Docker's: ustar whenever the entry fits
// (long names split into prefix/name), pax ('x') only when something does not fit ustar, S_IFMT
// bits in the mode field (moby's fillGo18FileTypeBits), numeric ids with empty uname/gname.

import path from 'node:path';
import { LayerEntry, EntryType, WHITEOUT_PREFIX } from './entry.js';

export const BLOCK = 512;

export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

const TYPEFLAG: Record<EntryType, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6',
};

const S_IFMT_BITS: Record<EntryType, number> = {
  file: 0o100000, hardlink: 0o100000, symlink: 0o120000, char: 0o20000, block: 0o60000, dir: 0o40000, fifo: 0o10000,
};

// ustar field offsets and lengths (POSIX pax spec, "ustar Interchange Format").
const F = {
  name: [0, 100], mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12],
  chksum: [148, 8], typeflag: [156, 1], linkname: [157, 100], magic: [257, 6], version: [263, 2],
  uname: [265, 32], gname: [297, 32], devmajor: [329, 8], devminor: [337, 8], prefix: [345, 155],
} as const;
type Field = keyof typeof F;

const MAX_OCTAL_8 = 0o7777777; // largest value of an 8-byte octal field (7 digits + NUL)
const MAX_OCTAL_12 = 0o77777777777;

export const PAX_XATTR = 'SCHILY.xattr.';

// ---------------------------------------------------------------- writing

/** The header block(s) for one entry: a pax 'x' header first when the entry does not fit ustar. */
export function encodeEntryHeader(entry: LayerEntry): Buffer {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const linkname = entry.linkname ?? '';
  const size = entry.type === 'file' ? entry.size : 0;
  // Docker writes whiteout markers with bare permission bits (0600, or the opaque dir's perms).
  const typeBits = path.posix.basename(entry.path).startsWith(WHITEOUT_PREFIX) ? 0 : S_IFMT_BITS[entry.type];
  const devmajor = entry.devmajor ?? 0;
  const devminor = entry.devminor ?? 0;
  if (devmajor > MAX_OCTAL_8 || devminor > MAX_OCTAL_8) {
    throw new TarFormatError(`tar: device number of '${entry.path}' too large (${devmajor}:${devminor})`);
  }

  const records = new Map<string, Buffer>();
  const text = (v: string | number) => Buffer.from(String(v), 'utf8');
  if (!fitsString(name, 100)) records.set('path', text(name));
  if (!fitsString(linkname, 100)) records.set('linkpath', text(linkname));
  if (entry.uid > MAX_OCTAL_8) records.set('uid', text(entry.uid));
  if (entry.gid > MAX_OCTAL_8) records.set('gid', text(entry.gid));
  if (size > MAX_OCTAL_12) records.set('size', text(size));
  if (entry.mtime < 0 || entry.mtime > MAX_OCTAL_12) records.set('mtime', text(entry.mtime));
  for (const [key, value] of entry.xattrs ?? []) records.set(PAX_XATTR + key, value);

  // A long ASCII path alone does not need pax: ustar splits it into prefix + name.
  let prefix = '';
  let shortName = name;
  const split = records.size === 1 && records.has('path') ? splitUstarPath(name) : undefined;
  if (split) {
    records.delete('path');
    [prefix, shortName] = split;
  }

  const header = encodeBlock({
    name: shortName, prefix, linkname, typeflag: TYPEFLAG[entry.type],
    mode: (entry.mode & 0o7777) | typeBits, uid: entry.uid, gid: entry.gid, size, mtime: entry.mtime,
    devmajor, devminor,
  });
  if (records.size === 0) return header;

  const paxData = encodePaxRecords(records);
  const paxHeader = encodeBlock({
    name: paxHeaderName(name), prefix: '', linkname: '', typeflag: 'x',
    mode: 0, uid: 0, gid: 0, size: paxData.length, mtime: 0, devmajor: 0, devminor: 0,
  });
  return Buffer.concat([paxHeader, paxData, Buffer.alloc(padding(paxData.length)), header]);
}

/** Zero bytes that round `size` up to a whole block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

interface BlockFields {
  name: string; prefix: string; linkname: string; typeflag: string;
  mode: number; uid: number; gid: number; size: number; mtime: number; devmajor: number; devminor: number;
}

function encodeBlock(h: BlockFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  // Fields that did not fit are carried by pax records; the ustar copy is best effort, as in Go.
  putString(block, 'name', h.name);
  putOctal(block, 'mode', h.mode);
  putOctal(block, 'uid', h.uid <= MAX_OCTAL_8 ? h.uid : 0);
  putOctal(block, 'gid', h.gid <= MAX_OCTAL_8 ? h.gid : 0);
  putOctal(block, 'size', h.size <= MAX_OCTAL_12 ? h.size : 0);
  putOctal(block, 'mtime', h.mtime >= 0 && h.mtime <= MAX_OCTAL_12 ? h.mtime : 0);
  putString(block, 'typeflag', h.typeflag);
  putString(block, 'linkname', h.linkname);
  block.write('ustar\0', F.magic[0], 'latin1');
  block.write('00', F.version[0], 'latin1');
  putOctal(block, 'devmajor', h.devmajor);
  putOctal(block, 'devminor', h.devminor);
  putString(block, 'prefix', h.prefix);
  // The checksum field is 6 octal digits, NUL, space (computed with the field as spaces).
  block.fill(0x20, F.chksum[0], F.chksum[0] + F.chksum[1]);
  const sum = checksum(block);
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', F.chksum[0], 'latin1');
  return block;
}

function putString(block: Buffer, field: Field, value: string): void {
  const [offset, length] = F[field];
  Buffer.from(toAscii(value), 'latin1').copy(block, offset, 0, length);
}

/** Zero-padded octal with a trailing NUL, filling the field (Go's formatOctal). */
function putOctal(block: Buffer, field: Field, value: number): void {
  const [offset, length] = F[field];
  block.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, 'latin1');
}

function fitsString(s: string, length: number): boolean {
  return s.length <= length && isAscii(s);
}

function isAscii(s: string): boolean {
  return /^[\x01-\x7f]*$/.test(s);
}

function toAscii(s: string): string {
  return isAscii(s) ? s : s.replace(/[^\x01-\x7f]/g, '');
}

/** Go's splitUSTARPath: split at a '/' so that prefix <= 155 and name <= 100 bytes. */
function splitUstarPath(name: string): [string, string] | undefined {
  if (name.length <= 100 || !isAscii(name)) return undefined;
  let length = name.length;
  if (length > 156) length = 156;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const suffixLength = name.length - i - 1;
  if (i <= 0 || suffixLength > 100 || suffixLength === 0 || i > 155) return undefined;
  return [name.slice(0, i), name.slice(i + 1)];
}

/** Go names the pax header "<dir>/PaxHeaders.0/<base>"; readers ignore it, but it keeps output Docker-like. */
function paxHeaderName(name: string): string {
  const cut = name.lastIndexOf('/') + 1;
  const joined = path.posix.join(name.slice(0, cut), 'PaxHeaders.0', name.slice(cut));
  return toAscii(joined).slice(0, 100).replace(/\/+$/, '');
}

/** "<length> <key>=<value>\n" records, sorted by key; values are raw bytes. */
export function encodePaxRecords(records: Map<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const key of [...records.keys()].sort()) {
    const value = records.get(key)!;
    const keyBytes = Buffer.from(key, 'utf8');
    const rest = 1 + keyBytes.length + 1 + value.length + 1; // ' ' key '=' value '\n'
    let length = rest + String(rest).length;
    if (String(length).length !== String(rest).length) length = rest + String(length).length;
    parts.push(Buffer.from(`${length} `, 'latin1'), keyBytes, Buffer.from('='), value, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- reading

export interface HeaderBlock {
  /** Name bytes, with the ustar prefix already joined on. */
  name: Buffer;
  linkname: Buffer;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  devmajor: number;
  devminor: number;
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Unsigned sum of the block with the checksum field counted as spaces. */
function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= F.chksum[0] && i < F.chksum[0] + F.chksum[1] ? 0x20 : block[i]!;
  return sum;
}

/** Old tars summed signed bytes; accepting both is what GNU tar and Go do. */
function signedChecksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    sum += i >= F.chksum[0] && i < F.chksum[0] + F.chksum[1] ? 0x20 : (block[i]! << 24) >> 24;
  }
  return sum;
}

export function decodeHeaderBlock(block: Buffer, offset: number): HeaderBlock {
  const stored = parseNumeric(block, 'chksum', offset);
  if (stored !== checksum(block) && stored !== signedChecksum(block)) {
    throw new TarFormatError(`tar: invalid header checksum at offset ${offset} (not a tar archive, or corrupt)`);
  }
  const magic = block.toString('latin1', F.magic[0], F.magic[0] + 8);
  let name = cString(block, 'name');
  // Only POSIX ustar has a prefix; GNU keeps atime/ctime in those bytes.
  if (magic === 'ustar\x0000') {
    const prefix = cString(block, 'prefix');
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  const hasDevices = magic.startsWith('ustar');
  return {
    name,
    linkname: cString(block, 'linkname'),
    typeflag: String.fromCharCode(block[F.typeflag[0]]!),
    mode: parseNumeric(block, 'mode', offset),
    uid: parseNumeric(block, 'uid', offset),
    gid: parseNumeric(block, 'gid', offset),
    size: parseNumeric(block, 'size', offset),
    mtime: parseNumeric(block, 'mtime', offset, true),
    devmajor: hasDevices ? parseNumeric(block, 'devmajor', offset) : 0,
    devminor: hasDevices ? parseNumeric(block, 'devminor', offset) : 0,
  };
}

function cString(block: Buffer, field: Field): Buffer {
  const [offset, length] = F[field];
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return Buffer.from(nul === -1 ? raw : raw.subarray(0, nul));
}

/** Octal (space/NUL padded) or GNU base-256 (high bit of the first byte set). */
function parseNumeric(block: Buffer, field: Field, offset: number, allowNegative = false): number {
  const [start, length] = F[field];
  const raw = block.subarray(start, start + length);
  if (raw[0]! & 0x80) {
    const negative = (raw[0]! & 0x40) !== 0;
    const invert = negative ? 0xff : 0;
    let value = 0n;
    raw.forEach((byte, i) => {
      let b = byte ^ invert;
      if (i === 0) b &= 0x7f;
      value = (value << 8n) | BigInt(b);
    });
    if (negative) value = -value - 1n;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || (value < 0n && !allowNegative)) {
      throw new TarFormatError(`tar: ${field} field out of range at offset ${offset}`);
    }
    return Number(value);
  }
  const text = raw.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw new TarFormatError(`tar: invalid ${field} field ${JSON.stringify(text)} at offset ${offset}`);
  }
  return parseInt(text, 8);
}

/** Binary-safe parse of "<length> <key>=<value>\n" records; values stay raw bytes. */
export function parsePaxRecords(data: Buffer, offset: number): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    // Some writers pad the data with NULs after the last record.
    if (data[pos] === 0 && data.subarray(pos).every((b) => b === 0)) break;
    const space = data.indexOf(0x20, pos);
    const lengthText = space === -1 ? '' : data.toString('latin1', pos, space);
    const length = /^[0-9]+$/.test(lengthText) ? parseInt(lengthText, 10) : NaN;
    const end = pos + length;
    if (!(length > 0) || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarFormatError(`tar: malformed pax record in the header at offset ${offset}`);
    }
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError(`tar: malformed pax record in the header at offset ${offset}`);
    records.set(record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1)));
    pos = end;
  }
  return records;
}
