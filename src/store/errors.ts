// Failures of the environment rather than of the Dockerfile - a full disk, a read-only store, no
// root, no overlayfs - turned into one line naming the cause and what to do about it.
import fs from 'node:fs';

export class EnvironmentError extends Error {}

const isRoot = (): boolean => process.geteuid?.() === 0;

const advice: Record<string, (file: string, code: string) => string> = {
  ENOSPC: (file) => `no space left on the device holding ${file} (ENOSPC): free space there, run \`strata prune\`, or point --root at a larger filesystem`,
  EDQUOT: (file) => `disk quota exceeded writing ${file} (EDQUOT): free space there, run \`strata prune\`, or point --root elsewhere`,
  EROFS: (file) => `${file} is on a read-only filesystem (EROFS): the store must be writable; remount it read-write or point --root at a writable directory`,
  EACCES: permissionDenied,
  EPERM: permissionDenied,
};

function permissionDenied(file: string, code: string): string {
  return isRoot()
    ? `permission denied on ${file} (${code}): check its permissions and attributes (chattr -i) or the mount options`
    : `permission denied on ${file} (${code}): strata needs root for its store, mounts, namespaces and file owners; run it as root (sudo strata ...)`;
}

/**
 * The one-line explanation of an environment failure anywhere in `err`'s cause chain, or undefined
 * when `err` is something else (a Dockerfile error, a failing RUN). A Dockerfile location on the
 * outer error is kept as a prefix.
 */
export function explainEnvironmentError(err: unknown): string | undefined {
  const where = err instanceof Error && 'file' in err && 'line' in err ? `${String(err.file)}:${String(err.line)}: ` : '';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof EnvironmentError) return where + e.message;
    const { code, path } = e as NodeJS.ErrnoException;
    if (code && advice[code]) return where + advice[code](path ?? 'the store', code);
  }
  return undefined;
}

/** Building needs root: RUN mounts an overlay in new namespaces, and COPY/ADD set file owners. */
export function requireRoot(command: string): void {
  if (isRoot()) return;
  throw new EnvironmentError(`strata ${command} must run as root (running as uid ${process.geteuid?.()}): RUN needs mount and pid namespaces and an overlay mount, and layers keep file owners; run it with sudo`);
}

// statfs f_type values of filesystems worth naming in a message.
const FS_NAMES: Record<number, string> = {
  0x794c7630: 'overlayfs', 0x01021994: 'tmpfs', 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs',
  0x6969: 'nfs', 0xff534d42: 'cifs', 0x65735546: 'fuse', 0x4d44: 'vfat', 0x2fc12fc1: 'zfs',
};

function filesystemOf(dir: string): string {
  try {
    const type = Number(fs.statfsSync(dir).type);
    return FS_NAMES[type] ?? `filesystem type 0x${type.toString(16)}`;
  } catch {
    return 'unknown filesystem';
  }
}

export function kernelHasOverlay(): boolean {
  try {
    return /\toverlay$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The environment failure behind a RUN sandbox that did not start, from the last lines it printed
 * (strata-run and unshare report their own failures), or undefined when the command itself failed.
 */
export function sandboxSetupError(output: string[], mountpoint: string, storeRoot: string): EnvironmentError | undefined {
  const text = output.join('\n');
  if (/^unshare: unshare failed: Operation not permitted/m.test(text)) {
    return new EnvironmentError('cannot create the namespaces for RUN (unshare: Operation not permitted): run strata as root; inside a container it needs CAP_SYS_ADMIN (e.g. --privileged)');
  }
  const mount = new RegExp(`^strata-run: mount ${escapeRegExp(mountpoint)}: (.*)$`, 'm').exec(text);
  if (!mount) return undefined;
  const reason = mount[1];
  if (reason === 'No such device' || !kernelHasOverlay()) {
    return new EnvironmentError(`overlayfs is not available (mount: ${reason}; /proc/filesystems has no overlay): load it with \`modprobe overlay\` or use a kernel built with CONFIG_OVERLAY_FS`);
  }
  if (reason === 'Invalid argument') {
    return new EnvironmentError(`the kernel refused the overlay mount (Invalid argument): the store ${storeRoot} is on ${filesystemOf(storeRoot)}, which cannot hold an overlay upperdir; point --root at ext4, xfs, btrfs or tmpfs`);
  }
  if (reason === 'Operation not permitted') {
    return new EnvironmentError('the overlay mount for RUN was not permitted (Operation not permitted): run strata as root; inside a container it needs CAP_SYS_ADMIN (e.g. --privileged)');
  }
  return new EnvironmentError(`the overlay mount for RUN failed (${reason}); the store is ${storeRoot} on ${filesystemOf(storeRoot)}`);
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
