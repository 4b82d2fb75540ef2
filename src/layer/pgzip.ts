// Parallel gzip whose bytes do not depend on the number of threads (the scheme pigz uses): the input
// is cut into fixed-size blocks, each deflated on its own in a worker thread with the 32 KiB before it
// as the dictionary, every block but the last ended on a byte boundary by a sync flush, and the pieces
// joined into one gzip member whose CRC-32 is combined from the blocks' CRCs. A block that looks like
// random data is stored instead of deflated (deflate-block.ts). A block's output is a function of the
// input bytes alone, so a layer's digest is the same on 1 core or 64.

import path from 'node:path';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native/index.js';
import { DICTIONARY_SIZE, deflateBlock, type DeflateEngine } from './deflate-block.js';
import type { BlockJob, BlockReply } from './pgzip-worker.js';

/**
 * 512 KiB. Every block re-primes zlib with a 32 KiB dictionary and ends with a 5-byte flush marker;
 * deflating the benchmark's 200 MB tar in one thread took about 8% more CPU with pigz's 128 KiB blocks
 * than with 512 KiB ones (1 MiB was no cheaper), and CPU time is what two cores run out of. Blocks in
 * flight stay a few MB, and smaller layers are deflated in-process without waking a thread.
 * Changing it changes every layer digest.
 */
export const BLOCK_SIZE = 512 * 1024;
/** Blocks handed to the pool and not yet passed on, per thread: one being deflated and one queued, so
 * a thread never waits for the main thread. A third measured no faster, and memory is tight: each
 * block's output arrives as a buffer of its own that V8 frees only in bulk (tens of MB at a time). */
const IN_FLIGHT_PER_THREAD = 2;

export interface ParallelGzipOptions {
  /** zlib level; 6 (zlib's default, Docker's) unless given. */
  level?: number;
  /** Worker threads; STRATA_GZIP_THREADS, else os.availableParallelism(). Never changes the output. */
  threads?: number;
  /** Deflate implementation; STRATA_GZIP=pako selects pako, else node's zlib. Never changes the output. */
  engine?: DeflateEngine;
}

export function defaultThreads(): number {
  const configured = process.env.STRATA_GZIP_THREADS;
  if (configured === undefined || configured === '') return os.availableParallelism();
  const threads = Number(configured);
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new Error(`STRATA_GZIP_THREADS must be a whole number from 1 to 256, not '${configured}'`);
  }
  return threads;
}

export function defaultEngine(): DeflateEngine {
  const configured = process.env.STRATA_GZIP;
  if (configured === undefined || configured === '' || configured === 'zlib') return 'zlib';
  if (configured === 'pako') return 'pako';
  throw new Error(`STRATA_GZIP must be 'zlib' or 'pako', not '${configured}'`);
}

/** A stream transform (for stream.pipeline): bytes in, one gzip member out. The gzip header has no
 * name and mtime 0, so the output depends only on the input bytes and the level. */
export function parallelGzip(opts: ParallelGzipOptions = {}) {
  const level = opts.level ?? 6;
  const threads = opts.threads ?? defaultThreads();
  const engine = opts.engine ?? defaultEngine();
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let crc = 0;
    let inputBytes = 0;
    const inFlight: Pending[] = [];
    const maxInFlight = IN_FLIGHT_PER_THREAD * threads;
    // The block being filled: DICTIONARY_SIZE bytes for the tail of the block before it, then the data.
    let block: Uint8Array = new Uint8Array(DICTIONARY_SIZE + BLOCK_SIZE);
    let dictionaryLength = 0;
    let filled = 0;

    const finished = (deflated: DeflatedBlock): Buffer => {
      crc = crc32Combine(crc, deflated.crc, deflated.length);
      return Buffer.from(deflated.deflated.buffer, deflated.deflated.byteOffset, deflated.deflated.byteLength);
    };

    yield gzipHeader(level);
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length; ) {
        if (filled === BLOCK_SIZE) {
          // More input follows a full block, so it is not the last: send it, keep its tail as the next dictionary.
          const pool = poolOf(threads);
          const next = pool.blockBuffer();
          next.set(block.subarray(block.length - DICTIONARY_SIZE), 0);
          inFlight.push(pool.deflate({ engine, level, block, dictionaryLength, length: filled, last: false }));
          inputBytes += filled;
          block = next;
          dictionaryLength = DICTIONARY_SIZE;
          filled = 0;
          while (inFlight.length > 0 && (inFlight.length >= maxInFlight || inFlight[0].done)) {
            yield finished(await inFlight.shift()!.result);
          }
        }
        const n = Math.min(BLOCK_SIZE - filled, chunk.length - offset);
        block.set(chunk.subarray(offset, offset + n), DICTIONARY_SIZE + filled);
        filled += n;
        offset += n;
      }
    }
    inputBytes += filled;
    if (inFlight.length === 0 && dictionaryLength === 0) {
      // The whole input is one block: deflating it here gives the same bytes without starting a thread.
      const data = block.subarray(DICTIONARY_SIZE, DICTIONARY_SIZE + filled);
      yield finished({ ...deflateBlock(engine, level, data, undefined, true), length: filled });
    } else {
      inFlight.push(poolOf(threads).deflate({ engine, level, block, dictionaryLength, length: filled, last: true }));
      for (const pending of inFlight) yield finished(await pending.result);
    }
    yield gzipTrailer(crc, inputBytes);
  };
}

interface DeflatedBlock {
  deflated: Uint8Array;
  crc: number;
  /** Input bytes of the block. */
  length: number;
}

interface Pending {
  result: Promise<DeflatedBlock>;
  done: boolean;
}

/** The 10-byte gzip header: deflate, no flags, mtime 0, XFL as zlib sets it for the level, OS 3 (Unix). */
function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level < 2 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

function gzipTrailer(crc: number, inputBytes: number): Buffer {
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(inputBytes % 2 ** 32, 4); // ISIZE: the length modulo 2^32
  return trailer;
}

// CRC-32 of a concatenation from the parts' CRCs: crc(A || B) = crc(A) * x^(8 |B|) + crc(B) over GF(2),
// modulo the CRC polynomial (reflected bit order, as gzip's CRC). Multiplying by x^(8n) takes
// log2(n) products of precomputed powers x^(2^k), so combining costs nothing next to deflating.
const CRC_POLY = 0xedb88320;
/** x^0 in the reflected representation. */
const X0 = 0x80000000;

/** a * b modulo the CRC polynomial. */
function multiplyModPoly(a: number, b: number): number {
  let product = 0;
  for (let bit = X0; bit !== 0; bit >>>= 1) {
    if (a & bit) product ^= b;
    b = b & 1 ? (b >>> 1) ^ CRC_POLY : b >>> 1;
  }
  return product >>> 0;
}

/** X_POWERS[k] = x^(2^k) modulo the polynomial; x^(2^k) repeats with period 32 in k beyond that. */
const X_POWERS: number[] = (() => {
  const powers = [X0 >>> 1]; // x^1
  for (let k = 1; k < 32; k++) powers.push(multiplyModPoly(powers[k - 1], powers[k - 1]));
  return powers;
})();

/** x^(8 * bytes) modulo the polynomial. */
function shiftForBytes(bytes: number): number {
  let result = X0;
  let k = 3; // 8 * bytes = bytes * 2^3
  for (let n = bytes; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) result = multiplyModPoly(X_POWERS[k % 32], result);
  }
  return result;
}

/** The CRC-32 of A || B, given crc(A), crc(B) and the length of B. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multiplyModPoly(shiftForBytes(lengthB), crcA) ^ crcB) >>> 0;
}

// The worker pool (one per thread count, normally just one): created on first use, shared by every
// compression in the process. Threads are unref'd while idle, so a process that is done exits
// without closing the pool; closeGzipPools() ends them explicitly.
const pools = new Map<number, DeflatePool>();

function poolOf(threads: number): DeflatePool {
  let pool = pools.get(threads);
  if (!pool) pools.set(threads, (pool = new DeflatePool(threads)));
  return pool;
}

/** Ends the pools' threads (a later compression starts new ones). */
export async function closeGzipPools(): Promise<void> {
  const closing = [...pools.values()];
  pools.clear();
  await Promise.all(closing.map((p) => p.close()));
}

interface Thread {
  worker: Worker;
  busy: number;
}

interface Waiter {
  resolve: (block: DeflatedBlock) => void;
  reject: (err: Error) => void;
  thread: Thread;
  length: number;
}

class DeflatePool {
  private readonly threads: Thread[] = [];
  private readonly waiting = new Map<number, Waiter>();
  /** Block buffers the workers handed back: reused, so that a layer of any size allocates only a few. */
  private readonly spare: ArrayBuffer[] = [];
  private nextId = 0;

  constructor(readonly size: number) {}

  blockBuffer(): Uint8Array {
    return new Uint8Array(this.spare.pop() ?? new ArrayBuffer(DICTIONARY_SIZE + BLOCK_SIZE));
  }

  /** Deflates one block in a worker thread; `block` is transferred there and must not be used afterwards. */
  deflate(job: { engine: DeflateEngine; level: number; block: Uint8Array; dictionaryLength: number; length: number; last: boolean }): Pending {
    const thread = this.leastBusy();
    const id = this.nextId++;
    const buffer = job.block.buffer as ArrayBuffer;
    const pending: Pending = {
      done: false,
      result: new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject, thread, length: job.length })),
    };
    pending.result.then(() => (pending.done = true), () => (pending.done = true));
    if (thread.busy++ === 0) thread.worker.ref();
    const message: BlockJob = { id, engine: job.engine, level: job.level, buffer, dictionaryLength: job.dictionaryLength, length: job.length, last: job.last };
    thread.worker.postMessage(message, [buffer]);
    return pending;
  }

  async close(): Promise<void> {
    const workers = this.threads.splice(0).map((t) => t.worker);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private leastBusy(): Thread {
    if (this.threads.length < this.size && this.threads.every((t) => t.busy > 0)) return this.spawn();
    return this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): Thread {
    // Not the parent's node flags: some (--input-type, --eval) are errors in a worker, none is needed.
    const worker = new Worker(workerFile(), { execArgv: [] });
    const thread: Thread = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (reply: BlockReply) => {
      const waiter = this.waiting.get(reply.id);
      if (!waiter) return;
      this.waiting.delete(reply.id);
      if (--thread.busy === 0) worker.unref();
      if ('error' in reply) return waiter.reject(new Error(`gzip: ${reply.error}`));
      if (this.spare.length < IN_FLIGHT_PER_THREAD * this.size) this.spare.push(reply.buffer);
      waiter.resolve({ deflated: new Uint8Array(reply.deflated, reply.offset, reply.length), crc: reply.crc, length: waiter.length });
    });
    const fail = (err: Error) => {
      for (const [id, waiter] of this.waiting) {
        if (waiter.thread !== thread) continue;
        this.waiting.delete(id);
        waiter.reject(new Error(`gzip worker thread failed: ${err.message}`));
      }
      const index = this.threads.indexOf(thread);
      if (index >= 0) this.threads.splice(index, 1);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.threads.push(thread);
    return thread;
  }
}

/** The compiled worker module, tsc's output in dist/: worker threads run JavaScript only, and this
 * module itself may run as TypeScript (vitest) or inside the CLI bundle (dist/strata.mjs). */
function workerFile(): string {
  return path.join(packageRoot, 'dist', 'src', 'layer', 'pgzip-worker.js');
}
