// An overlayfs upperdir (or any directory) as layer entries: the one place where overlay's view of
// a change (whiteout devices, opaque xattrs) becomes the OCI view (.wh. files).

import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fsx } from '../native/index.js';
import { LayerEntry, OPAQUE_MARKER, WHITEOUT_PREFIX, isOverlayXattr } from './entry.js';

export interface ReadUpperdirOptions {
  /** Newer mtimes become this (seconds), as BuildKit's rewrite-timestamp does for SOURCE_DATE_EPOCH. */
  clampMtime?: number;
}

/** Entries for everything under `dir` (not `dir` itself), depth first, a directory before its
 * children, siblings in byte order of their names; a directory's opaque marker comes right after
 * it. Regular files carry `source`, never their content, so any size streams through. */
export async function* readUpperdir(dir: string, opts: ReadUpperdirOptions = {}): AsyncGenerator<LayerEntry> {
  yield* readDirectory(new UpperdirWalk(opts), path.resolve(dir), '');
}

function* readDirectory(walk: UpperdirWalk, absDir: string, relDir: string): Generator<LayerEntry> {
  // Synchronous metadata calls: a layer of 100,000 small files would otherwise wait on 100,000
  // promise round trips through the thread pool, each far slower than the lstat it carries.
  const names = readdirSync(absDir, { encoding: 'buffer' }).sort(Buffer.compare);
  for (const rawName of names) {
    const name = decodeName(rawName, absDir);
    const abs = path.join(absDir, name);
    const rel = relDir === '' ? name : `${relDir}/${name}`;
    const entries = walk.entriesOf(abs, rel);
    yield* entries;
    if (entries[0]?.type === 'dir') yield* readDirectory(walk, abs, rel);
  }
}

/** How one path of an upperdir becomes layer entries, and what a walk carries from path to path. */
export class UpperdirWalk {
  /** inode of a non-directory already emitted -> the path it was emitted under (later links point there) */
  private readonly firstLinks = new Map<bigint, string>();

  /**
   * @param rememberEveryInode remember every non-directory, not only those with several links: for a
   *   caller that visits a file before its other links exist (a layer committed as it is written)
   */
  constructor(private readonly opts: ReadUpperdirOptions = {}, private readonly rememberEveryInode = false) {}

  /** The entries for `abs`, known in the layer as `rel`: none for a socket; a `.wh.` marker for a
   * whiteout; a directory and, when opaque, its opaque marker; else the one entry. `mtime` is the
   * mtime the file will have once its writer sets it (directories get theirs after their children). */
  entriesOf(abs: string, rel: string, mtime?: number): LayerEntry[] {
    const st = lstatSync(abs, { bigint: true });
    const clampMtime = this.opts.clampMtime;
    const slash = rel.lastIndexOf('/');
    const name = rel.slice(slash + 1);
    const relDir = slash < 0 ? '' : rel.slice(0, slash);
    // Markers are made by the build itself, so under a clamp they get exactly the clamp time.
    const markerMtime = clampMtime ?? seconds(st.mtimeNs);

    if (st.isCharacterDevice() && st.rdev === 0n) {
      // Overlay's whiteout. All whiteouts share one inode, so they are never hardlinks.
      return [marker(relDir, WHITEOUT_PREFIX + name, 0o600, 0, 0, markerMtime)];
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      throw new Error(`${abs}: a file named '${WHITEOUT_PREFIX}*' cannot be stored in a layer (reserved for whiteouts)`);
    }
    if (st.isSocket()) return []; // sockets cannot be archived; Docker skips them too

    const entry: LayerEntry = {
      path: rel,
      type: 'file',
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: clamp(mtime ?? seconds(st.mtimeNs), clampMtime),
    };
    const xattrs = readXattrs(abs);
    if (xattrs.size > 0) entry.xattrs = xattrs;

    if (st.isDirectory()) {
      entry.type = 'dir';
      if (!isOpaque(abs)) return [entry];
      return [entry, marker(rel, OPAQUE_MARKER, entry.mode & 0o777, entry.uid, entry.gid, markerMtime)];
    }

    const firstLink = st.nlink > 1n || this.rememberEveryInode ? this.linkTarget(st.ino, rel) : undefined;
    if (firstLink !== undefined) {
      entry.type = 'hardlink';
      entry.linkname = firstLink;
    } else if (st.isFile()) {
      entry.size = Number(st.size);
      entry.source = abs;
    } else if (st.isSymbolicLink()) {
      entry.type = 'symlink';
      entry.linkname = decodeName(readlinkSync(abs, { encoding: 'buffer' }), abs);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      entry.type = st.isCharacterDevice() ? 'char' : 'block';
      [entry.devmajor, entry.devminor] = splitRdev(st.rdev);
    } else if (st.isFIFO()) {
      entry.type = 'fifo';
    }
    return [entry];
  }

  /** The path this inode was first emitted under, or undefined (and remember it) if this is the first.
   * An upperdir is one filesystem, so the inode number alone names the file. */
  private linkTarget(ino: bigint, rel: string): string | undefined {
    const first = this.firstLinks.get(ino);
    if (first === undefined) this.firstLinks.set(ino, rel);
    return first;
  }
}

function marker(relDir: string, name: string, mode: number, uid: number, gid: number, mtime: number): LayerEntry {
  return { path: relDir === '' ? name : `${relDir}/${name}`, type: 'file', mode, uid, gid, size: 0, mtime };
}

function isOpaque(abs: string): boolean {
  // "y" only: kernel 6.7+ also writes "x" (the directory merely holds xwhiteouts), which is not opaque.
  return ['trusted.overlay.opaque', 'user.overlay.opaque'].some((name) => fsx.getxattr(abs, name)?.toString('latin1') === 'y');
}

/** Every xattr but overlay's own, sorted so that the tar is deterministic. */
function readXattrs(abs: string): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const name of fsx.listxattr(abs).sort()) {
    if (isOverlayXattr(name)) {
      // These make the upperdir depend on the lowerdirs in ways a tar cannot express.
      if (/^(trusted|user)\.overlay\.(redirect|metacopy)$/.test(name)) {
        throw new Error(`${abs}: has ${name}; mount the overlay with redirect_dir=off,metacopy=off to commit layers`);
      }
      continue;
    }
    const value = fsx.getxattr(abs, name);
    if (value !== null) xattrs.set(name, value);
  }
  return xattrs;
}

function seconds(ns: bigint): number {
  const s = ns / 1_000_000_000n; // truncates toward zero; floor instead for pre-1970 times
  return Number(ns < 0n && s * 1_000_000_000n !== ns ? s - 1n : s);
}

function clamp(mtime: number, limit: number | undefined): number {
  return limit !== undefined && mtime > limit ? limit : mtime;
}

/** Linux's dev_t encoding (glibc gnu_dev_major/minor). */
function splitRdev(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Names are bytes on Linux; strings here and in tar headers are UTF-8, so refuse what would not round-trip. */
function decodeName(raw: Buffer, where: string): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new Error(`${where}: name or link target ${raw.toString('hex')} is not valid UTF-8; not supported in layers`);
  }
}
