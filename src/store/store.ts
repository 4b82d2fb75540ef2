// The local content-addressed store.
//
//   blobs/sha256/<hex>        layer blobs (gzip), configs and manifests, by digest
//   layers/<hex>/diff/        a layer's extracted diff (an overlay lowerdir), keyed by its diff_id
//   layers/<hex>/layer.json   the layer's LayerRecord (blob digest, size, media type)
//   l/<short>                 short relative link to layers/<hex>/diff: 150 lowerdirs fit in one page
//   tags/<encoded name>       a tag: the manifest digest it points to
//   tmp/<pid>-<random>/       work of one running process, removed when it ends (or by the next
//                             strata command when that process died)
// Every write is temp + fsync + rename inside the store, so a reader never sees a partial entry.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Digest, ImageConfig, LayerRecord, Manifest } from '../image/types.js';
import type { ImageSource } from '../image/source.js';
import { parseImageName } from '../image/names.js';
import { digestOf } from '../image/manifest.js';

export class StoreError extends Error {}

const hexOf = (digest: Digest): string => {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new StoreError(`not a sha256 digest: ${digest}`);
  return m[1];
};



export class Store {
  private constructor(readonly root: string) {}

  static defaultRoot(): string {
    if (process.env.STRATA_ROOT) return process.env.STRATA_ROOT;
    if (process.getuid?.() === 0) return '/var/lib/strata';
    return path.join(process.env.HOME ?? '/tmp', '.local/share/strata');
  }

  /** Opens (creating if needed) the store and removes what dead strata processes left in tmp/. */
  static async open(root: string): Promise<Store> {
    const abs = path.resolve(root);
    for (const dir of ['blobs/sha256', 'layers', 'l', 'tags', 'tmp']) {
      await fs.mkdir(path.join(abs, dir), { recursive: true });
    }
    const store = new Store(abs);
    await store.removeStaleTemp();
    return store;
  }

  private async removeStaleTemp(): Promise<void> {
    for (const name of await fs.readdir(path.join(this.root, 'tmp'))) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) continue;
      await fs.rm(path.join(this.root, 'tmp', name), { recursive: true, force: true });
    }
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
    return exists(this.blobPath(digest));
  }

  /** Stores a small blob (config, manifest) and returns its digest. */
  async putBlob(data: Buffer): Promise<Digest> {
    const digest = digestOf(data);
    const target = this.blobPath(digest);
    if (!(await exists(target))) await writeAtomic(target, data);
    return digest;
  }

  /** Moves a finished file whose digest the caller computed while writing it into the store. */
  async adoptBlob(file: string, digest: Digest): Promise<void> {
    const target = this.blobPath(digest);
    if (await exists(target)) {
      await fs.rm(file, { force: true });
      return;
    }
    await fsyncFile(file);
    await fs.rename(file, target);
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    const data = await fs.readFile(this.blobPath(digest)).catch((err: NodeJS.ErrnoException) => {
      throw new StoreError(err.code === 'ENOENT' ? `blob ${digest} is missing from the store` : err.message);
    });
    if (digestOf(data) !== digest) throw new StoreError(`blob ${digest} is corrupt (digest mismatch)`);
    return data;
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
    return exists(path.join(this.layerDir(diffId), 'layer.json'));
  }

  async layerRecord(diffId: Digest): Promise<LayerRecord> {
    const text = await fs.readFile(path.join(this.layerDir(diffId), 'layer.json'), 'utf8').catch(() => {
      throw new StoreError(`layer ${diffId} is missing from the store`);
    });
    return JSON.parse(text) as LayerRecord;
  }

  /**
   * Makes `diffDir` (a finished upperdir or an extracted layer, inside tmp/) the stored diff of the
   * layer. The record is written last: a layer without layer.json is incomplete and never used.
   */
  async addLayer(record: LayerRecord, diffDir: string): Promise<void> {
    if (await this.hasLayer(record.diffId)) {
      await fs.rm(diffDir, { recursive: true, force: true });
      return;
    }
    const dir = this.layerDir(record.diffId);
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    await fs.rename(diffDir, path.join(dir, 'diff'));
    const link = path.join(this.root, this.shortLink(record.diffId));
    await fs.rm(link, { force: true });
    await fs.symlink(path.join('..', 'layers', hexOf(record.diffId), 'diff'), link);
    await writeAtomic(path.join(dir, 'layer.json'), Buffer.from(JSON.stringify(record)));
  }

  // ---- tags and images

  /** A tag's file; names are checked against the reference grammar and get `:latest` if untagged. */
  private tagPath(name: string): string {
    return path.join(this.root, 'tags', encodeURIComponent(parseImageName(name).full));
  }

  async tag(name: string, manifestDigest: Digest): Promise<void> {
    await writeAtomic(this.tagPath(name), Buffer.from(`${manifestDigest}\n`));
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

  /** An image of the store, by tag or manifest digest, as transports read it. */
  async image(nameOrDigest: string): Promise<ImageSource> {
    const manifestDigest = await this.resolve(nameOrDigest);
    if (!manifestDigest) throw new StoreError(`image not found in the local store: ${nameOrDigest}`);
    const manifestBytes = await this.readBlob(manifestDigest);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
    const configBytes = await this.readBlob(manifest.config.digest);
    return {
      manifestDigest,
      manifest,
      manifestBytes,
      config: JSON.parse(configBytes.toString('utf8')) as ImageConfig,
      configBytes,
      blobPath: (digest) => this.blobPath(digest),
    };
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** temp + fsync + rename: the target is either absent, the old content, or the whole new content. */
export async function writeAtomic(target: string, data: Buffer): Promise<void> {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, target);
}
