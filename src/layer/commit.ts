// Layer entries -> tar -> sha256 (diff_id) -> parallel gzip -> sha256 (digest) -> blob file, as one
// backpressured pipeline: only a few chunks of the layer are ever in memory.

import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../image/types.js';
import type { DeflateEngine } from './deflate-block.js';
import type { LayerEntry } from './entry.js';
import { parallelGzip } from './pgzip.js';
import { writeTar } from './tar-write.js';

export interface CommittedLayer {
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  diffId: Digest;
  /** sha256 of the gzip blob: the manifest's layer digest. */
  digest: Digest;
  /** Bytes of the gzip blob. */
  size: number;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
  /** Entries written; 0 means the diff was empty (a 1024-byte tar) and callers may skip the layer. */
  entries: number;
}

export interface CommitOptions {
  /** gzip level, 6 by default (zlib's default, what Docker uses). */
  level?: number;
  /** Compression threads (default STRATA_GZIP_THREADS, else one per CPU). The blob is the same for any count. */
  threads?: number;
  /**
   * The deflate implementation inside each thread (default STRATA_GZIP, else zlib). Both give the
   * same bytes (a test checks it), so digests never depend on this choice. node's zlib is the default:
   * the benchmark measured it about three times as fast as pako per block.
   */
  engine?: DeflateEngine;
  /** called as the tar grows, with the bytes so far (for progress) */
  onTarBytes?: (bytes: number) => void;
}

/** Writes the gzip-compressed tar of `entries` to `outFile` (replacing it; removed again on failure). */
export async function commitLayer(entries: AsyncIterable<LayerEntry>, outFile: string, opts: CommitOptions = {}): Promise<CommittedLayer> {
  let count = 0;
  async function* counted(): AsyncGenerator<LayerEntry> {
    for await (const entry of entries) {
      count++;
      yield entry;
    }
  }
  const tarHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const tarBytes = { n: 0 };
  const blobBytes = { n: 0 };
  try {
    await pipeline(
      writeTar(counted()),
      measure(tarHash, tarBytes, opts.onTarBytes),
      parallelGzip({ level: opts.level, threads: opts.threads, engine: opts.engine }),
      measure(blobHash, blobBytes),
      createWriteStream(outFile),
    );
  } catch (err) {
    await rm(outFile, { force: true });
    throw err;
  }
  return {
    diffId: `sha256:${tarHash.digest('hex')}`,
    digest: `sha256:${blobHash.digest('hex')}`,
    size: blobBytes.n,
    tarSize: tarBytes.n,
    entries: count,
  };
}

function measure(hash: Hash, bytes: { n: number }, onBytes?: (n: number) => void) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      bytes.n += chunk.length;
      onBytes?.(bytes.n);
      yield chunk;
    }
  };
}
