// Pushing an image to a registry: every blob the registry lacks (HEAD) is mounted from a sibling
// repository where one is known to hold it, else uploaded (one PUT, or PATCH chunks for big blobs);
// the manifest goes last, byte for byte, so the pushed digest is the local one.

import type { ImageSource } from '../../image/source.js';
import { formatReference, parseRegistryReference, parseTransportReference, type Reference } from '../../image/reference.js';
import { MediaType, type Descriptor, type Digest } from '../../image/types.js';
import type { ProgressSink } from '../../progress/events.js';
import { RegistryClient, RegistryError, pushScope, type RegistryOptions } from './client.js';
import { writeTransportImage } from '../transport-ref.js';
import { BlobLocations } from './locations.js';

export interface PushOptions extends RegistryOptions {
  progress?: ProgressSink;
  /** blobs larger than this go up in PATCH chunks of this size */
  chunkSize?: number;
  locations?: BlobLocations;
}

export const DefaultChunkSize = 32 << 20;

/** Pushes `img` as `ref` (its tag, or its digest) and returns the digest the registry stored. */
export async function pushImage(img: ImageSource, ref: Reference, opts: PushOptions = {}): Promise<Digest> {
  const name = formatReference(ref);
  if (ref.digest && ref.digest !== img.manifestDigest) {
    throw new RegistryError(`${name}: the image's digest is ${img.manifestDigest}, so it cannot be pushed under ${ref.digest}`);
  }
  const client = new RegistryClient(ref.registry, opts);
  const blobs = [...new Map([img.manifest.config, ...img.manifest.layers].map((d) => [d.digest, d])).values()];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < blobs.length) await pushBlob(client, img, ref, blobs[next++]!, opts);
  };
  await Promise.all(Array.from({ length: Math.min(3, blobs.length) }, worker));

  const mediaType = img.manifest.mediaType ?? MediaType.ociManifest;
  const stored = await client.putManifest(ref.repository, ref.tag ?? img.manifestDigest, img.manifestBytes, mediaType);
  if (stored !== undefined && stored !== img.manifestDigest) {
    throw new RegistryError(`${name}: the registry stored the manifest as ${stored}, not ${img.manifestDigest}`);
  }
  await opts.locations?.record(blobs.map((b) => b.digest), ref.registry, ref.repository);
  return img.manifestDigest;
}

async function pushBlob(client: RegistryClient, img: ImageSource, ref: Reference, d: Descriptor, opts: PushOptions): Promise<void> {
  const { repository } = ref;
  const report = (state: 'progress' | 'done' | 'exists' | 'mounted', bytes: number) =>
    opts.progress?.({ type: 'blob', action: 'push', digest: d.digest, bytes, total: d.size, state });
  if (await client.hasBlob(repository, d.digest, [pushScope(repository)])) {
    report('exists', d.size);
    return;
  }
  const file = img.blobPath(d.digest);
  // One mount attempt: a refused mount already opened the upload session to use instead.
  const from = opts.locations?.sources(d.digest, ref.registry, repository)[0];
  const session = await client.startUpload(repository, from ? { digest: d.digest, from } : undefined);
  if (session.mounted) {
    report('mounted', d.size);
    return;
  }
  let bytes = 0;
  let reported = 0;
  const onBytes = (n: number) => {
    bytes += n;
    if (Date.now() - reported > 1000) {
      reported = Date.now();
      report('progress', bytes);
    }
  };
  report('progress', 0);
  const chunkSize = opts.chunkSize ?? DefaultChunkSize;
  if (d.size > chunkSize) await client.patchBlob(repository, session.location, d.digest, file, d.size, chunkSize, onBytes);
  else await client.putBlob(repository, session.location, d.digest, file, d.size, onBytes);
  report('done', d.size);
}

/**
 * `strata push` and `build --push`: to a transport (`oci-archive:`, `oci:`, `docker-archive:`) or a
 * registry reference. `name` is the image's local name, used by archives when `dest` names none.
 * Returns the manifest digest written.
 */
export async function pushToDestination(img: ImageSource, dest: string, opts: PushOptions & { storeRoot: string; name?: string }): Promise<Digest> {
  const transport = parseTransportReference(dest);
  if (transport) {
    await writeTransportImage(img, transport, opts.name);
    return img.manifestDigest;
  }
  const locations = opts.locations ?? await BlobLocations.load(opts.storeRoot);
  return pushImage(img, parseRegistryReference(dest), { ...opts, locations });
}
