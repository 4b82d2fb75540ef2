// Streaming tar reader: ustar, v7, pax ('x' per entry, 'g' global), GNU long names ('L'/'K') and
// base-256 numbers. Written here rather than taken from tar-stream, whose extractor ignores pax
// uid/gid and decodes pax values as UTF-8 (corrupting binary xattrs such as security.capability).
// Input is pulled only as fast as the consumer reads entry bodies, so memory stays bounded.

import { Readable } from 'node:stream';
import { EntryType, LayerEntry } from './entry.js';
import { BLOCK, HeaderBlock, PAX_XATTR, TarFormatError, decodeHeaderBlock, isZeroBlock, padding, parsePaxRecords } from './tar.js';

export interface TarEntry {
  /** Metadata with pax/GNU extensions applied. path (trailing '/' dropped) and linkname are as the
   * archive stores them, NOT sanitised: extractLayer does that. Never has `source`. */
  header: LayerEntry;
  /** The entry's content, empty unless a regular file. Read it (or leave it) before asking for the
   * next entry; whatever is left unread is skipped then. */
  body: Readable;
}

const BODY_CHUNK = 1 << 20;
/** Pax and GNU long-name data is held in memory; real ones are a few KiB at most. */
const MAX_SPECIAL_SIZE = 1 << 20;

const TYPES: Record<string, EntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

/** The entries of a tar archive, in order. After the end-of-archive blocks the rest of the input
 * is read and discarded, so upstream streams (gunzip, hashing) run to completion and report errors.
 * Truncated or corrupt input throws a TarFormatError; entries of unknown type are skipped. */
export async function* readTar(input: AsyncIterable<unknown>): AsyncGenerator<TarEntry> {
  const source = new ByteSource(input);
  const globalPax = new Map<string, Buffer>();
  let localPax: Map<string, Buffer> | undefined;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  let finished = false;
  try {
    for (;;) {
      const at = source.offset;
      const block = await source.exact(BLOCK, () => `the header at offset ${at}`);
      // Input that stops cleanly between entries without the zero blocks is accepted, as Go and GNU tar do.
      if (!block) break;
      if (isZeroBlock(block)) {
        const second = await source.exact(BLOCK, () => `the end-of-archive block at offset ${at + BLOCK}`);
        if (second && !isZeroBlock(second)) throw new TarFormatError(`tar: a lone zero block at offset ${at} is followed by data`);
        break;
      }
      const h = decodeHeaderBlock(block, at);
      switch (h.typeflag) {
        case 'x':
          localPax = parsePaxRecords(await readSpecial(source, h, at), at);
          continue;
        case 'g':
          for (const [key, value] of parsePaxRecords(await readSpecial(source, h, at), at)) {
            if (value.length === 0) globalPax.delete(key);
            else globalPax.set(key, value);
          }
          continue;
        case 'L':
          longName = trimNul(await readSpecial(source, h, at));
          continue;
        case 'K':
          longLink = trimNul(await readSpecial(source, h, at));
          continue;
      }

      const pax = new Map([...globalPax, ...(localPax ?? [])]);
      const header = buildEntry(h, pax, longName, longLink, at);
      localPax = longName = longLink = undefined;
      const dataSize = paxNumber(pax, 'size', at) ?? h.size;
      if (!header) {
        await source.skip(dataSize + padding(dataSize), () => `an entry of unknown type '${h.typeflag}' at offset ${at}`);
        continue;
      }
      // Header-only types carry no data whatever their size field says (Go's isHeaderOnlyType).
      const bodySize = header.type === 'file' ? dataSize : 0;
      const body = new EntryBody(source, bodySize, header.path);
      yield { header, body };
      await body.finish();
      await source.skip(padding(bodySize), () => `the padding of '${header.path}'`);
    }
    await source.drain();
    finished = true;
  } finally {
    if (!finished) await source.close();
  }
}

function buildEntry(h: HeaderBlock, pax: Map<string, Buffer>, longName: Buffer | undefined, longLink: Buffer | undefined, at: number): LayerEntry | undefined {
  for (const key of pax.keys()) {
    if (key.startsWith('GNU.sparse.')) throw new TarFormatError(`tar: sparse entry at offset ${at} is not supported`);
  }
  const rawName = longName ?? pax.get('path') ?? h.name;
  let type = TYPES[h.typeflag];
  if (!type) return undefined;
  // Pre-POSIX archives mark directories only by the trailing slash.
  if (h.typeflag === '\0' && rawName[rawName.length - 1] === 0x2f) type = 'dir';

  const name = decodeUtf8(rawName, `entry name at offset ${at}`);
  const entry: LayerEntry = {
    path: name.replace(/\/+$/, ''),
    type,
    mode: h.mode & 0o7777,
    uid: paxNumber(pax, 'uid', at) ?? h.uid,
    gid: paxNumber(pax, 'gid', at) ?? h.gid,
    size: type === 'file' ? paxNumber(pax, 'size', at) ?? h.size : 0,
    mtime: paxTime(pax, at) ?? h.mtime,
  };
  if (type === 'symlink' || type === 'hardlink') {
    entry.linkname = decodeUtf8(longLink ?? pax.get('linkpath') ?? h.linkname, `link target of '${name}'`);
  }
  if (type === 'char' || type === 'block') {
    entry.devmajor = h.devmajor;
    entry.devminor = h.devminor;
  }
  const xattrs = new Map<string, Buffer>();
  for (const [key, value] of pax) if (key.startsWith(PAX_XATTR)) xattrs.set(key.slice(PAX_XATTR.length), value);
  if (xattrs.size > 0) entry.xattrs = xattrs;
  return entry;
}

/** A pax record that is present but empty means "use the header field" (POSIX pax). */
function paxNumber(pax: Map<string, Buffer>, key: string, at: number): number | undefined {
  const value = pax.get(key)?.toString('latin1');
  if (!value) return undefined;
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new TarFormatError(`tar: invalid pax ${key}=${JSON.stringify(value)} at offset ${at}`);
  }
  return Number(value);
}

function paxTime(pax: Map<string, Buffer>, at: number): number | undefined {
  const value = pax.get('mtime')?.toString('latin1');
  if (!value) return undefined;
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(value)) throw new TarFormatError(`tar: invalid pax mtime=${JSON.stringify(value)} at offset ${at}`);
  return Math.floor(Number(value));
}

async function readSpecial(source: ByteSource, h: HeaderBlock, at: number): Promise<Buffer> {
  if (h.size > MAX_SPECIAL_SIZE) throw new TarFormatError(`tar: '${h.typeflag}' header of ${h.size} bytes at offset ${at} is too large`);
  const data = (await source.exact(h.size, () => `the '${h.typeflag}' header at offset ${at}`)) ?? Buffer.alloc(0);
  if (h.size > 0 && data.length === 0) throw truncated(`the '${h.typeflag}' header at offset ${at}`);
  await source.skip(padding(h.size), () => `the '${h.typeflag}' header at offset ${at}`);
  return Buffer.from(data);
}

function trimNul(data: Buffer): Buffer {
  const nul = data.indexOf(0);
  return nul === -1 ? data : data.subarray(0, nul);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Buffer, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarFormatError(`tar: ${what} is not valid UTF-8 (${bytes.toString('hex')}); such names are not supported`);
  }
}

function truncated(what: string): TarFormatError {
  return new TarFormatError(`tar: unexpected end of archive in ${what} (truncated input?)`);
}

/** Pulls bytes from the input on demand, handing out slices of its chunks without copying. */
class ByteSource {
  private readonly chunks: AsyncIterator<unknown>;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out so far: the archive offset of the next byte. */
  offset = 0;

  constructor(input: AsyncIterable<unknown>) {
    this.chunks = input[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes, or null once the input has ended. */
  async next(max: number): Promise<Buffer | null> {
    while (this.pending.length === 0) {
      if (this.ended) return null;
      const result = await this.chunks.next();
      if (result.done) {
        this.ended = true;
        return null;
      }
      const chunk = result.value;
      if (!(chunk instanceof Uint8Array)) throw new TypeError('readTar: the input must yield bytes');
      this.pending = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    const out = this.pending.subarray(0, max);
    this.pending = this.pending.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  /** Exactly n bytes; null if the input ended before the first of them; throws if it ends midway. */
  async exact(n: number, what: () => string): Promise<Buffer | null> {
    const first = await this.next(n);
    if (!first || first.length === n) return first;
    const parts = [first];
    for (let got = first.length; got < n;) {
      const chunk = await this.next(n - got);
      if (!chunk) throw truncated(what());
      parts.push(chunk);
      got += chunk.length;
    }
    return Buffer.concat(parts, n);
  }

  async skip(n: number, what: () => string): Promise<void> {
    while (n > 0) {
      const chunk = await this.next(Math.min(n, BODY_CHUNK));
      if (!chunk) throw truncated(what());
      n -= chunk.length;
    }
  }

  async drain(): Promise<void> {
    while (await this.next(Infinity));
  }

  /** Stops reading: destroys the input stream. */
  async close(): Promise<void> {
    await this.chunks.return?.();
  }
}

class EntryBody extends Readable {
  private pulling: Promise<void> | undefined;

  constructor(private readonly source: ByteSource, private remaining: number, private readonly entryPath: string) {
    super();
    if (remaining === 0) this.push(null);
  }

  override _read(): void {
    this.pulling = this.source.next(Math.min(this.remaining, BODY_CHUNK)).then(
      (chunk) => {
        this.pulling = undefined;
        if (!chunk) {
          this.destroy(truncated(`the content of '${this.entryPath}'`));
          return;
        }
        this.remaining -= chunk.length;
        if (this.destroyed) return;
        this.push(chunk);
        if (this.remaining === 0) this.push(null);
      },
      (err: Error) => {
        this.pulling = undefined;
        this.destroy(err);
      },
    );
  }

  /** Skips what the consumer left unread. */
  async finish(): Promise<void> {
    await this.pulling;
    if (this.remaining === 0) return;
    const left = this.remaining;
    this.remaining = 0;
    if (!this.destroyed) this.destroy();
    await this.source.skip(left, () => `the content of '${this.entryPath}'`);
  }
}
