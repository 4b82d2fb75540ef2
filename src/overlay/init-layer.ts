// The init layer: the topmost lowerdir of every RUN, holding the mountpoints that RUN needs but the
// image may lack (/etc/hosts, /etc/resolv.conf, /proc, /sys, /dev, and RUN --mount targets), as
// Docker's "-init" layer does. Mountpoints created in the upperdir instead would leak into the layer
// (and copy up their parents). Each directory the image already has takes the attributes the image
// gives it, so a copy-up through the init layer is the same as one through the image.
import fs from 'node:fs';
import path from 'node:path';
import { components, type LayeredTree } from './tree.js';

/** Mountpoints that RUN binds or mounts; files are bound read-only from the host. */
export const RUN_BINDS = ['/etc/hosts', '/etc/resolv.conf'];
const PSEUDO_DIRS = ['proc', 'sys', 'dev'];

/** A RUN --mount target missing from the image: a path relative to the root, free of symlinks. */
export interface Mountpoint {
  path: string;
  file: boolean;
}

export class InitLayerError extends Error {}

export function makeInitLayer(dir: string, image: LayeredTree, mountpoints: Mountpoint[] = []): void {
  fs.mkdirSync(dir, { recursive: true });
  const mirrored: { abs: string; stat: fs.Stats }[] = [];
  /** The directory rel in the init layer: a copy of the image's (attributes set at the end) or new. */
  const ensureDir = (rel: string): void => {
    const abs = path.join(dir, rel);
    if (fs.existsSync(abs)) return;
    const node = image.lookup(rel);
    if (node && node.type !== 'dir') throw new InitLayerError(`/${rel} is not a directory in the image`);
    fs.mkdirSync(abs, { mode: 0o755 });
    if (node) mirrored.push({ abs, stat: node.stat });
  };
  const ensureParents = (rel: string): void => {
    const parts = components(rel);
    for (let i = 1; i < parts.length; i++) ensureDir(parts.slice(0, i).join('/'));
  };

  for (const name of PSEUDO_DIRS) {
    if (!image.lookup(name)) fs.mkdirSync(path.join(dir, name), { mode: 0o755 });
  }
  const etc = image.lookup('etc');
  if (!etc || etc.type === 'dir') {
    // /etc is a symlink or file: bind nothing into it
    ensureDir('etc');
    for (const bind of RUN_BINDS) {
      const name = path.posix.basename(bind);
      const existing = image.lookup(`etc/${name}`);
      if (existing && existing.type !== 'file') continue;
      fs.writeFileSync(path.join(dir, 'etc', name), '', { mode: 0o644 });
    }
  }
  for (const mountpoint of mountpoints) {
    try {
      ensureParents(mountpoint.path);
      const abs = path.join(dir, mountpoint.path);
      if (fs.existsSync(abs)) continue;
      if (mountpoint.file) fs.writeFileSync(abs, '', { mode: 0o644 });
      else fs.mkdirSync(abs, { mode: 0o755 });
    } catch (err) {
      if (err instanceof InitLayerError) throw new InitLayerError(`cannot create the mountpoint /${mountpoint.path}: ${err.message}`);
      throw err;
    }
  }
  // After every child is made: mode, owner and times as in the image.
  for (const { abs, stat } of mirrored) {
    fs.chmodSync(abs, stat.mode & 0o7777);
    fs.lchownSync(abs, stat.uid, stat.gid);
    fs.utimesSync(abs, stat.atime, stat.mtime);
  }
}
