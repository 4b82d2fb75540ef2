// The store on its own: atomic layer installs under concurrency, leftovers of dead processes,
// verified reads, leases against prune, gc.lock, --keep-storage.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MediaType, type LayerRecord } from '../../src/image/types.js';
import { commitLayer } from '../../src/layer/commit.js';
import { readUpperdir } from '../../src/layer/diff.js';
import { acquireGcLock, StoreBusyError } from '../../src/store/lock.js';
import { parseSize, prune } from '../../src/store/prune.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers.js';

let root: string;
beforeEach(() => {
  root = tempDir('store');
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A pid that belonged to a process that has exited. */
const deadPid = (): number => spawnSync('/bin/true').pid!;

/** An upperdir with the given files, committed: the record and the dir, ready for addLayer. */
async function preparedLayer(store: Store, files: Record<string, Buffer | string>): Promise<{ record: LayerRecord; diff: string }> {
  const work = await store.makeTemp('test');
  const diff = path.join(work, 'diff');
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(diff, name)), { recursive: true });
    fs.writeFileSync(path.join(diff, name), content);
  }
  const committed = await commitLayer(readUpperdir(diff, { clampMtime: 0 }), path.join(work, 'blob'));
  await store.adoptBlob(path.join(work, 'blob'), committed.digest);
  return { record: { digest: committed.digest, diffId: committed.diffId, size: committed.size, mediaType: MediaType.ociLayerGzip }, diff };
}

async function storedLayer(store: Store, files: Record<string, Buffer | string>): Promise<LayerRecord> {
  const { record, diff } = await preparedLayer(store, files);
  await store.addLayer(record, diff, { mtimeClamp: 0 });
  return record;
}

describe('layers', () => {
  it('six writers adding the same layer at once leave one complete layer and no temp dir', async () => {
    const stores = await Promise.all([1, 2, 3].map(() => Store.open(root)));
    const content = { 'etc/app.conf': 'key=value\n', 'bin/tool': randomBytes(4096) };
    const copies = await Promise.all([...stores, ...stores].map((s) => preparedLayer(s, content)));
    const { record } = copies[0];
    expect(new Set(copies.map((c) => c.record.diffId)).size).toBe(1);
    await Promise.all(copies.map((c, i) => stores[i % 3].addLayer(c.record, c.diff, { mtimeClamp: 0 })));

    const dir = path.join(root, 'layers', record.diffId.slice(7));
    expect(fs.readdirSync(path.join(root, 'layers'))).toEqual([record.diffId.slice(7)]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'layer.json'), 'utf8'))).toEqual({ ...record, mtimeClamp: 0 });
    expect(fs.readFileSync(path.join(dir, 'diff', 'etc', 'app.conf'), 'utf8')).toBe('key=value\n');
    expect(fs.readFileSync(path.join(root, stores[0].shortLink(record.diffId), 'etc', 'app.conf'), 'utf8')).toBe('key=value\n');
    expect((await stores[0].layerRecord(record.diffId))).toEqual(record); // the clamp stays inside the store
    for (const c of copies) expect(fs.existsSync(c.diff)).toBe(false);
    expect(fs.readdirSync(path.join(root, 'l'))).toEqual([record.diffId.slice(7, 27)]);
  });

  it('a layer directory without layer.json (an interrupted older strata) is replaced, never used', async () => {
    const store = await Store.open(root);
    const { record, diff } = await preparedLayer(store, { 'a.txt': 'complete\n' });
    const stale = path.join(root, 'layers', record.diffId.slice(7));
    fs.mkdirSync(path.join(stale, 'diff'), { recursive: true });
    fs.writeFileSync(path.join(stale, 'diff', 'half'), 'x');
    expect(await store.hasLayer(record.diffId)).toBe(false);
    await store.addLayer(record, diff);
    expect(fs.readdirSync(path.join(stale, 'diff'))).toEqual(['a.txt']);
    expect(await store.hasLayer(record.diffId)).toBe(true);
  });
});

describe('leftovers of dead processes', () => {
  it('the next open removes their temp dirs, half-written files and leases, and keeps live ones', async () => {
    const dead = deadPid();
    await Store.open(root);
    const hex = 'ab'.repeat(32);
    const leftovers = [
      `tmp/${dead}-step-0123456789ab/upper/file`,
      `blobs/sha256/${hex}.tmp-${dead}-0a0b0c0d`,
      `tags/x%3Alatest.tmp-${dead}-01020304`,
      `leases/${dead}-0123456789ab.json`,
    ];
    const live = [`tmp/${process.pid}-step-0123456789ab/upper/file`, `leases/${process.pid}-0123456789ab.json`];
    for (const file of [...leftovers, ...live]) {
      fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      fs.writeFileSync(path.join(root, file), '{}');
    }
    await Store.open(root);
    for (const file of leftovers) expect(fs.existsSync(path.join(root, file)), file).toBe(false);
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([`${process.pid}-step-0123456789ab`]);
    for (const file of live) expect(fs.existsSync(path.join(root, file)), file).toBe(true);
  });
});

describe('blobs', () => {
  it('a corrupt blob is reported, never returned, and storing it again heals it', async () => {
    const store = await Store.open(root);
    const data = Buffer.from('{"schemaVersion":2}');
    const digest = await store.putBlob(data);
    fs.writeFileSync(store.blobPath(digest), '{"schemaVersion":3}');
    await expect(store.readBlob(digest)).rejects.toThrow(`blob ${digest} is corrupt (digest mismatch)`);
    expect(await store.verifyBlob(digest)).toBe(false);
    await store.putBlob(data);
    expect(await store.readBlob(digest)).toEqual(data);
    expect(await store.verifyBlob(digest)).toBe(true);
  });
});

describe('leases and prune', () => {
  it('a layer leased by a running process survives prune; released, prune removes it with its blob and link', async () => {
    const builder = await Store.open(root);
    const lease = await builder.lease();
    const record = await storedLayer(builder, { 'big.bin': randomBytes(200_000) });
    const leaseFile = fs.readdirSync(path.join(root, 'leases'));
    expect(leaseFile).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'leases', leaseFile[0]), 'utf8'))).toMatchObject({ layers: [record.diffId], blobs: [record.digest] });

    const pruner = await Store.open(root);
    expect(await prune(pruner)).toMatchObject({ layers: 0, blobs: 0 });
    expect(await builder.hasLayer(record.diffId)).toBe(true);

    await lease.release();
    expect(fs.readdirSync(path.join(root, 'leases'))).toEqual([]);
    const freed = await prune(pruner);
    expect(freed).toMatchObject({ layers: 1, blobs: 1, cacheRecords: 0, remaining: 0 });
    expect(freed.bytes).toBeGreaterThan(2 * 200_000); // the diff and its (incompressible) blob
    expect(fs.readdirSync(path.join(root, 'layers'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'blobs', 'sha256'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'l'))).toEqual([]);
  });

  it('the lease of a dead process protects nothing', async () => {
    const store = await Store.open(root);
    const record = await storedLayer(store, { f: 'x' });
    fs.writeFileSync(path.join(root, 'leases', `${process.pid}-deadbeef0000.json`),
      JSON.stringify({ owner: { pid: deadPid(), start: '1' }, layers: [record.diffId], blobs: [record.digest] }));
    expect(await prune(store)).toMatchObject({ layers: 1, blobs: 1 });
    expect(fs.readdirSync(path.join(root, 'leases'))).toEqual([]);
  });

  it('a build adding to its lease waits while prune holds gc.lock', async () => {
    const store = await Store.open(root);
    const lease = await store.lease();
    const release = await acquireGcLock(root);
    await expect(acquireGcLock(root)).rejects.toThrow(StoreBusyError);
    await expect(acquireGcLock(root)).rejects.toThrow(`being pruned or repaired by process ${process.pid}`);
    let held = false;
    const holding = lease.hold({ layers: [`sha256:${'cd'.repeat(32)}`] }).then(() => (held = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(held).toBe(false);
    await release();
    await holding;
    expect(held).toBe(true);
    await lease.release();
  });

  it('a gc.lock left by a dead process is broken', async () => {
    await Store.open(root);
    fs.writeFileSync(path.join(root, 'gc.lock'), JSON.stringify({ pid: deadPid(), start: '1' }));
    const release = await acquireGcLock(root);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'gc.lock'), 'utf8')).pid).toBe(process.pid);
    await release();
    expect(fs.existsSync(path.join(root, 'gc.lock'))).toBe(false);
  });

  it('--keep-storage drops the least recently used cache records until the rest fits; --all drops every record', async () => {
    const store = await Store.open(root);
    const layers = [];
    for (const i of [0, 1, 2]) layers.push(await storedLayer(store, { [`f${i}`]: randomBytes(100_000) }));
    fs.mkdirSync(path.join(root, 'cache'), { recursive: true }); // Store.open makes it
    const keys = layers.map((_, i) => String(i).repeat(64));
    layers.forEach((layer, i) => fs.writeFileSync(path.join(root, 'cache', `${keys[i]}.json`),
      JSON.stringify({ key: keys[i], lastUsed: new Date(Date.UTC(2026, 0, 1 + [2, 0, 1][i])).toISOString(), layer })));
    // a record without a layer (an empty diff) holds nothing
    fs.writeFileSync(path.join(root, 'cache', `${'e'.repeat(64)}.json`), JSON.stringify({ key: 'e'.repeat(64), lastUsed: '2025-01-01T00:00:00Z' }));

    // each layer takes ~100 KB as a diff and ~100 KB as a blob: 300 KB keeps one layer only
    const freed = await prune(store, { keepStorage: 300_000 });
    expect(freed).toMatchObject({ cacheRecords: 3, layers: 2, blobs: 2 });
    expect(freed.remaining).toBeLessThanOrEqual(300_000);
    expect(fs.readdirSync(path.join(root, 'cache'))).toEqual([`${keys[0]}.json`]); // the most recently used
    expect(fs.readdirSync(path.join(root, 'layers'))).toEqual([layers[0].diffId.slice(7)]);

    expect(await prune(store, { all: true })).toMatchObject({ cacheRecords: 1, layers: 1, blobs: 1, remaining: 0 });
  });

  it('reads sizes as Docker does (binary multiples)', () => {
    expect(parseSize('500MB')).toBe(500 * 1024 ** 2);
    expect(parseSize('2GB')).toBe(2 * 1024 ** 3);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('1048576')).toBe(1048576);
    expect(() => parseSize('lots')).toThrow('not a size: lots');
  });
});
