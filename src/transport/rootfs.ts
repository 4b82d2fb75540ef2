// An image flattened into its root filesystem: the layers applied in order into a directory
// (buildx's `type=local` exporter) or streamed as one tar (`type=tar`).
//
// Whiteouts only ever hide content of lower layers (image-spec layer.md), so each layer is read
// twice: a first pass collects its `.wh.<name>` and `.wh..wh..opq` entries and deletes what they
// hide from the directory built so far; the second pass extracts the layer with extract.ts (which
// keeps every write inside the destination) and the marker files it created are removed again.
// Reading a layer twice costs a second decompression, which is cheap next to writing the files.

import { lstat, lutimes, mkdir, readdir, rm, unlink } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { sizedBlobFile, type ImageSource } from '../image/source.js';
import { decompressedStream } from '../layer/compression.js';
import { readUpperdir } from '../layer/diff.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../layer/entry.js';
import { extractLayer } from '../layer/extract.js';
import { readTar } from '../layer/tar-read.js';
import { writeTar } from '../layer/tar-write.js';
import { replaceAtomically } from './atomic.js';

export class RootfsError extends Error {}

interface LayerMarkers {
  /** Directory entries and their mtimes: removing markers and whiteout targets touches the
   * directories they were in, so the layers' own times are set again at the end. */
  directories: Map<string, number>;
  /** Paths the layer deletes from lower layers (`dir/.wh.name` -> `dir/name`). */
  deleted: string[];
  /** Directories whose lower content the layer hides. */
  opaque: string[];
  /** The marker entries themselves, as extractLayer('keep') writes them. */
  markers: string[];
}

/** Applies every layer of `image` into `dest` (created if missing; existing content is kept where
 * the image does not replace it, as buildx's local exporter does). */
export async function writeRootfsDir(image: ImageSource, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  const directoryTimes = new Map<string, number>();
  for (const layer of image.manifest.layers) {
    const blob = await sizedBlobFile(image, layer);
    const markers = await collectMarkers(await layerTar(blob));
    for (const dir of markers.opaque) await emptyDirectory(dest, dir);
    for (const hidden of markers.deleted) await removeInside(dest, hidden);
    await extractLayer(await layerTar(blob), dest, { whiteouts: 'keep' });
    for (const marker of markers.markers) await removeInside(dest, marker);
    for (const [dir, mtime] of markers.directories) directoryTimes.set(dir, mtime);
  }
  // deepest first, so setting a directory's time is not undone by work in a child
  for (const dir of [...directoryTimes.keys()].sort().reverse()) {
    const target = await resolveInside(dest, dir);
    const mtime = directoryTimes.get(dir)!;
    if (target && (await lstat(target).catch(() => undefined))?.isDirectory()) await lutimes(target, mtime, mtime);
  }
}

/** The flattened root filesystem as a tar (numeric owners, xattrs, hardlinks kept) to a file
 * (atomically), to stdout for "-", or into a Writable. `scratch` is a directory on a filesystem
 * that can hold the unpacked image; it is removed afterwards. */
export async function writeRootfsTar(image: ImageSource, dest: string | Writable, scratch: string): Promise<void> {
  try {
    const tree = path.join(scratch, 'rootfs');
    await writeRootfsDir(image, tree);
    const send = (out: Writable): Promise<void> => pipeline(writeTar(readUpperdir(tree)), out);
    if (typeof dest !== 'string') await send(dest);
    else if (dest === '-') await send(process.stdout);
    else await replaceAtomically(dest, (tmp) => send(createWriteStream(tmp, { flags: 'wx', mode: 0o644 })));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function layerTar(blob: string): Promise<Readable> {
  const { stream, isTar } = await decompressedStream(blob);
  if (!isTar) {
    stream.destroy();
    throw new RootfsError(`layer blob ${blob} is not a tar archive`);
  }
  return stream;
}

async function collectMarkers(tar: Readable): Promise<LayerMarkers> {
  const found: LayerMarkers = { directories: new Map(), deleted: [], opaque: [], markers: [] };
  for await (const { header, body } of readTar(tar)) {
    body.resume();
    const rel = cleanPath(header.path);
    if (header.type === 'dir') found.directories.set(rel, header.mtime);
    const base = path.posix.basename(rel);
    if (!base.startsWith(WHITEOUT_PREFIX)) continue;
    const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    found.markers.push(rel);
    if (base === OPAQUE_MARKER) found.opaque.push(dir);
    else if (!base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
      // other `.wh..wh.` names are AUFS bookkeeping, skipped as Docker skips them
      const name = base.slice(WHITEOUT_PREFIX.length);
      found.deleted.push(dir === '' ? name : `${dir}/${name}`);
    }
  }
  return found;
}

/** Layer paths as extract.ts cleans them; a `..` would point outside the root and is refused. */
function cleanPath(name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new RootfsError(`layer entry '${name}' contains '..' and could escape the root filesystem`);
  return parts.join('/');
}

/** The absolute path of `rel` under `root` if every parent is a real directory (never a symlink:
 * following one could reach outside `root`); undefined when a parent is missing, so nothing to do. */
async function resolveInside(root: string, rel: string): Promise<string | undefined> {
  const parts = rel.split('/').filter(Boolean);
  let current = root;
  for (const part of parts.slice(0, -1)) {
    current = path.join(current, part);
    const st = await lstat(current).catch(() => undefined);
    if (!st) return undefined;
    if (!st.isDirectory()) return undefined; // a whiteout below a non-directory hides nothing
  }
  return path.join(root, rel);
}

async function removeInside(root: string, rel: string): Promise<void> {
  const target = await resolveInside(root, rel);
  if (!target || target === root) return;
  const st = await lstat(target).catch(() => undefined);
  if (!st) return;
  // rm does not follow symlinks, neither the target nor any inside a removed directory
  if (st.isDirectory()) await rm(target, { recursive: true, force: true });
  else await unlink(target);
}

async function emptyDirectory(root: string, rel: string): Promise<void> {
  const dir = await resolveInside(root, rel);
  if (!dir) return;
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  for (const name of await readdir(dir)) await rm(path.join(dir, name), { recursive: true, force: true });
}
