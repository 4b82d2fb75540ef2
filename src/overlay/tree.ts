// A read-only view of a stack of layer directories with overlayfs lookup rules, computed in user
// space: COPY/ADD/WORKDIR write straight into a step's upperdir (no mount needed), and COPY --from,
// USER name lookups and the RUN init layer read the image as the kernel would show it.
//
// Rules (Documentation/filesystems/overlayfs.rst): layers are searched top first; a character device
// 0/0 (whiteout) hides the name in all layers below; a directory merges with directories of the same
// name below it until a layer where it is opaque (trusted.overlay.opaque=y) or a non-directory; a
// non-directory hides everything below.
import fs from 'node:fs';
import path from 'node:path';
import { fsx } from '../native/index.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface TreeNode {
  type: NodeType;
  /** the file in the layer that provides this name (for a directory: the topmost one) */
  abs: string;
  stat: fs.Stats;
}

export class PathError extends Error {}

export function nodeType(st: fs.Stats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

export const isWhiteout = (st: fs.Stats): boolean => st.isCharacterDevice() && st.rdev === 0;

export function isOpaque(dir: string): boolean {
  const value = fsx.getxattr(dir, 'trusted.overlay.opaque');
  return value !== null && value.toString() === 'y';
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Splits a path inside the root into clean components ('' and '.' dropped, '..' kept). */
export function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

const MAX_SYMLINKS = 255;

export class LayeredTree {
  /** directory path ('' = root) -> the layer dirs that contribute to it, top first */
  private readonly dirLayers = new Map<string, string[]>();

  /** @param layers layer directories, top first (for a plain directory: just [dir]) */
  constructor(readonly layers: string[]) {
    this.dirLayers.set('', layers);
  }

  /** Drops what is cached about a path and below it, after the caller changed the top layer there. */
  forget(rel: string): void {
    const key = components(rel).join('/');
    for (const cached of this.dirLayers.keys()) {
      if (cached !== '' && (cached === key || cached.startsWith(`${key}/`))) this.dirLayers.delete(cached);
    }
  }

  /** Looks up a path that has no symlinks in its parent components (see resolve). */
  lookup(rel: string): TreeNode | null {
    const parts = components(rel);
    if (parts.length === 0) {
      const top = this.layers[0];
      return top === undefined ? null : { type: 'dir', abs: top, stat: fs.lstatSync(top) };
    }
    const parent = this.directoryLayers(parts.slice(0, -1).join('/'));
    if (!parent) return null;
    return this.child(parent.key, parent.layers, parts[parts.length - 1]).node;
  }

  /** The names of a directory as the merged view lists them, sorted. */
  readdir(rel: string): string[] {
    const dir = this.directoryLayers(components(rel).join('/'));
    if (!dir) throw new PathError(`not a directory: /${rel}`);
    const names = new Set<string>();
    for (const layer of dir.layers) {
      for (const name of fs.readdirSync(path.join(layer, dir.key))) names.add(name);
    }
    return [...names].filter((name) => this.lookup(dir.key ? `${dir.key}/${name}` : name) !== null).sort();
  }

  /**
   * Resolves symlinks inside the root, like Docker's FollowSymlinkInScope: an absolute link target
   * restarts at the root and '..' never climbs above it, so the result always stays inside.
   * Returns the resolved relative path ('' for the root); the last component is followed only when
   * followLast is set.
   */
  resolve(p: string, followLast = true): string {
    let pending = components(p);
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        done.pop();
        continue;
      }
      const candidate = [...done, name].join('/');
      const node = this.lookup(candidate);
      if (node?.type === 'symlink' && (pending.length > 0 || followLast)) {
        if (++links > MAX_SYMLINKS) throw new PathError(`too many levels of symbolic links: /${p}`);
        const target = fs.readlinkSync(node.abs);
        if (target.startsWith('/')) done.length = 0;
        pending = [...components(target), ...pending];
        continue;
      }
      done.push(name);
    }
    return done.join('/');
  }

  private directoryLayers(key: string): { key: string; layers: string[] } | null {
    const cached = this.dirLayers.get(key);
    if (cached) return { key, layers: cached };
    const parts = components(key);
    const parent = this.directoryLayers(parts.slice(0, -1).join('/'));
    if (!parent) return null;
    const { node, dirs } = this.child(parent.key, parent.layers, parts[parts.length - 1]);
    if (!node || node.type !== 'dir') return null;
    this.dirLayers.set(key, dirs);
    return { key, layers: dirs };
  }

  private child(parentKey: string, parentLayers: string[], name: string): { node: TreeNode | null; dirs: string[] } {
    const rel = parentKey ? `${parentKey}/${name}` : name;
    const dirs: string[] = [];
    let top: TreeNode | null = null;
    for (const layer of parentLayers) {
      const abs = path.join(layer, rel);
      const st = lstatOrNull(abs);
      if (!st) continue;
      if (isWhiteout(st)) break;
      if (!st.isDirectory()) {
        if (dirs.length === 0) top = { type: nodeType(st), abs, stat: st };
        break;
      }
      if (dirs.length === 0) top = { type: 'dir', abs, stat: st };
      dirs.push(layer);
      if (isOpaque(abs)) break;
    }
    return { node: top, dirs };
  }
}
