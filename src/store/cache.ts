// The step cache: `cache/<key>.json` maps a step's cache key (plan/cache-key.ts) to its result, the
// layer it produced or nothing for an empty diff. Records are written atomically after the layer is
// complete, so a record never names a missing layer; a record whose layer was pruned or failed
// verification since is a miss, never an error.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LayerRecord } from '../image/types.js';
import { writeAtomic, type Store } from './store.js';

export interface CacheRecord {
  key: string;
  /** ISO time of the last hit or write; prune drops the least recently used first */
  lastUsed: string;
  /** absent when the step's diff was empty */
  layer?: LayerRecord;
}

const KEY = /^[0-9a-f]{64}$/;

export class StepCache {
  constructor(private readonly store: Store) {}

  private file(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a cache key: ${key}`);
    return path.join(this.store.root, 'cache', `${key}.json`);
  }

  /** The record of a key whose layer is complete in the store, or undefined; a hit counts as a use. */
  async get(key: string): Promise<CacheRecord | undefined> {
    const record = await this.peek(key);
    if (record) await this.write({ ...record, lastUsed: new Date().toISOString() }, false); // for prune's LRU: a hint, not worth an fsync
    return record;
  }

  /** Like get, without counting as a use. */
  async peek(key: string): Promise<CacheRecord | undefined> {
    const text = await fs.readFile(this.file(key), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    let record: CacheRecord;
    try {
      record = JSON.parse(text) as CacheRecord;
    } catch {
      return undefined;
    }
    if (record.key !== key) return undefined;
    if (record.layer && !(await this.store.hasLayer(record.layer.diffId) && await this.store.hasBlob(record.layer.digest))) return undefined;
    return record;
  }

  async put(key: string, layer: LayerRecord | undefined): Promise<void> {
    await this.write({ key, lastUsed: new Date().toISOString(), ...(layer && { layer }) }, true);
  }

  private async write(record: CacheRecord, sync: boolean): Promise<void> {
    await writeAtomic(this.file(record.key), Buffer.from(`${JSON.stringify(record)}\n`), { sync });
  }
}
