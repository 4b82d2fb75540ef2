// Where blobs are known to live on registries ("host/repository"), learnt from pulls and pushes, so
// a push can ask the registry to mount a blob from a sibling repository instead of uploading it.
// Only an optimisation: a lost or stale entry costs an upload, never correctness.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../../image/types.js';
import { writeAtomic } from '../../store/store.js';

export class BlobLocations {
  private constructor(private readonly file: string, private readonly byDigest: Record<Digest, string[]>) {}

  /** The record kept in a store's root directory. */
  static async load(storeRoot: string): Promise<BlobLocations> {
    const file = path.join(storeRoot, 'registry-locations.json');
    const text = await readFile(file, 'utf8').catch(() => '{}');
    let parsed: Record<Digest, string[]>;
    try {
      parsed = JSON.parse(text) as Record<Digest, string[]>;
    } catch {
      parsed = {}; // a damaged cache is simply forgotten
    }
    return new BlobLocations(file, parsed);
  }

  /** Repositories of `registry` other than `repository` that hold the blob. */
  sources(digest: Digest, registry: string, repository: string): string[] {
    const prefix = `${registry}/`;
    return (this.byDigest[digest] ?? []).filter((l) => l.startsWith(prefix) && l !== `${registry}/${repository}`).map((l) => l.slice(prefix.length));
  }

  async record(digests: Digest[], registry: string, repository: string): Promise<void> {
    const location = `${registry}/${repository}`;
    for (const digest of digests) {
      const known = (this.byDigest[digest] ??= []);
      if (!known.includes(location)) known.push(location);
      // Keep the most recent few places per blob.
      if (known.length > 8) known.splice(0, known.length - 8);
    }
    await writeAtomic(this.file, Buffer.from(JSON.stringify(this.byDigest)));
  }
}
