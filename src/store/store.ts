// The local content-addressed store.
//
//   blobs/sha256/<hex>        layer blobs (gzip), configs and manifests, by digest
//   layers/<hex>/diff/        a layer's extracted diff (an overlay lowerdir), keyed by its diff_id
//   layers/<hex>/layer.json   the layer's LayerRecord (blob digest, size, media type) and mtimeClamp
//   l/<short>                 short relative link to layers/<hex>/diff: 150 lowerdirs fit in one page
//   tags/<encoded name>       a tag: the manifest digest it points to
//   cache/<key>.json          step cache records (cache.ts)
//   leases/<pid>-<random>.json  what a running build uses (lease.ts); gc.lock: a running prune (lock.ts)
//   tmp/<pid>-<label>-<random>/ work of one running process, removed when it ends (or by the next
//                             strata command when that process died)
// Every entry appears by one rename of a complete file or directory prepared on the same
// filesystem, so a reader sees it whole or not at all, and a process killed at any point leaves only
// its own tmp/ dir (or a `.tmp-<pid>-` file) behind, which the next Store.open removes.
import { createHash, randomBytes } from 'node:crypto';
import { readBlobFile } from '../image/source.js';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import type { Digest, ImageConfig, LayerRecord, Manifest } from '../image/types.js';
import type { ImageSource } from '../image/source.js';
import { parseImageName } from '../image/names.js';
import { digestOf } from '../image/manifest.js';
import { Lease, type Leased } from './lease.js';
import { pidPrefixAlive } from './lock.js';

export class StoreError extends Error {}

const hexOf = (digest: Digest): string => {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new StoreError(`not a sha256 digest: ${digest}`);
  return m[1];
};

/** What layer.json holds: the record, plus the mtime clamp the diff was committed with (needed to
 * recompute its diff_id from the directory, which keeps the unclamped mtimes). */
export interface StoredLayer extends LayerRecord {
  mtimeClamp?: number;
}

const TEMP_FILE = /\.tmp-(\d+)-[0-9a-f]+$/;

export class Store {
  /** Set by lease(): from then on every entry this store object touches is named in it first. */
  private activeLease?: Lease;

  private constructor(readonly root: string) {}

  static defaultRoot(): string {
    if (process.env.STRATA_ROOT) return process.env.STRATA_ROOT;
    if (process.getuid?.() === 0) return '/var/lib/strata';
    return path.join(process.env.HOME ?? '/tmp', '.local/share/strata');
  }

  /** Opens (creating if needed) the store and removes what dead strata processes left behind. */
  static async open(root: string): Promise<Store> {
    const abs = path.resolve(root);
    for (const dir of ['blobs/sha256', 'layers', 'l', 'tags', 'tmp', 'leases', 'cache']) {
      await fs.mkdir(path.join(abs, dir), { recursive: true });
    }
    const store = new Store(abs);
    await store.removeLeftovers();
    return store;
  }

  /**
   * Temp dirs, half-written files and leases of dead processes. A dir is first renamed to a name of
   * this process, so two commands cleaning at once never remove the same tree, and a kill during
   * the removal leaves a dir the next command removes. Best effort: on a read-only store the
   * leftovers stay (harmless: nothing reads them) and read-only commands still work.
   */
  private async removeLeftovers(): Promise<void> {
    const ignore = (): void => undefined;
    const tmp = path.join(this.root, 'tmp');
    for (const name of await fs.readdir(tmp)) {
      if (pidPrefixAlive(name)) continue;
      const claimed = path.join(tmp, `${process.pid}-reap-${randomBytes(6).toString('hex')}`);
      if (await fs.rename(path.join(tmp, name), claimed).then(() => true, () => false)) {
        await fs.rm(claimed, { recursive: true, force: true }).catch(ignore);
      }
    }
    for (const name of await fs.readdir(path.join(this.root, 'leases'))) {
      if (!pidPrefixAlive(name)) await fs.rm(path.join(this.root, 'leases', name), { force: true }).catch(ignore);
    }
    for (const dir of ['blobs/sha256', 'tags', 'cache']) {
      for (const name of await fs.readdir(path.join(this.root, dir)).catch(() => [] as string[])) {
        const pid = TEMP_FILE.exec(name)?.[1];
        if (pid && !pidPrefixAlive(`${pid}-`)) await fs.rm(path.join(this.root, dir, name), { force: true }).catch(ignore);
      }
    }
  }

  /**
   * Starts leasing for a build: until release(), every blob and layer this object reads, checks or
   * writes is first named in the lease, so prune cannot delete it under the build.
   */
  async lease(): Promise<Lease> {
    this.activeLease ??= await Lease.take(this.root);
    return this.activeLease;
  }

  private async hold(entries: Leased): Promise<void> {
    await this.activeLease?.hold(entries);
  }

  /** A fresh private directory under tmp/ (same filesystem as the store, so renames are atomic). */
  async makeTemp(label: string): Promise<string> {
    const dir = path.join(this.root, 'tmp', `${process.pid}-${label}-${randomBytes(6).toString('hex')}`);
    await fs.mkdir(dir, { recursive: true });
    return dir;
  }

  // ---- blobs

  blobPath(digest: Digest): string {
    return path.join(this.root, 'blobs', 'sha256', hexOf(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    await this.hold({ blobs: [digest] });
    return exists(this.blobPath(digest));
  }

  /** Stores a small blob (config, manifest) and returns its digest. Rewriting an existing blob is
   * harmless (same bytes) and heals one that was corrupted. */
  async putBlob(data: Buffer): Promise<Digest> {
    const digest = digestOf(data);
    await this.hold({ blobs: [digest] });
    // A stored copy that still matches is kept: no write, no fsync (a cached rebuild stores the same
    // config and manifest again); one that went bad is replaced.
    const current = await fs.readFile(this.blobPath(digest)).catch(() => undefined);
    if (!current || digestOf(current) !== digest) await writeAtomic(this.blobPath(digest), data);
    return digest;
  }

  /**
   * Moves a finished file whose digest the caller computed while writing it into the store. It
   * replaces a blob already there: content addressing makes that the same bytes, unless the stored
   * one went bad, which this repairs; readers holding the old file open keep reading it.
   */
  async adoptBlob(file: string, digest: Digest): Promise<void> {
    await this.hold({ blobs: [digest] });
    await fsyncPath(file);
    await fs.rename(file, this.blobPath(digest));
    await fsyncPath(path.dirname(this.blobPath(digest)));
  }

  /** A small blob's bytes, checked against its digest: a corrupt blob is reported as such, never used. */
  async readBlob(digest: Digest): Promise<Buffer> {
    await this.hold({ blobs: [digest] });
    const data = await fs.readFile(this.blobPath(digest)).catch((err: NodeJS.ErrnoException) => {
      throw new StoreError(err.code === 'ENOENT' ? `blob ${digest} is missing from the store` : err.message);
    });
    if (digestOf(data) !== digest) throw new StoreError(`blob ${digest} is corrupt (digest mismatch); \`strata fsck --repair\` removes it`);
    return data;
  }

  /** Whether a blob of any size is present and hashes to its digest (streamed). */
  async verifyBlob(digest: Digest): Promise<boolean> {
    const hash = createHash('sha256');
    try {
      await pipeline(readBlobFile(this.blobPath(digest)), hash);
    } catch {
      return false;
    }
    return `sha256:${hash.digest('hex')}` === digest;
  }

  /** Deletes a blob. Only under gc.lock (prune, fsck --repair), after checking the leases. */
  async removeBlob(digest: Digest): Promise<void> {
    await fs.rm(this.blobPath(digest), { force: true });
  }

  // ---- layers

  layerDir(diffId: Digest): string {
    return path.join(this.root, 'layers', hexOf(diffId));
  }

  /** The lowerdir of a layer, relative to the store root (mounts run with the root as cwd). */
  shortLink(diffId: Digest): string {
    return path.join('l', hexOf(diffId).slice(0, 20));
  }

  async hasLayer(diffId: Digest): Promise<boolean> {
    await this.hold({ layers: [diffId] });
    return exists(path.join(this.layerDir(diffId), 'layer.json'));
  }

  async layerRecord(diffId: Digest): Promise<LayerRecord> {
    const { digest, size, mediaType } = await this.storedLayer(diffId);
    return { digest, diffId, size, mediaType };
  }

  /** layer.json as stored (with the mtime clamp), for fsck. */
  async storedLayer(diffId: Digest): Promise<StoredLayer> {
    await this.hold({ layers: [diffId] });
    const text = await fs.readFile(path.join(this.layerDir(diffId), 'layer.json'), 'utf8').catch(() => {
      throw new StoreError(`layer ${diffId} is missing from the store`);
    });
    return JSON.parse(text) as StoredLayer;
  }

  /**
   * Makes `diffDir` (a finished upperdir or an extracted layer, on the store's filesystem) the
   * stored diff of the layer. `mtimeClamp` is the clamp its diff_id was computed with, if any.
   *
   * The layer directory is assembled in tmp/ (diff, then layer.json) and renamed into layers/ in
   * one step, so layers/<hex> exists only complete. Two processes adding the same layer race only
   * on that rename: the second fails (the target is a non-empty directory) and drops its copy,
   * which has the same content. No lock is needed, and a reader never sees a half-made layer.
   */
  async addLayer(record: LayerRecord, diffDir: string, opts: { mtimeClamp?: number } = {}): Promise<void> {
    await this.hold({ layers: [record.diffId], blobs: [record.digest] });
    if (await this.hasLayer(record.diffId)) {
      await fs.rm(diffDir, { recursive: true, force: true });
      return;
    }
    const staged = await this.makeTemp('layer');
    await fs.rename(diffDir, path.join(staged, 'diff'));
    const stored: StoredLayer = { digest: record.digest, diffId: record.diffId, size: record.size, mediaType: record.mediaType };
    if (opts.mtimeClamp !== undefined) stored.mtimeClamp = opts.mtimeClamp;
    await writeAtomic(path.join(staged, 'layer.json'), Buffer.from(JSON.stringify(stored)));
    await this.linkLayer(record.diffId);
    await this.installLayerDir(staged, record.diffId);
  }

  /** l/<short> -> ../layers/<hex>/diff, created by renaming a fresh link over it: idempotent and
   * never absent for a moment (a concurrent mount may be resolving it). */
  async linkLayer(diffId: Digest): Promise<void> {
    const link = path.join(this.root, this.shortLink(diffId));
    const target = path.join('..', 'layers', hexOf(diffId), 'diff');
    if (await fs.readlink(link).then((t) => t === target, () => false)) return;
    const tmp = `${link}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await fs.symlink(target, tmp);
    await fs.rename(tmp, link);
  }

  /** Renames a complete layer directory (in tmp/) to layers/<hex>, unless another process did first. */
  async installLayerDir(staged: string, diffId: Digest): Promise<void> {
    const dir = this.layerDir(diffId);
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.rename(staged, dir);
        await fsyncPath(path.dirname(dir));
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
      if (await exists(path.join(dir, 'layer.json')) || attempt > 0) {
        await fs.rm(staged, { recursive: true, force: true }); // the same layer, put there by another process
        return;
      }
      // A directory without layer.json (left by an older strata) is never used: move it aside.
      await this.discard(dir);
    }
  }

  /** Deletes a layer. Only under gc.lock (prune, fsck --repair), after checking the leases. */
  async removeLayer(diffId: Digest): Promise<void> {
    await this.discard(this.layerDir(diffId));
    await fs.rm(path.join(this.root, this.shortLink(diffId)), { force: true });
  }

  /** Removes a tree by first renaming it into tmp/: it vanishes at once, and a kill during the rm
   * leaves a dir of a dead process that the next command removes. */
  async discard(target: string): Promise<void> {
    const graveyard = path.join(this.root, 'tmp', `${process.pid}-discard-${randomBytes(6).toString('hex')}`);
    try {
      await fs.rename(target, graveyard);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fs.rm(graveyard, { recursive: true, force: true });
  }

  // ---- tags and images

  /** A tag's file; names are checked against the reference grammar and get `:latest` if untagged. */
  private tagPath(name: string): string {
    return path.join(this.root, 'tags', encodeURIComponent(parseImageName(name).full));
  }

  async tag(name: string, manifestDigest: Digest): Promise<void> {
    const line = `${manifestDigest}\n`;
    if ((await fs.readFile(this.tagPath(name), 'utf8').catch(() => undefined)) === line) return;
    await writeAtomic(this.tagPath(name), Buffer.from(line));
  }

  async resolve(nameOrDigest: string): Promise<Digest | undefined> {
    if (/^sha256:[0-9a-f]{64}$/.test(nameOrDigest)) {
      return (await this.hasBlob(nameOrDigest)) ? nameOrDigest : undefined;
    }
    let file: string;
    try {
      file = this.tagPath(nameOrDigest);
    } catch {
      return undefined; // not a valid name, so not a tag of this store
    }
    const text = await fs.readFile(file, 'utf8').catch(() => undefined);
    return text?.trim() || undefined;
  }

  async listTags(): Promise<{ name: string; digest: Digest }[]> {
    const names = (await fs.readdir(path.join(this.root, 'tags'))).sort();
    const out: { name: string; digest: Digest }[] = [];
    for (const file of names) {
      const digest = (await fs.readFile(path.join(this.root, 'tags', file), 'utf8')).trim();
      out.push({ name: decodeURIComponent(file), digest });
    }
    return out;
  }

  async removeTag(name: string): Promise<void> {
    await fs.rm(path.join(this.root, 'tags', encodeURIComponent(name)), { force: true });
  }

  /** An image of the store, by tag or manifest digest, as transports read it. */
  async image(nameOrDigest: string): Promise<ImageSource> {
    const manifestDigest = await this.resolve(nameOrDigest);
    if (!manifestDigest) throw new StoreError(`image not found in the local store: ${nameOrDigest}`);
    const manifestBytes = await this.readBlob(manifestDigest);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
    await this.hold({ blobs: manifest.layers.map((l) => l.digest) });
    const configBytes = await this.readBlob(manifest.config.digest);
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    await this.hold({ layers: config.rootfs.diff_ids });
    return {
      manifestDigest,
      manifest,
      manifestBytes,
      config,
      configBytes,
      blobPath: (digest) => this.blobPath(digest),
    };
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** fsync of a file, or of a directory (which makes a rename in it durable). */
async function fsyncPath(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * temp + fsync + rename: the target is either absent, the old content, or the whole new content.
 * The temp file (`<target>.tmp-<pid>-<random>`) of a process killed before the rename is removed by
 * the next Store.open.
 */
export async function writeAtomic(target: string, data: Buffer, opts: { sync?: boolean } = {}): Promise<void> {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(data);
    // sync: false for hints whose loss in a crash costs nothing (the rename still keeps them whole)
    if (opts.sync !== false) await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await fs.rename(tmp, target);
}
