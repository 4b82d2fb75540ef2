// OCI image layout as a directory (skopeo's `oci:DIR:TAG`, umoci, oci-image-tool), merged into an existing layout.

import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { serializeIndex } from '../image/manifest.js';
import { blobPathIn, sizedBlobFile, type ImageSource } from '../image/source.js';
import { AnnotationRefName, MediaType, type Index } from '../image/types.js';
import { replaceAtomically } from './atomic.js';
import { layoutBlobs, manifestDescriptors, OciLayoutBytes, OciLayoutFile } from './oci-layout.js';

/**
 * Adds `img` to the layout in `dir` (creating it if needed). Descriptors already in index.json that carry one of
 * the new ref names are replaced, others are kept. Blobs are written first and index.json last, each by rename,
 * so a reader never sees an index pointing at a missing or partial blob.
 */
export async function writeOciDir(img: ImageSource, dir: string, refNames: string[]): Promise<void> {
  const blobsDir = join(dir, 'blobs');
  const index = await readExistingLayout(dir);
  for (const blob of layoutBlobs(img)) {
    const dest = blobPathIn(blobsDir, blob.digest);
    // Content-addressed: a present blob of the right size is this blob.
    if ((await stat(dest).catch(() => undefined))?.size === blob.size) continue;
    await mkdir(dirname(dest), { recursive: true });
    const data = blob.data;
    if (data) {
      await replaceAtomically(dest, (tmp) => writeFile(tmp, data));
    } else {
      const source = await sizedBlobFile(img, blob);
      // FICLONE shares the extents on reflink filesystems (btrfs, xfs) and falls back to a copy elsewhere.
      await replaceAtomically(dest, (tmp) => copyFile(source, tmp, constants.COPYFILE_FICLONE));
    }
  }

  const added = manifestDescriptors(img, refNames);
  const replacedRefs = new Set(added.map((d) => d.annotations?.[AnnotationRefName]));
  const kept = (index?.manifests ?? []).filter((d) => {
    const ref = d.annotations?.[AnnotationRefName];
    // An unnamed image is replaced only by the same unnamed image, so rewriting it does not duplicate it.
    return ref === undefined ? !(replacedRefs.has(undefined) && d.digest === img.manifestDigest) : !replacedRefs.has(ref);
  });
  const merged: Index = { ...index, schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...kept, ...added] };

  if (!index) await replaceAtomically(join(dir, OciLayoutFile), (tmp) => writeFile(tmp, OciLayoutBytes));
  await replaceAtomically(join(dir, 'index.json'), (tmp) => writeFile(tmp, serializeIndex(merged)));
}

/** The index of the layout already in `dir`, or undefined when there is none yet. */
async function readExistingLayout(dir: string): Promise<Index | undefined> {
  const layout = await readFile(join(dir, OciLayoutFile), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (layout === undefined) {
    await mkdir(join(dir, 'blobs'), { recursive: true });
    return undefined;
  }
  const version = (JSON.parse(layout) as { imageLayoutVersion?: string }).imageLayoutVersion;
  if (version !== '1.0.0') throw new Error(`${dir}: unsupported OCI layout version ${JSON.stringify(version)}`);
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Index;
}
