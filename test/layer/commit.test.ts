import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { LayerEntry } from '../../src/layer/entry.js';
import { readUpperdir } from '../../src/layer/diff.js';
import { commitLayer } from '../../src/layer/commit.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-commit-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function* list(entries: LayerEntry[]): AsyncGenerator<LayerEntry> {
  yield* entries;
}

function makeTree(root: string): void {
  mkdirSync(path.join(root, 'etc', 'app'), { recursive: true });
  writeFileSync(path.join(root, 'etc', 'app', 'conf'), 'key=value\n'.repeat(1000));
  writeFileSync(path.join(root, 'bin'), randomBytes(70_000));
  writeFileSync(path.join(root, 'empty'), '');
}

function pythonNames(tarFile: string): string[] {
  const script = 'import tarfile, sys\nwith tarfile.open(sys.argv[1]) as tf: print("\\n".join(m.name for m in tf))';
  return execFileSync('python3', ['-c', script, tarFile], { encoding: 'utf8' }).trim().split('\n');
}

describe('commitLayer', () => {
  it('returns digests that match the blob and its uncompressed tar, and gzip/python accept it', async () => {
    const root = path.join(tmp, 'tree');
    makeTree(root);
    const out = path.join(tmp, 'layer.tar.gz');
    const result = await commitLayer(readUpperdir(root), out);
    const blob = readFileSync(out);
    const tar = zlib.gunzipSync(blob);
    expect(result).toEqual({ digest: sha256(blob), diffId: sha256(tar), size: blob.length, tarSize: tar.length, entries: 5 });
    execFileSync('gzip', ['-t', out]);
    expect(pythonNames(out)).toEqual(['bin', 'empty', 'etc', 'etc/app', 'etc/app/conf']);
    // Reproducible gzip header: no name, mtime 0, XFL 0 (level 6), OS 3.
    expect(blob.subarray(0, 10).toString('hex')).toBe('1f8b0800000000000003');
  });

  it('gives the same digest for the same entries', async () => {
    const root = path.join(tmp, 'tree2');
    makeTree(root);
    const first = await commitLayer(readUpperdir(root), path.join(tmp, 'one.tar.gz'));
    const second = await commitLayer(readUpperdir(root), path.join(tmp, 'two.tar.gz'));
    expect(second.digest).toBe(first.digest);
    expect(readFileSync(path.join(tmp, 'one.tar.gz')).equals(readFileSync(path.join(tmp, 'two.tar.gz')))).toBe(true);
    const faster = await commitLayer(readUpperdir(root), path.join(tmp, 'three.tar.gz'), { level: 1 });
    expect(faster.diffId).toBe(first.diffId);
    expect(faster.digest).not.toBe(first.digest);
  });

  it('reports an empty diff as 0 entries and the well-known empty-layer diff_id', async () => {
    const root = path.join(tmp, 'empty-dir');
    mkdirSync(root);
    const result = await commitLayer(readUpperdir(root), path.join(tmp, 'empty.tar.gz'));
    expect(result.entries).toBe(0);
    expect(result.tarSize).toBe(1024);
    expect(result.diffId).toBe('sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
  });

  it('removes the output file when the layer cannot be written', async () => {
    const out = path.join(tmp, 'broken.tar.gz');
    const missing: LayerEntry = { path: 'x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0, source: path.join(tmp, 'nope') };
    await expect(commitLayer(list([missing]), out)).rejects.toThrow(/ENOENT/);
    expect(existsSync(out)).toBe(false);
  });

  it('streams 200 MB of random+text data in bounded memory', async () => {
    const big = path.join(tmp, 'big');
    mkdirSync(big);
    const fd = openSync(path.join(big, 'data'), 'w');
    const line = Buffer.from('The quick brown fox jumps over the lazy dog; strata layer benchmark line 0123456789\n');
    const text = Buffer.concat(Array.from({ length: Math.ceil((1 << 20) / line.length) }, () => line)).subarray(0, 1 << 20);
    for (let i = 0; i < 100; i++) writeSync(fd, randomBytes(1 << 20));
    for (let i = 0; i < 100; i++) writeSync(fd, text);
    closeSync(fd);

    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 10);
    const started = performance.now();
    const out = path.join(tmp, 'big.tar.gz');
    const result = await commitLayer(readUpperdir(big), out);
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const mb = (n: number) => n / (1 << 20);
    console.log(`commitLayer 200 MiB: ${seconds.toFixed(2)} s, ${(mb(result.tarSize) / seconds).toFixed(1)} MiB/s, ` +
      `gz ${mb(result.size).toFixed(1)} MiB, RSS baseline ${mb(baseline).toFixed(0)} MiB, peak +${mb(peak - baseline).toFixed(0)} MiB`);
    // Two compression threads (~10 MiB each) and buffers V8 frees lazily; the 200 MiB layer is never held.
    expect(peak - baseline).toBeLessThan(150 * (1 << 20));
    expect(result.size).toBe(statSync(out).size);

    const tarHash = createHash('sha256');
    await pipeline(createReadStream(out), zlib.createGunzip(), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) tarHash.update(chunk);
    });
    expect(`sha256:${tarHash.digest('hex')}`).toBe(result.diffId);
  }, 300_000);
});

describe('commitLayer compression', () => {
  it('writes the same blob for any thread count and either deflate engine', async () => {
    const root = path.join(tmp, 'threads');
    mkdirSync(root);
    // Several 128 KiB gzip blocks: a compressible file, an incompressible one and a sparse one.
    writeFileSync(path.join(root, 'text'), 'strata commit line\n'.repeat(60_000));
    writeFileSync(path.join(root, 'random'), randomBytes(400_000));
    writeFileSync(path.join(root, 'zeros'), Buffer.alloc(300_000));
    const blobs: Buffer[] = [];
    const results = [];
    for (const [i, opts] of [{ threads: 1 }, { threads: 2 }, { threads: 4 }, { threads: 2, engine: 'pako' as const }].entries()) {
      const out = path.join(tmp, `threads-${i}.tar.gz`);
      results.push(await commitLayer(readUpperdir(root), out, opts));
      blobs.push(readFileSync(out));
    }
    for (const [i, blob] of blobs.entries()) {
      expect(blob.equals(blobs[0])).toBe(true);
      expect(results[i]).toEqual(results[0]);
    }
    const tarFile = path.join(tmp, 'threads.tar');
    writeFileSync(tarFile, zlib.gunzipSync(blobs[0]));
    expect(pythonNames(tarFile)).toEqual(['random', 'text', 'zeros']);
    expect(execFileSync('gzip', ['-dc', path.join(tmp, 'threads-0.tar.gz')], { maxBuffer: 1 << 26 }).equals(readFileSync(tarFile))).toBe(true);
  }, 60_000);
});
