// Streaming tar writer: entries in, tar bytes out, file content read from entry.source in bounded
// chunks so a layer of any size passes through in constant memory.

import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { LayerEntry, assertLayerPath } from './entry.js';
import { BLOCK, encodeEntryHeader, padding } from './tar.js';

const READ_CHUNK = 1 << 20;

/** The tar archive of `entries`, in their order, ending with two zero blocks and nothing else.
 * The same entries (and file contents) always give the same bytes. Use it as a pipeline source,
 * or wrap it with Readable.from(). */
export async function* writeTar(entries: AsyncIterable<LayerEntry> | Iterable<LayerEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    checkEntry(entry);
    yield encodeEntryHeader(entry);
    if (entry.type === 'file' && entry.size > 0) {
      yield* readContent(entry.source!, entry.size, entry.path);
      const pad = padding(entry.size);
      if (pad > 0) yield Buffer.alloc(pad);
    }
  }
  yield Buffer.alloc(2 * BLOCK);
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
