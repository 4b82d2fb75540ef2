// The parts of an OCI image layout (image-spec image-layout.md) shared by the archive and directory writers.

import { matchesDigest, parseDigest, toJson } from '../image/manifest.js';
import type { ImageSource } from '../image/source.js';
import { AnnotationRefName, MediaType, type Descriptor, type Digest } from '../image/types.js';
import { parseImageName } from '../image/names.js';

export const OciLayoutFile = 'oci-layout';
export const OciLayoutBytes = toJson({ imageLayoutVersion: '1.0.0' });

/** The full image name, as containerd/BuildKit record it; podman load prefers it over the ref name. */
export const AnnotationImageName = 'io.containerd.image.name';

/**
 * index.json descriptors for the image: one per name, annotated with the tag as
 * `org.opencontainers.image.ref.name` (what `skopeo oci:DIR:TAG` and `umoci --image DIR:TAG` look up) and the
 * full name as `io.containerd.image.name`; one bare descriptor when the image has no name.
 */
export function manifestDescriptors(img: ImageSource, refNames: string[]): Descriptor[] {
  const base: Descriptor = { mediaType: img.manifest.mediaType ?? MediaType.ociManifest, digest: img.manifestDigest, size: img.manifestBytes.length };
  const names = [...new Set(refNames.map((n) => parseImageName(n).full))];
  if (names.length === 0) return [base];
  return names.map((full) => ({
    ...base,
    annotations: { [AnnotationImageName]: full, [AnnotationRefName]: parseImageName(full).tag },
  }));
}

export interface LayoutBlob {
  digest: Digest;
  size: number;
  /** In-memory content (manifest, config); absent for layers, which stream from `img.blobPath`. */
  data?: Buffer;
}

/** Every blob the layout needs, once each: manifest, config, then layers. */
export function layoutBlobs(img: ImageSource): LayoutBlob[] {
  if (!matchesDigest(img.manifestBytes, img.manifestDigest) || !matchesDigest(img.configBytes, img.manifest.config.digest)) {
    throw new Error(`image ${img.manifestDigest}: manifest or config bytes do not match their digests`);
  }
  const blobs = new Map<Digest, LayoutBlob>();
  const add = (b: LayoutBlob) => {
    parseDigest(b.digest);
    if (!blobs.has(b.digest)) blobs.set(b.digest, b);
  };
  add({ digest: img.manifestDigest, size: img.manifestBytes.length, data: img.manifestBytes });
  add({ digest: img.manifest.config.digest, size: img.configBytes.length, data: img.configBytes });
  for (const layer of img.manifest.layers) add({ digest: layer.digest, size: layer.size });
  return [...blobs.values()];
}
