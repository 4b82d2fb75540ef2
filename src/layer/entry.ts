// One file-system object of a layer, independent of where it comes from (an overlay upperdir, a tar
// being read) or goes to (a tar being written, a directory being extracted into).

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface LayerEntry {
  /** Relative to the layer root: no leading '/' or './', no trailing '/'. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (0o7777); never the S_IFMT type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes of a regular file; 0 for every other type. */
  size: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Symlink target as stored, or for a hardlink the path of the first link, relative to the layer root. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, values byte-exact (security.capability is binary). */
  xattrs?: Map<string, Buffer>;
  /** Absolute path the tar writer streams a regular file's content from. */
  source?: string;
}

/** OCI whiteouts (image-spec layer.md): `.wh.<name>` deletes <name> from lower layers and
 * `.wh..wh..opq` hides every lower entry of the directory it sits in. */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

/** Overlay keeps its own bookkeeping in these namespaces (trusted.* when mounted as root,
 * user.* with the userxattr option); none of it belongs in an image layer. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** Throws unless `p` is a clean relative path: non-empty components, none '.' or '..', no NUL. */
export function assertLayerPath(p: string, what = 'path'): void {
  if (p === '' || p.includes('\0') || p.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw new Error(`layer entry ${what} '${p}' is not a clean relative path`);
  }
}
