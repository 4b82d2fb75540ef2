// A layer tar unpacked into a directory, typically to serve as an overlay lowerdir: OCI whiteouts
// become overlay whiteouts again, and nothing in the archive can reach outside the destination.
//
// Containment rests on three rules: names are cleaned ('/' and '.' dropped) and any '..' is an
// error; every parent directory is checked with lstat and a symlink there is an error, never
// followed; the final component is removed and recreated (O_EXCL), never written through.

import { chmod, link, lchown, lstat, lutimes, mkdir, realpath, rm, symlink, unlink } from 'node:fs/promises';
import { constants, createWriteStream, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fsx } from '../native/index.js';
import { LayerEntry, OPAQUE_MARKER, WHITEOUT_PREFIX, isOverlayXattr } from './entry.js';
import { readTar } from './tar-read.js';

export class LayerExtractError extends Error {
  override name = 'LayerExtractError';
}

export interface ExtractOptions {
  /** 'overlay' (default): `.wh.<name>` becomes a 0/0 character device <name> and `.wh..wh..opq`
   * sets trusted.overlay.opaque=y on its directory. 'keep': whiteout files are extracted as they are. */
  whiteouts?: 'overlay' | 'keep';
}

/** Unpacks an uncompressed layer tar into `dest` (created if missing). Fails on the first entry
 * that would escape `dest` or cannot be applied, naming it. */
export async function extractLayer(tar: Readable, dest: string, opts: ExtractOptions = {}): Promise<{ entries: number }> {
  await mkdir(dest, { recursive: true });
  const extractor = new Extractor(await realpath(dest), opts.whiteouts ?? 'overlay');
  let entries = 0;
  for await (const { header, body } of readTar(tar)) {
    entries++;
    try {
      await extractor.apply(header, body);
    } catch (err) {
      if (err instanceof LayerExtractError) throw err;
      throw new LayerExtractError(`layer entry '${header.path}': ${(err as Error).message}`, { cause: err });
    }
  }
  await extractor.finishDirectories();
  return { entries };
}

const S_IFMT_FOR = { char: constants.S_IFCHR, block: constants.S_IFBLK, fifo: constants.S_IFIFO } as const;

class Extractor {
  /** Relative paths known to be real directories (not symlinks) right now. */
  private readonly knownDirs = new Set<string>(['']);
  /** Non-directories written by this extraction: the only allowed hardlink targets. */
  private readonly extracted = new Set<string>();
  /** Directory metadata, applied last: children would change the mtime, and a 0555 mode must not
   * stop them from being created. */
  private readonly directories = new Map<string, LayerEntry>();

  constructor(private readonly root: string, private readonly whiteouts: 'overlay' | 'keep') {}

  async apply(entry: LayerEntry, body: Readable): Promise<void> {
    const rel = this.clean(entry.path, entry.path);
    const base = path.posix.basename(rel);
    if (this.whiteouts === 'overlay' && base.startsWith(WHITEOUT_PREFIX)) {
      return this.applyWhiteout(entry, rel, base);
    }
    if (entry.type === 'dir') return this.applyDirectory(entry, rel);
    if (rel === '') throw new LayerExtractError(`layer entry '${entry.path}': a ${entry.type} cannot replace the extraction root`);

    await this.ensureDirectory(parentOf(rel), entry.path);
    const target = this.abs(rel);
    if (entry.type === 'hardlink') {
      const linked = this.clean(entry.linkname ?? '', entry.path);
      if (!this.extracted.has(linked) || linked === rel) {
        throw new LayerExtractError(`layer entry '${entry.path}': hardlink target '${entry.linkname}' is not a file extracted earlier from this layer`);
      }
      await this.clear(rel, false);
      await link(this.abs(linked), target);
      this.extracted.add(rel);
      return; // the inode's metadata came with the first link
    }

    await this.clear(rel, false);
    switch (entry.type) {
      case 'file':
        await pipeline(body, createWriteStream(target, { flags: 'wx', mode: 0o600 }));
        break;
      case 'symlink':
        await symlink(entry.linkname ?? '', target);
        break;
      case 'char':
      case 'block':
      case 'fifo':
        fsx.mknod(target, S_IFMT_FOR[entry.type], entry.devmajor ?? 0, entry.devminor ?? 0);
        break;
    }
    this.extracted.add(rel);
    await this.setMetadata(target, entry);
  }

  async finishDirectories(): Promise<void> {
    // Deepest first, so a parent's mtime is set after everything below it is final.
    for (const rel of [...this.directories.keys()].sort().reverse()) {
      const entry = this.directories.get(rel)!;
      const target = this.abs(rel);
      await chmod(target, entry.mode & 0o7777);
      await lutimes(target, entry.mtime, entry.mtime);
    }
  }

  private async applyDirectory(entry: LayerEntry, rel: string): Promise<void> {
    const target = this.abs(rel);
    if (rel !== '') {
      await this.ensureDirectory(parentOf(rel), entry.path);
      if (!(await this.clear(rel, true))) await mkdir(target, { mode: 0o700 });
      this.knownDirs.add(rel);
    }
    await lchown(target, entry.uid, entry.gid);
    this.setXattrs(target, entry);
    this.directories.set(rel, entry);
  }

  private async applyWhiteout(entry: LayerEntry, rel: string, base: string): Promise<void> {
    const dir = parentOf(rel);
    await this.ensureDirectory(dir, entry.path);
    if (base === OPAQUE_MARKER) {
      fsx.setxattr(this.abs(dir), 'trusted.overlay.opaque', Buffer.from('y'));
      return;
    }
    // Other ".wh..wh." names are AUFS bookkeeping (e.g. .wh..wh.plnk) that Docker skips as well.
    if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') {
      throw new LayerExtractError(`layer entry '${entry.path}': whiteout of '${name}' does not name a file`);
    }
    const hidden = dir === '' ? name : `${dir}/${name}`;
    await this.clear(hidden, false);
    const target = this.abs(hidden);
    fsx.mknod(target, constants.S_IFCHR, 0, 0); // mode 0, as overlay makes its own whiteouts
    await lchown(target, entry.uid, entry.gid);
    await lutimes(target, entry.mtime, entry.mtime);
  }

  /** Order matters: chown clears setuid bits and security.capability, so mode and xattrs follow it. */
  private async setMetadata(target: string, entry: LayerEntry): Promise<void> {
    await lchown(target, entry.uid, entry.gid);
    if (entry.type !== 'symlink') await chmod(target, entry.mode & 0o7777);
    this.setXattrs(target, entry);
    await lutimes(target, entry.mtime, entry.mtime);
  }

  private setXattrs(target: string, entry: LayerEntry): void {
    for (const [name, value] of entry.xattrs ?? []) {
      // An archive must not be able to forge overlay state (opaque dirs, redirects, metacopy).
      if (!isOverlayXattr(name)) fsx.setxattr(target, name, value);
    }
  }

  /** Makes `rel` a real directory, creating missing ones (0755, as Docker does), refusing symlinks. */
  private async ensureDirectory(rel: string, entryName: string): Promise<void> {
    if (this.knownDirs.has(rel)) return;
    await this.ensureDirectory(parentOf(rel), entryName);
    const target = this.abs(rel);
    const st = await lstatIfExists(target);
    if (!st) {
      await mkdir(target);
      await chmod(target, 0o755);
    } else if (st.isSymbolicLink()) {
      throw new LayerExtractError(`layer entry '${entryName}': '${rel}' is a symlink; refusing to write through it`);
    } else if (!st.isDirectory()) {
      throw new LayerExtractError(`layer entry '${entryName}': '${rel}' is not a directory`);
    }
    this.knownDirs.add(rel);
  }

  /** Removes whatever is at `rel` so it can be recreated. An existing directory is kept when
   * `keepDirectory` (returns true then); otherwise removed with everything in it, as Docker does. */
  private async clear(rel: string, keepDirectory: boolean): Promise<boolean> {
    const target = this.abs(rel);
    const st = await lstatIfExists(target);
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDirectory) return true;
      await rm(target, { recursive: true, force: true });
      for (const set of [this.knownDirs, this.extracted, this.directories]) {
        for (const key of set.keys()) if (key === rel || key.startsWith(`${rel}/`)) set.delete(key);
      }
    } else {
      await unlink(target);
    }
    return false;
  }

  /** Drops '' and '.' components (so absolute names land inside the root); '..' is an error. */
  private clean(name: string, entryName: string): string {
    const parts = name.split('/').filter((part) => part !== '' && part !== '.');
    if (parts.includes('..')) {
      throw new LayerExtractError(`layer entry '${entryName}': '${name}' contains '..' and could escape the extraction root`);
    }
    return parts.join('/');
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }
}

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

async function lstatIfExists(target: string): Promise<Stats | undefined> {
  try {
    return await lstat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
