// Streaming tar writer: entries in, tar bytes out, file content read from entry.source in bounded
// chunks so a layer of any size passes through in constant memory.

import { open } from 'node:fs/promises';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { LayerEntry, assertLayerPath } from './entry.js';
import { BLOCK, encodeEntryHeader, padding } from './tar.js';

const READ_CHUNK = 1 << 20;
/** Output is gathered into chunks of this size: a layer of 100,000 small files would otherwise be
 * 300,000 tiny buffers, each passing every stage of the commit pipeline (hash, gzip, hash, write). */
const OUT_CHUNK = 1 << 20;
/** Files up to this size are read with one synchronous read straight into the output chunk: for
 * small files the promise round trips of open/read/close cost far more than the read itself. */
const SMALL_FILE = 64 << 10;

/** The tar archive of `entries`, in their order, ending with two zero blocks and nothing else.
 * The same entries (and file contents) always give the same bytes. Use it as a pipeline source,
 * or wrap it with Readable.from(). */
export async function* writeTar(entries: AsyncIterable<LayerEntry> | Iterable<LayerEntry>): AsyncGenerator<Buffer> {
  let out = Buffer.allocUnsafe(OUT_CHUNK);
  let used = 0;
  /** The filled part of the chunk, handed out; a fresh chunk takes its place. */
  const take = (): Buffer => {
    const full = out.subarray(0, used);
    out = Buffer.allocUnsafe(OUT_CHUNK);
    used = 0;
    return full;
  };
  const append = (bytes: Buffer): void => {
    bytes.copy(out, used);
    used += bytes.length;
  };
  const zeros = (n: number): void => {
    out.fill(0, used, used + n);
    used += n;
  };
  for await (const entry of entries) {
    checkEntry(entry);
    const header = encodeEntryHeader(entry);
    const body = entry.type === 'file' ? entry.size : 0;
    const pad = padding(body);
    if (used + header.length + body + pad > OUT_CHUNK && used > 0) yield take();
    if (body > 0 && body <= SMALL_FILE) {
      append(header);
      readSmall(entry.source!, body, out, used, entry.path);
      used += body;
      zeros(pad);
    } else if (body > 0) {
      append(header);
      yield take();
      yield* readContent(entry.source!, body, entry.path);
      zeros(pad);
    } else {
      append(header);
    }
  }
  if (used + 2 * BLOCK > OUT_CHUNK) yield take();
  zeros(2 * BLOCK);
  yield take();
}

/** Exactly `size` bytes of a small file into `target` at `offset` (see readContent for why exactly). */
function readSmall(source: string, size: number, target: Buffer, offset: number, entryPath: string): void {
  const fd = openSync(source, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (let done = 0; done < size;) {
      const n = readSync(fd, target, offset + done, size - done, done);
      if (n === 0) throw new Error(`layer entry '${entryPath}': ${source} shrank while archived (${done} of ${size} bytes)`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

function checkEntry(entry: LayerEntry): void {
  assertLayerPath(entry.path);
  if (entry.type === 'hardlink') assertLayerPath(entry.linkname ?? '', `hardlink target of '${entry.path}'`);
  if (entry.type === 'symlink' && !entry.linkname) throw new Error(`layer entry '${entry.path}': symlink without a target`);
  for (const n of [entry.mode, entry.uid, entry.gid, entry.size, entry.mtime]) {
    if (!Number.isSafeInteger(n)) throw new Error(`layer entry '${entry.path}': non-integer metadata ${n}`);
  }
  if (entry.uid < 0 || entry.gid < 0 || entry.size < 0) throw new Error(`layer entry '${entry.path}': negative uid/gid/size`);
  if (entry.type === 'file' && entry.size > 0 && !entry.source) {
    throw new Error(`layer entry '${entry.path}': a non-empty file needs a source`);
  }
}

/** Exactly `size` bytes of `source`. The header already promised that size, so a file that shrank
 * since it was stat'ed is an error; growth past it is ignored (the archive stays consistent). */
async function* readContent(source: string, size: number, entryPath: string): AsyncGenerator<Buffer> {
  const file = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (let done = 0; done < size;) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - done));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, done);
      if (bytesRead === 0) {
        throw new Error(`layer entry '${entryPath}': ${source} shrank while archived (${done} of ${size} bytes)`);
      }
      done += bytesRead;
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}
