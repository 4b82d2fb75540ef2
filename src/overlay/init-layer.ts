// The init layer: the topmost lowerdir of every RUN, holding the mountpoints that RUN needs but the
// image may lack (/etc/hosts, /etc/resolv.conf, /proc, /sys, /dev), as Docker's "-init" layer does.
// Mountpoints created in the upperdir instead would leak into the layer (and copy up /etc).
// Each directory takes the attributes the image gives it, so a copy-up through the init layer
// is the same as one through the image.
import fs from 'node:fs';
import path from 'node:path';
import type { LayeredTree } from './tree.js';

/** Mountpoints that RUN binds or mounts; files are bound read-only from the host. */
export const RUN_BINDS = ['/etc/hosts', '/etc/resolv.conf'];
const PSEUDO_DIRS = ['proc', 'sys', 'dev'];

export function makeInitLayer(dir: string, image: LayeredTree): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const name of PSEUDO_DIRS) {
    if (!image.lookup(name)) fs.mkdirSync(path.join(dir, name), { mode: 0o755 });
  }
  const etc = image.lookup('etc');
  if (etc && etc.type !== 'dir') return; // /etc is a symlink or file: bind nothing into it
  const etcDir = path.join(dir, 'etc');
  fs.mkdirSync(etcDir, { mode: 0o755 });
  for (const bind of RUN_BINDS) {
    const name = path.posix.basename(bind);
    const existing = image.lookup(`etc/${name}`);
    if (existing && existing.type !== 'file') continue;
    fs.writeFileSync(path.join(etcDir, name), '', { mode: 0o644 });
  }
  if (etc) {
    fs.chmodSync(etcDir, etc.stat.mode & 0o7777);
    fs.lchownSync(etcDir, etc.stat.uid, etc.stat.gid);
    fs.utimesSync(etcDir, etc.stat.atime, etc.stat.mtime);
  }
}
