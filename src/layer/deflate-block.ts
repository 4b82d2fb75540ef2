// One block of a parallel gzip stream: raw deflate of `data`, primed with the 32 KiB that precede it,
// and its CRC-32. Used by the pool's worker threads, and in-process for inputs of a single block.

import zlib from 'node:zlib';
import * as pako from 'pako';

export type DeflateEngine = 'zlib' | 'pako';

/** deflate's window: a block can refer back this far, into the block before it. */
export const DICTIONARY_SIZE = 32 * 1024;

export interface BlockResult {
  deflated: Uint8Array;
  /** CRC-32 of `data` alone (not of the dictionary). */
  crc: number;
}

/**
 * A block that is not the last one ends with a sync flush: an empty stored block that brings the
 * stream to a byte boundary without the final-block bit, so the next block's deflate output can be
 * appended as is. The last block finishes the stream (final-block bit set).
 * Both engines give the same bytes for the same input, dictionary and level (a test checks it).
 */
export function deflateBlock(engine: DeflateEngine, requestedLevel: number, data: Uint8Array, dictionary: Uint8Array | undefined, last: boolean): BlockResult {
  const crc = zlib.crc32(data);
  const level = requestedLevel > 0 && looksIncompressible(data) ? 0 : requestedLevel;
  // One output buffer for the whole block (deflate grows data by a few bytes per 16 KiB at most), and
  // never one from Buffer's shared pool, so that a worker can hand it over without copying.
  const outputSize = Math.max(64 * 1024, data.length + (data.length >> 6) + 1024);
  const withDictionary = dictionary && dictionary.length > 0 ? { dictionary } : {};
  if (engine === 'zlib') {
    const deflated = zlib.deflateRawSync(data, {
      level,
      ...withDictionary,
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
      chunkSize: outputSize,
    });
    return { deflated, crc };
  }
  const deflate = new pako.Deflate({ level, raw: true, chunkSize: outputSize, ...withDictionary });
  const parts: Uint8Array[] = [];
  deflate.onData = (chunk) => parts.push(chunk);
  if (!deflate.push(data, last ? pako.Z_FINISH : pako.Z_SYNC_FLUSH) && deflate.err !== pako.Z_OK) {
    throw new Error(`deflate: ${deflate.msg} (${deflate.err})`);
  }
  return { deflated: parts.length === 1 ? parts[0] : Buffer.concat(parts), crc };
}

/** Every 16th byte is sampled: 32768 samples in a 512 KiB block. */
const SAMPLE_STRIDE = 16;
/** Bits per byte above which a block is stored rather than compressed. Uniformly random bytes measure
 * about 7.994 with 32768 samples; content that repeats within deflate's 32 KiB window yields at most
 * 2048 distinct samples per block and so measures 7.91 or less (8 - 255 / (2 * samples * ln 2)). */
const STORE_ABOVE_BITS = 7.97;

/**
 * Whether the block's sampled byte distribution is as flat as random data's: already compressed or
 * encrypted content (archives, images, packed binaries), which deflate cannot shrink (zlib itself
 * falls back to stored blocks for it) but still spends its full matching effort on: with pigz's
 * plain level 6 such data costs as much CPU as text. Storing it is about 200 times cheaper and the
 * blob is no bigger. The decision depends on the block's bytes alone, so the output still does not
 * depend on the thread count; changing the stride or the threshold changes layer digests.
 */
export function looksIncompressible(data: Uint8Array): boolean {
  const total = Math.ceil(data.length / SAMPLE_STRIDE);
  if (total < 4096) return false; // too few samples to tell random data from text
  const counts = new Uint32Array(256);
  for (let i = 0; i < data.length; i += SAMPLE_STRIDE) counts[data[i]]++;
  let bits = 0;
  for (const count of counts) {
    if (count > 0) bits -= (count / total) * Math.log2(count / total);
  }
  return bits > STORE_ABOVE_BITS;
}
