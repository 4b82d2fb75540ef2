// Layer entries -> tar -> sha256 (diff_id) -> gzip -> sha256 (digest) -> blob file, as one
// backpressured pipeline: only a few chunks of the layer are ever in memory.

import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as pako from 'pako';
import type { Digest } from '../image/types.js';
import type { LayerEntry } from './entry.js';
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
  /**
   * The deflate implementation. Both give the same bytes at the same level (a test checks it), so
   * digests never depend on this choice. node's zlib is the default on the hot path: the benchmark
   * measured it about twice as fast as pako; pako stays selectable (STRATA_GZIP=pako).
   */
  engine?: 'zlib' | 'pako';
}

const defaultEngine = (): 'zlib' | 'pako' => (process.env.STRATA_GZIP === 'pako' ? 'pako' : 'zlib');

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
      measure(tarHash, tarBytes),
      (opts.engine ?? defaultEngine()) === 'pako' ? gzipTransform(opts.level ?? 6) : createGzip({ level: opts.level ?? 6 }),
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

function measure(hash: Hash, bytes: { n: number }) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      bytes.n += chunk.length;
      yield chunk;
    }
  };
}

/** A gzip stream transform built on pako, whose output equals node:zlib's at the same level: the
 * header has no name and mtime 0, and OS byte 3, so the blob depends only on the tar bytes. */
export function gzipTransform(level: number) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const deflate = new pako.Deflate({ level, gzip: true, chunkSize: 1 << 16 });
    const out: Buffer[] = [];
    // pako allocates a fresh output buffer after each onData, so chunks can be passed on without copying.
    deflate.onData = (chunk) => out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    const push = (data: Uint8Array, flush: pako.Z_FlushMode) => {
      if (!deflate.push(data, flush) && deflate.err !== pako.Z_OK) throw new Error(`gzip: ${deflate.msg} (${deflate.err})`);
    };
    for await (const chunk of source) {
      push(chunk, pako.Z_NO_FLUSH);
      yield* out.splice(0);
    }
    push(new Uint8Array(0), pako.Z_FINISH);
    yield* out.splice(0);
  };
}
