// `strata fsck`: checks every blob against its digest, every layer directory against its diff_id,
// every layer's blob, link and every tag's image and cache record, and with `repair` fixes what can
// be fixed from what is intact: a layer diff is re-extracted from its blob, a layer blob re-made
// from its diff (gzip output depends only on the tar bytes), links re-made; what cannot be rebuilt
// is removed (a corrupt blob is never used) and the tags and cache records that needed it with it.
import { createHash } from 'node:crypto';
import { readBlobFile } from '../image/source.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Digest, ImageConfig, Manifest } from '../image/types.js';
import { commitLayer } from '../layer/commit.js';
import { readUpperdir } from '../layer/diff.js';
import { extractLayer } from '../layer/extract.js';
import { writeTar } from '../layer/tar-write.js';
import { liveLeases } from './lease.js';
import { acquireGcLock, pidPrefixAlive } from './lock.js';
import type { Store, StoredLayer } from './store.js';

export interface FsckProblem {
  /** "blob sha256:…", "layer sha256:…", "tag name", "cache record key", "link l/…" */
  entry: string;
  problem: string;
  /** what --repair did about it; absent when it was left as found */
  repaired?: string;
}

export interface FsckReport {
  checked: { blobs: number; layers: number; tags: number; cacheRecords: number };
  problems: FsckProblem[];
}

const HEX = /^[0-9a-f]{64}$/;

/** The diff_id of a layer directory: the sha256 of the tar the layer codec writes for it. */
export async function diffIdOfDirectory(dir: string, mtimeClamp?: number): Promise<Digest> {
  const hash = createHash('sha256');
  await pipeline(writeTar(readUpperdir(dir, { clampMtime: mtimeClamp })), hash);
  return `sha256:${hash.digest('hex')}`;
}

export async function fsck(store: Store, opts: { repair?: boolean } = {}): Promise<FsckReport> {
  const release = opts.repair ? await acquireGcLock(store.root) : undefined;
  try {
    return await new Check(store, Boolean(opts.repair)).run();
  } finally {
    await release?.();
  }
}

class Check {
  private readonly problems: FsckProblem[] = [];
  private readonly goodBlobs = new Set<Digest>();
  private readonly goodLayers = new Set<Digest>();
  /** Everything the scan saw: an entry referenced but not seen appeared later (a running build). */
  private readonly seenBlobs = new Set<Digest>();
  private readonly seenLayers = new Set<Digest>();
  private readonly checked = { blobs: 0, layers: 0, tags: 0, cacheRecords: 0 };
  private leased = { layers: new Set<Digest>(), blobs: new Set<Digest>() };

  constructor(private readonly store: Store, private readonly repair: boolean) {}

  private report(entry: string, problem: string, repaired?: string): FsckProblem {
    const found: FsckProblem = { entry, problem, ...(repaired && { repaired }) };
    this.problems.push(found);
    return found;
  }

  async run(): Promise<FsckReport> {
    this.leased = await liveLeases(this.store.root);
    await this.checkBlobs();
    await this.checkLayers();
    await this.checkLinks();
    await this.checkTags();
    await this.checkCache();
    return { checked: this.checked, problems: this.problems };
  }

  private async checkBlobs(): Promise<void> {
    const dir = path.join(this.store.root, 'blobs', 'sha256');
    for (const name of (await fs.readdir(dir)).sort()) {
      if (!HEX.test(name)) {
        if (/\.tmp-\d+-/.test(name) && pidPrefixAlive(name.slice(name.indexOf('.tmp-') + 5))) continue; // being written
        this.report(`blob file ${name}`, 'not a blob', await this.fix(() => fs.rm(path.join(dir, name), { force: true }), 'removed'));
        continue;
      }
      const digest = `sha256:${name}`;
      this.checked.blobs++;
      this.seenBlobs.add(digest);
      if (await this.store.verifyBlob(digest)) {
        this.goodBlobs.add(digest);
      } else if (await exists(this.store.blobPath(digest))) {
        this.report(`blob ${digest}`, 'content does not match its digest', await this.fix(() => this.store.removeBlob(digest), 'removed'));
      }
    }
  }

  private async checkLayers(): Promise<void> {
    const dir = path.join(this.store.root, 'layers');
    for (const name of (await fs.readdir(dir)).sort()) {
      const layerDir = path.join(dir, name);
      if (!HEX.test(name)) {
        this.report(`layers/${name}`, 'not a layer directory', await this.fix(() => this.store.discard(layerDir), 'removed'));
        continue;
      }
      const diffId = `sha256:${name}`;
      this.checked.layers++;
      this.seenLayers.add(diffId);
      const entry = `layer ${diffId}`;
      let stored: StoredLayer;
      try {
        stored = JSON.parse(await fs.readFile(path.join(layerDir, 'layer.json'), 'utf8')) as StoredLayer;
      } catch {
        if (!(await exists(layerDir))) continue; // removed while we looked
        this.report(entry, 'incomplete: no readable layer.json', await this.fix(() => this.store.discard(layerDir), 'removed'));
        continue;
      }
      if (stored.diffId !== diffId || !/^sha256:[0-9a-f]{64}$/.test(stored.digest ?? '')) {
        this.report(entry, `layer.json describes another layer (${stored.diffId})`, await this.fix(() => this.store.removeLayer(diffId), 'removed'));
        continue;
      }
      const diff = path.join(layerDir, 'diff');
      const actual = await diffIdOfDirectory(diff, stored.mtimeClamp).catch((err: Error) => `unreadable (${err.message})`);
      if (actual !== diffId && !(await this.matchesPulledBlob(stored, actual))) {
        const problem = `diff does not match its diff_id (it hashes to ${actual})`;
        if (!this.repair) {
          this.report(entry, problem);
          continue;
        }
        if (this.goodBlobs.has(stored.digest) && (await this.reextract(stored))) {
          this.report(entry, problem, `re-extracted from blob ${stored.digest}`);
        } else {
          await this.store.removeLayer(diffId);
          this.report(entry, problem, 'removed: no intact blob to rebuild it from');
          continue;
        }
      }
      if (!this.goodBlobs.has(stored.digest)) await this.checkLayerBlob(stored, diff);
      await this.checkLink(diffId);
      this.goodLayers.add(diffId);
    }
  }

  /** A layer whose diff is intact but whose blob is missing or was corrupt: make it again. */
  private async checkLayerBlob(stored: StoredLayer, diff: string): Promise<void> {
    const entry = `layer ${stored.diffId}`;
    const problem = `its blob ${stored.digest} is missing or corrupt`;
    if (!this.repair) {
      this.report(entry, problem);
      return;
    }
    const tmp = await this.store.makeTemp('fsck-blob');
    try {
      if (stored.mediaType.endsWith('+gzip') || stored.mediaType.endsWith('.gzip')) {
        const made = await commitLayer(readUpperdir(diff, { clampMtime: stored.mtimeClamp }), path.join(tmp, 'blob'));
        if (made.digest === stored.digest) {
          await this.store.adoptBlob(path.join(tmp, 'blob'), stored.digest);
          this.goodBlobs.add(stored.digest);
          this.report(entry, problem, 'blob re-made from the layer diff');
          return;
        }
      }
      this.report(entry, `${problem}, and re-compressing the diff does not give the same bytes (a pulled layer?)`);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * A layer strata did not build (pulled or imported: no mtime clamp recorded) has the diff_id of
   * its producer's tar, which strata's codec need not reproduce byte for byte. Its directory is
   * intact when it reads the same as a fresh extraction of its verified blob.
   */
  private async matchesPulledBlob(stored: StoredLayer, actual: string): Promise<boolean> {
    if (stored.mtimeClamp !== undefined || !this.goodBlobs.has(stored.digest)) return false;
    const staged = await this.store.makeTemp('fsck-compare');
    try {
      return (await this.extractBlob(stored, path.join(staged, 'diff'))) && (await diffIdOfDirectory(path.join(staged, 'diff'))) === actual;
    } catch {
      return false;
    } finally {
      await fs.rm(staged, { recursive: true, force: true });
    }
  }

  /** Unpacks a layer blob into `dest`; false for a compression strata does not read. */
  private async extractBlob(stored: StoredLayer, dest: string): Promise<boolean> {
    const file = readBlobFile(this.store.blobPath(stored.digest));
    let tar: Readable = file;
    if (/gzip$/.test(stored.mediaType)) {
      const gunzip = createGunzip();
      file.on('error', (err) => gunzip.destroy(err)).pipe(gunzip);
      tar = gunzip;
    } else if (!/\.tar$/.test(stored.mediaType)) {
      file.destroy();
      return false;
    }
    await extractLayer(tar, dest);
    return true;
  }

  /** Rebuilds a layer directory from its (verified) blob; true when the result has the right diff_id
   * (for a pulled layer the verified blob is the layer by definition). */
  private async reextract(stored: StoredLayer): Promise<boolean> {
    const staged = await this.store.makeTemp('fsck-layer');
    try {
      if (!(await this.extractBlob(stored, path.join(staged, 'diff')))) return false;
      if (stored.mtimeClamp !== undefined && (await diffIdOfDirectory(path.join(staged, 'diff'), stored.mtimeClamp)) !== stored.diffId) return false;
      await fs.writeFile(path.join(staged, 'layer.json'), JSON.stringify(stored));
      await this.store.discard(this.store.layerDir(stored.diffId));
      await this.store.installLayerDir(staged, stored.diffId);
      return true;
    } catch {
      return false;
    } finally {
      await fs.rm(staged, { recursive: true, force: true });
    }
  }

  private async checkLink(diffId: Digest): Promise<void> {
    const link = path.join(this.store.root, this.store.shortLink(diffId));
    const want = path.join('..', 'layers', diffId.slice(7), 'diff');
    const have = await fs.readlink(link).catch(() => undefined);
    if (have === want) return;
    const problem = have === undefined ? 'its link is missing' : `its link points to ${have}`;
    this.report(`layer ${diffId}`, problem, await this.fix(() => this.store.linkLayer(diffId), `${this.store.shortLink(diffId)} re-made`));
  }

  /** Links whose layer is gone (and not being added by a running build). */
  private async checkLinks(): Promise<void> {
    const dir = path.join(this.store.root, 'l');
    for (const name of (await fs.readdir(dir)).sort()) {
      const target = await fs.readlink(path.join(dir, name)).catch(() => undefined);
      const hex = /^\.\.\/layers\/([0-9a-f]{64})\/diff$/.exec(target ?? '')?.[1];
      // a layer that is there (its problems are reported as its own), or is being added by a build
      if (hex && ((await exists(path.join(this.store.root, 'layers', hex))) || this.leased.layers.has(`sha256:${hex}`))) continue;
      if (/\.tmp-\d+-/.test(name) && pidPrefixAlive(name.slice(name.indexOf('.tmp-') + 5))) continue;
      this.report(`link l/${name}`, target ? `dangling (-> ${target})` : 'not a layer link', await this.fix(() => fs.rm(path.join(dir, name), { force: true }), 'removed'));
    }
  }

  private async blobOk(digest: Digest): Promise<boolean> {
    if (this.goodBlobs.has(digest)) return true;
    // Not seen by the scan: a build added it since (blobs appear whole) - or it is missing.
    return !this.seenBlobs.has(digest) && exists(this.store.blobPath(digest));
  }

  private async layerOk(diffId: Digest): Promise<boolean> {
    if (this.goodLayers.has(diffId)) return true;
    // Not seen by the scan: a build added it since (complete, as every layer appears) - or it is missing.
    return !this.seenLayers.has(diffId) && this.store.hasLayer(diffId);
  }

  /** What is missing from a tagged image, or undefined when it is complete. */
  private async incomplete(manifestDigest: Digest): Promise<string | undefined> {
    if (!(await this.blobOk(manifestDigest))) return `manifest ${manifestDigest} is missing or corrupt`;
    let manifest: Manifest;
    let config: ImageConfig;
    try {
      manifest = JSON.parse((await this.store.readBlob(manifestDigest)).toString('utf8')) as Manifest;
      if (!(await this.blobOk(manifest.config.digest))) return `config ${manifest.config.digest} is missing or corrupt`;
      config = JSON.parse((await this.store.readBlob(manifest.config.digest)).toString('utf8')) as ImageConfig;
    } catch (err) {
      return (err as Error).message;
    }
    if (manifest.layers.length !== config.rootfs.diff_ids.length) return 'manifest and config disagree on the number of layers';
    for (const [i, layer] of manifest.layers.entries()) {
      if (!(await this.blobOk(layer.digest))) return `layer blob ${layer.digest} is missing or corrupt`;
      if (!(await this.layerOk(config.rootfs.diff_ids[i]))) return `layer ${config.rootfs.diff_ids[i]} is missing or corrupt`;
    }
    return undefined;
  }

  private async checkTags(): Promise<void> {
    for (const tag of await this.store.listTags()) {
      this.checked.tags++;
      const missing = /^sha256:[0-9a-f]{64}$/.test(tag.digest) ? await this.incomplete(tag.digest) : `not a digest: ${tag.digest}`;
      if (missing) {
        this.report(`tag ${tag.name}`, `points to an incomplete image: ${missing}`, await this.fix(() => this.store.removeTag(tag.name), 'tag removed: build the image again'));
      }
    }
  }

  private async checkCache(): Promise<void> {
    const dir = path.join(this.store.root, 'cache');
    for (const name of (await fs.readdir(dir).catch(() => [] as string[])).sort()) {
      if (!name.endsWith('.json')) continue;
      this.checked.cacheRecords++;
      const file = path.join(dir, name);
      let record: { key?: string; layer?: { diffId: Digest; digest: Digest } };
      try {
        record = JSON.parse(await fs.readFile(file, 'utf8'));
      } catch {
        this.report(`cache record ${name}`, 'unreadable', await this.fix(() => fs.rm(file, { force: true }), 'removed'));
        continue;
      }
      const layer = record.layer;
      if (layer && !((await this.layerOk(layer.diffId)) && (await this.blobOk(layer.digest)))) {
        this.report(`cache record ${name.slice(0, -5)}`, `names layer ${layer.diffId}, which is missing or corrupt`, await this.fix(() => fs.rm(file, { force: true }), 'removed'));
      }
    }
  }

  /** Runs a repair in --repair mode and returns what to report as done; a no-op otherwise. */
  private async fix(action: () => Promise<unknown>, done: string): Promise<string | undefined> {
    if (!this.repair) return undefined;
    await action();
    return done;
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}
