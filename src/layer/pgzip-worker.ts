// A worker thread of the parallel gzip pool (pgzip.ts): deflates the blocks it is sent, one at a time.

import { parentPort } from 'node:worker_threads';
import { DICTIONARY_SIZE, deflateBlock, type DeflateEngine } from './deflate-block.js';

export interface BlockJob {
  id: number;
  engine: DeflateEngine;
  level: number;
  /** DICTIONARY_SIZE bytes whose last `dictionaryLength` are the dictionary, then the block's `length` bytes. */
  buffer: ArrayBuffer;
  dictionaryLength: number;
  length: number;
  last: boolean;
}

/** The deflated block is `length` bytes at `offset` of `deflated`; `buffer` is the job's, handed back for reuse. */
export type BlockReply = { id: number; deflated: ArrayBuffer; offset: number; length: number; crc: number; buffer: ArrayBuffer } | { id: number; error: string };

if (!parentPort) throw new Error('pgzip-worker.js runs only as a worker thread');
const port = parentPort;

port.on('message', (job: BlockJob) => {
  try {
    const bytes = new Uint8Array(job.buffer);
    const dictionary = bytes.subarray(DICTIONARY_SIZE - job.dictionaryLength, DICTIONARY_SIZE);
    const data = bytes.subarray(DICTIONARY_SIZE, DICTIONARY_SIZE + job.length);
    const { deflated, crc } = deflateBlock(job.engine, job.level, data, dictionary, job.last);
    // The output's memory moves to the main thread rather than being copied: buffers left behind
    // would pile up in this thread's heap (V8 collects them only after tens of MB) for every thread.
    const output = deflated.buffer.byteLength > Buffer.poolSize && deflated.buffer instanceof ArrayBuffer ? deflated : new Uint8Array(deflated);
    const reply: BlockReply = { id: job.id, deflated: output.buffer as ArrayBuffer, offset: output.byteOffset, length: output.byteLength, crc, buffer: job.buffer };
    port.postMessage(reply, [reply.deflated, job.buffer]);
  } catch (err) {
    port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) } satisfies BlockReply);
  }
});
