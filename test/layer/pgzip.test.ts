import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { BLOCK_SIZE, closeGzipPools, crc32Combine, defaultEngine, defaultThreads, parallelGzip, type ParallelGzipOptions } from '../../src/layer/pgzip.js';
import { looksIncompressible } from '../../src/layer/deflate-block.js';
import { repoRoot } from '../helpers.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-pgzip-'));
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await closeGzipPools();
});

/** Random bytes, then text, then zeros, cut to `size`: incompressible, compressible and run-length parts. */
function mixed(size: number): Buffer {
  const text = Buffer.from('usr/share/doc/strata: layer text, lines that repeat within the window\n'.repeat(Math.ceil(size / 70) + 1));
  return Buffer.concat([randomBytes(Math.ceil(size / 3)), text.subarray(0, Math.ceil(size / 3)), Buffer.alloc(size)]).subarray(0, size);
}

async function gzip(input: Buffer, opts: ParallelGzipOptions, chunkSize = 65_536): Promise<Buffer> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < input.length; i += chunkSize) yield input.subarray(i, i + chunkSize);
  }
  const out: Buffer[] = [];
  for await (const chunk of parallelGzip(opts)(chunks())) out.push(chunk);
  return Buffer.concat(out);
}

/** What the system's gzip makes of it: `gzip -t` must accept it and `gzip -dc` give the input back. */
function systemGunzip(blob: Buffer, name: string): Buffer {
  const file = path.join(tmp, `${name}.gz`);
  writeFileSync(file, blob);
  execFileSync('gzip', ['-t', file]);
  return execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 30 });
}

describe('parallelGzip', () => {
  const sizes = { empty: 0, 'one byte': 1, 'block - 1': BLOCK_SIZE - 1, 'one block': BLOCK_SIZE, 'block + 1': BLOCK_SIZE + 1, 'many blocks': 9 * BLOCK_SIZE + 12_345 };
  for (const [label, size] of Object.entries(sizes)) {
    it(`${label} (${size} bytes): same bytes for 1, 2, 4 and 8 threads, and gunzips to the input`, async () => {
      const input = mixed(size);
      const blobs = [];
      for (const threads of [1, 2, 4, 8]) blobs.push(await gzip(input, { threads }));
      blobs.push(await gzip(input, { threads: 2 }, 7_777)); // chunking of the input does not matter either
      for (const blob of blobs.slice(1)) expect(blob.equals(blobs[0])).toBe(true);
      const blob = blobs[0];
      expect(zlib.gunzipSync(blob).equals(input)).toBe(true);
      expect(systemGunzip(blob, `size-${size}`).equals(input)).toBe(true);
      // Header: no name, mtime 0, XFL 0 (level 6), OS 3; trailer: CRC-32 and length of the input.
      expect(blob.subarray(0, 10).toString('hex')).toBe('1f8b0800000000000003');
      expect(blob.readUInt32LE(blob.length - 8)).toBe(zlib.crc32(input));
      expect(blob.readUInt32LE(blob.length - 4)).toBe(size);
    }, 60_000);
  }

  it('gives the same bytes on every run and a different stream per level', async () => {
    const input = mixed(5 * BLOCK_SIZE);
    const first = await gzip(input, { threads: 2 });
    expect((await gzip(input, { threads: 2 })).equals(first)).toBe(true);
    const fast = await gzip(input, { threads: 2, level: 1 });
    expect(fast.equals(first)).toBe(false);
    expect(fast[8]).toBe(4); // XFL: fastest
    expect(zlib.gunzipSync(fast).equals(input)).toBe(true);
  });

  it('with one block, equals node zlib gzip at the same level (the blocks of a longer input carry sync-flush markers)', async () => {
    const input = mixed(BLOCK_SIZE - 100);
    for (const level of [1, 6, 9]) expect((await gzip(input, { level, threads: 2 })).equals(zlib.gzipSync(input, { level }))).toBe(true);
  });

  for (const level of [1, 6, 9]) {
    it(`level ${level}: pako and node zlib give the same bytes, dictionaries and flushes included`, async () => {
      const input = mixed(4 * BLOCK_SIZE + 999);
      const withZlib = await gzip(input, { level, threads: 2, engine: 'zlib' });
      const withPako = await gzip(input, { level, threads: 2, engine: 'pako' });
      expect(withPako.equals(withZlib)).toBe(true);
    }, 60_000);
  }

  it('pulls only a bounded window of input ahead of what has been read from it', async () => {
    const threads = 2;
    let pulled = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      const chunk = Buffer.from('x'.repeat(65_536));
      for (;;) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const output = parallelGzip({ threads })(endless());
    for (let i = 0; i < 5; i++) await output.next();
    const settled = pulled;
    await new Promise((resolve) => setTimeout(resolve, 200)); // nothing reads: nothing more is pulled
    expect(pulled).toBe(settled);
    // Blocks already passed on (4 of the 5 outputs read; the first is the header), 2 in flight per
    // thread, and the block being filled.
    expect(pulled).toBeLessThanOrEqual((4 + 2 * threads + 1) * BLOCK_SIZE);
    await output.return(undefined);
  });

  it('passes an error of its input on', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomBytes(3 * BLOCK_SIZE);
      throw new Error('disk went away');
    }
    const drain = async () => {
      for await (const chunk of parallelGzip({ threads: 2 })(failing())) void chunk;
    };
    await expect(drain()).rejects.toThrow('disk went away');
  });

  it('lets the process exit without closing the pool', () => {
    const module = path.join(repoRoot, 'dist', 'src', 'layer', 'pgzip.js');
    const script = `
      import { parallelGzip } from ${JSON.stringify(module)};
      import zlib from 'node:zlib';
      const input = Buffer.alloc(${5 * BLOCK_SIZE}, 'strata ');
      const out = [];
      for await (const chunk of parallelGzip({ threads: 2 })([input])) out.push(chunk);
      console.log(zlib.gunzipSync(Buffer.concat(out)).equals(input));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.error).toBeUndefined();
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('true');
    expect(child.status).toBe(0);
  });

  it('reads STRATA_GZIP and refuses an unknown engine', () => {
    const saved = process.env.STRATA_GZIP;
    try {
      process.env.STRATA_GZIP = 'pako';
      expect(defaultEngine()).toBe('pako');
      delete process.env.STRATA_GZIP;
      expect(defaultEngine()).toBe('zlib');
      process.env.STRATA_GZIP = 'zstd';
      expect(() => defaultEngine()).toThrow("STRATA_GZIP must be 'zlib' or 'pako', not 'zstd'");
    } finally {
      if (saved === undefined) delete process.env.STRATA_GZIP;
      else process.env.STRATA_GZIP = saved;
    }
  });

  it('reads STRATA_GZIP_THREADS and refuses a bad value', () => {
    const saved = process.env.STRATA_GZIP_THREADS;
    try {
      process.env.STRATA_GZIP_THREADS = '3';
      expect(defaultThreads()).toBe(3);
      delete process.env.STRATA_GZIP_THREADS;
      expect(defaultThreads()).toBe(os.availableParallelism());
      process.env.STRATA_GZIP_THREADS = 'two';
      expect(() => defaultThreads()).toThrow("STRATA_GZIP_THREADS must be a whole number from 1 to 256, not 'two'");
    } finally {
      if (saved === undefined) delete process.env.STRATA_GZIP_THREADS;
      else process.env.STRATA_GZIP_THREADS = saved;
    }
  });
});

describe('incompressible blocks', () => {
  it('stores random data (no bigger than deflate makes it) and deflates text and short-period repeats', async () => {
    const random = randomBytes(BLOCK_SIZE);
    expect(looksIncompressible(random)).toBe(true);
    const stored = await gzip(random, { threads: 2 });
    expect(stored.length).toBeLessThanOrEqual(zlib.gzipSync(random, { level: 6 }).length);
    expect(zlib.gunzipSync(stored).equals(random)).toBe(true);

    // A random 16 KiB pattern repeated: flat byte histogram, but deflate's window finds the repeats.
    const repeated = Buffer.concat(Array.from({ length: BLOCK_SIZE / 16_384 }, () => random.subarray(0, 16_384)));
    expect(looksIncompressible(repeated)).toBe(false);
    expect((await gzip(repeated, { threads: 2 })).length).toBeLessThan(repeated.length / 10);
    expect(looksIncompressible(mixed(BLOCK_SIZE).subarray(BLOCK_SIZE / 3))).toBe(false);
  });
});

describe('crc32Combine', () => {
  it('gives the CRC-32 of a concatenation from the CRCs of its parts', () => {
    const data = randomBytes(300_000);
    for (const cut of [0, 1, 3, 32_768, BLOCK_SIZE, 299_999, 300_000]) {
      const [a, b] = [data.subarray(0, cut), data.subarray(cut)];
      expect(crc32Combine(zlib.crc32(a), zlib.crc32(b), b.length)).toBe(zlib.crc32(data));
    }
  });

  it('folds many blocks in order, as the gzip trailer needs', () => {
    const data = randomBytes(10 * 4099 + 17);
    let crc = 0;
    for (let i = 0; i < data.length; i += 4099) {
      const block = data.subarray(i, i + 4099);
      crc = crc32Combine(crc, zlib.crc32(block), block.length);
    }
    expect(crc).toBe(zlib.crc32(data));
  });
});
