// Overlay mount options for a build step.
//
// index=off, redirect_dir=off, metacopy=off keep the upperdir a plain diff that can be tarred as a
// layer and reused as a lowerdir of later mounts: with redirect_dir a renamed lower directory would
// be recorded as an xattr pointing into a lower layer (and lost in the tar), with metacopy a chmod
// would copy up only metadata (the data would stay in a lower layer), and the index ties the upper
// to these exact lower inodes. With them off, renaming a lower directory fails with EXDEV and tools
// fall back to copying, and every copied-up file is whole in the upper, which is what a layer needs.
//
// The kernel takes at most one page of mount options, so lowerdirs are short links (l/<id>, relative
// to the store root, which is the mounting process's working directory): 150 layers use ~3.5 KiB.
export const PAGE_SIZE = 4096;

export class MountError extends Error {}

/** @param lowers short lowerdir links, top first */
export function overlayOptions(lowers: string[], upper: string, work: string): string {
  if (lowers.length === 0) throw new MountError('an overlay mount needs at least one lowerdir');
  const options = `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work},index=off,redirect_dir=off,metacopy=off`;
  if (options.length >= PAGE_SIZE) {
    throw new MountError(`overlay mount options are ${options.length} bytes, over the kernel's limit of ${PAGE_SIZE - 1} (${lowers.length} layers)`);
  }
  return options;
}
