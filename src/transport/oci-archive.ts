// OCI image layout as a tarball (skopeo's `oci-archive:`, `podman load`, `docker load` >= 25).

import type { Writable } from 'node:stream';
import { parseDigest, serializeIndex } from '../image/manifest.js';
import { readBlobFile, sizedBlobFile, type ImageSource } from '../image/source.js';
import { MediaType } from '../image/types.js';
import { layoutBlobs, manifestDescriptors, OciLayoutBytes, OciLayoutFile } from './oci-layout.js';
import { writeTar, type TarEntry } from './tar-writer.js';

/**
 * Writes `img` as an OCI archive to a file path (atomically), to stdout for "-", or into a Writable.
 * Layers stream from their blob files; the same image and names always give the same bytes.
 */
export async function writeOciArchive(img: ImageSource, dest: string | Writable, refNames: string[]): Promise<void> {
  const index = { schemaVersion: 2 as const, mediaType: MediaType.ociIndex, manifests: manifestDescriptors(img, refNames) };
  const entries: TarEntry[] = [
    { name: OciLayoutFile, kind: 'file', data: OciLayoutBytes },
    { name: 'index.json', kind: 'file', data: serializeIndex(index) },
    { name: 'blobs', kind: 'dir' },
  ];
  const algorithms = new Set<string>();
  for (const blob of layoutBlobs(img)) {
    const { algorithm, hex } = parseDigest(blob.digest);
    algorithms.add(algorithm);
    const name = `blobs/${algorithm}/${hex}`;
    if (blob.data) {
      entries.push({ name, kind: 'file', data: blob.data });
    } else {
      const path = await sizedBlobFile(img, blob);
      entries.push({ name, kind: 'file', size: blob.size, open: () => readBlobFile(path) });
    }
  }
  for (const algorithm of algorithms) entries.push({ name: `blobs/${algorithm}`, kind: 'dir' });
  await writeTar(dest, entries);
}
