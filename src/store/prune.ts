// `strata prune`: removes the layers and blobs that nothing references. What is live:
//   - tagged images: manifest, config, layer blobs and layer directories;
//   - step cache records (cache/<key>.json): every digest they name (read directly, whatever else
//     a record holds, so a newer record format can only keep more, never break a later build);
//   - leases of running builds (lease.ts), read under gc.lock so no build loses what it uses;
//   - the blob of every live layer (exports and fsck need it).
// --keep-storage SIZE then drops the least recently used cache records until what is left is under
// SIZE; --all drops every cache record. Tags are never removed.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Digest, ImageConfig, Manifest } from '../image/types.js';
import { liveLeases } from './lease.js';
import { acquireGcLock } from './lock.js';
import type { Store } from './store.js';

export interface PruneOptions {
  /** drop every cache record */
  all?: boolean;
  /** bytes: drop least recently used cache records until layers + blobs take at most this */
  keepStorage?: number;
}

export interface PruneResult {
  cacheRecords: number;
  layers: number;
  blobs: number;
  /** disk space freed (allocated blocks, as du counts them) */
  bytes: number;
  /** disk space the store's layers and blobs take afterwards */
  remaining: number;
}

interface References {
  layers: Set<Digest>;
  blobs: Set<Digest>;
}

interface CacheEntry {
  file: string;
  lastUsed: number;
  refs: Set<Digest>;
}

const DIGEST = /sha256:[0-9a-f]{64}/g;

/** "500MB", "2GB", "1.5g", "1048576": binary multiples, as Docker's --keep-storage reads them. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: ${text} (examples: 500MB, 2GB, 1048576)`);
  const power = ' kmgt'.indexOf(m[2].toLowerCase() || ' ');
  return Math.floor(Number(m[1]) * 1024 ** power);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export async function prune(store: Store, opts: PruneOptions = {}): Promise<PruneResult> {
  const release = await acquireGcLock(store.root);
  try {
    return await pruneLocked(store, opts);
  } finally {
    await release();
  }
}

async function pruneLocked(store: Store, opts: PruneOptions): Promise<PruneResult> {
  const pinned = await taggedReferences(store);
  const leased = await liveLeases(store.root);
  for (const d of leased.layers) pinned.layers.add(d);
  for (const d of leased.blobs) pinned.blobs.add(d);

  const layers = await layerInventory(store);
  const blobs = await blobInventory(store);
  const records = (await cacheEntries(store)).sort((a, b) => a.lastUsed - b.lastUsed);

  const live = (kept: CacheEntry[]): References => {
    const refs: References = { layers: new Set(pinned.layers), blobs: new Set(pinned.blobs) };
    for (const record of kept) {
      for (const d of record.refs) {
        refs.layers.add(d);
        refs.blobs.add(d);
      }
    }
    for (const diffId of refs.layers) {
      const blob = layers.get(diffId)?.blob;
      if (blob) refs.blobs.add(blob);
    }
    return refs;
  };
  const usage = (refs: References): number => {
    let total = 0;
    for (const [diffId, layer] of layers) if (refs.layers.has(diffId)) total += layer.bytes;
    for (const [digest, bytes] of blobs) if (refs.blobs.has(digest)) total += bytes;
    return total;
  };

  let dropped = opts.all ? records.length : 0;
  if (opts.keepStorage !== undefined) {
    while (dropped < records.length && usage(live(records.slice(dropped))) > opts.keepStorage) dropped++;
  }
  const keep = live(records.slice(dropped));

  const result: PruneResult = { cacheRecords: 0, layers: 0, blobs: 0, bytes: 0, remaining: usage(keep) };
  // Records first: a record outliving its layer (prune killed midway) is a cache miss, never an error.
  for (const record of records.slice(0, dropped)) {
    await fs.rm(record.file, { force: true });
    result.cacheRecords++;
  }
  for (const [diffId, layer] of layers) {
    if (keep.layers.has(diffId)) continue;
    await store.removeLayer(diffId);
    result.layers++;
    result.bytes += layer.bytes;
  }
  for (const [digest, bytes] of blobs) {
    if (keep.blobs.has(digest)) continue;
    await store.removeBlob(digest);
    result.blobs++;
    result.bytes += bytes;
  }
  await removeDanglingLinks(store, keep.layers);
  return result;
}

/** Everything tagged images need. An image that cannot be read whole keeps what could be read. */
async function taggedReferences(store: Store): Promise<References> {
  const refs: References = { layers: new Set(), blobs: new Set() };
  for (const tag of await store.listTags()) {
    refs.blobs.add(tag.digest);
    try {
      const manifest = JSON.parse((await store.readBlob(tag.digest)).toString('utf8')) as Manifest;
      refs.blobs.add(manifest.config.digest);
      for (const layer of manifest.layers) refs.blobs.add(layer.digest);
      const config = JSON.parse((await store.readBlob(manifest.config.digest)).toString('utf8')) as ImageConfig;
      for (const diffId of config.rootfs.diff_ids) refs.layers.add(diffId);
    } catch {
      // missing or corrupt: `strata fsck` reports it; prune only keeps
    }
  }
  return refs;
}

async function cacheEntries(store: Store): Promise<CacheEntry[]> {
  const dir = path.join(store.root, 'cache');
  const entries: CacheEntry[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const file = path.join(dir, name);
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    let lastUsed = 0;
    try {
      lastUsed = Date.parse((JSON.parse(text) as { lastUsed?: string }).lastUsed ?? '') || 0;
    } catch {
      // unreadable: oldest, dropped first
    }
    entries.push({ file, lastUsed, refs: new Set(text.match(DIGEST) ?? []) });
  }
  return entries;
}

async function layerInventory(store: Store): Promise<Map<Digest, { bytes: number; blob?: Digest }>> {
  const layers = new Map<Digest, { bytes: number; blob?: Digest }>();
  for (const name of await fs.readdir(path.join(store.root, 'layers'))) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const dir = path.join(store.root, 'layers', name);
    const record = await fs.readFile(path.join(dir, 'layer.json'), 'utf8').then((t) => JSON.parse(t) as { digest?: Digest }, () => undefined);
    layers.set(`sha256:${name}`, { bytes: await diskUsage(dir), blob: record?.digest });
  }
  return layers;
}

async function blobInventory(store: Store): Promise<Map<Digest, number>> {
  const blobs = new Map<Digest, number>();
  const dir = path.join(store.root, 'blobs', 'sha256');
  for (const name of await fs.readdir(dir)) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const st = await fs.lstat(path.join(dir, name)).catch(() => undefined);
    if (st) blobs.set(`sha256:${name}`, st.blocks * 512);
  }
  return blobs;
}

/** Allocated bytes of a tree, each hardlinked inode once (du's count). */
async function diskUsage(dir: string, seen = new Set<string>()): Promise<number> {
  let total = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    const st = await fs.lstat(file).catch(() => undefined);
    if (!st) continue;
    const inode = `${st.dev}:${st.ino}`;
    if (!seen.has(inode)) {
      seen.add(inode);
      total += st.blocks * 512;
    }
    if (entry.isDirectory()) total += await diskUsage(file, seen);
  }
  return total;
}

/** l/ links whose layer is gone; a link of a leased layer may belong to a layer being added. */
async function removeDanglingLinks(store: Store, liveLayers: Set<Digest>): Promise<void> {
  const dir = path.join(store.root, 'l');
  for (const name of await fs.readdir(dir)) {
    const target = await fs.readlink(path.join(dir, name)).catch(() => '');
    const hex = /^\.\.\/layers\/([0-9a-f]{64})\/diff$/.exec(target)?.[1];
    if (hex && (liveLayers.has(`sha256:${hex}`) || (await fs.lstat(path.join(store.root, 'layers', hex)).then(() => true, () => false)))) continue;
    if (/\.tmp-\d+-/.test(name)) continue; // a link being made; Store.open removes it if its process died
    await fs.rm(path.join(dir, name), { force: true });
  }
}
