// Where the image named by FROM or COPY --from comes from: a transport (`oci-archive:`, `oci:`,
// `docker-archive:`), the local store, or a registry, as the pull policy allows. Whatever the
// origin, the image ends up in the store (importImage) and is read from there.

import {
  formatReference, parseRegistryReference, parseTransportReference, storeName, type Reference,
} from '../image/reference.js';
import type { ImageSource } from '../image/source.js';
import { MediaType, type Digest, type Index, type Platform } from '../image/types.js';
import type { ProgressSink } from '../progress/events.js';
import { importImage } from '../store/import.js';
import type { Store } from '../store/store.js';
import { RegistryClient, type RegistryOptions } from '../transport/registry/client.js';
import { BlobLocations } from '../transport/registry/locations.js';
import { choosePlatform, openRegistryImage } from '../transport/registry/pull.js';
import { openTransportImage } from '../transport/transport-ref.js';

export type PullPolicy = 'missing' | 'always' | 'never';

export interface BaseImageOptions extends RegistryOptions {
  platform: Platform;
  /** missing (default): pull only what the store lacks; always: pull registry images anew; never: store only */
  pull?: PullPolicy;
  progress?: ProgressSink;
}

export async function resolveBaseImage(store: Store, text: string, opts: BaseImageOptions): Promise<ImageSource> {
  const transport = parseTransportReference(text);
  if (transport) {
    const { source, cleanup } = await openTransportImage(transport);
    try {
      return await store.image(await importImage(store, source, { progress: opts.progress }));
    } finally {
      await cleanup();
    }
  }
  const ref = parseRegistryReference(text);
  const policy = opts.pull ?? 'missing';
  if (policy !== 'always') {
    const stored = await findInStore(store, text, ref, opts.platform);
    if (stored) return store.image(stored);
    if (policy === 'never') throw new Error(`image not found in the local store: ${text} (--pull=never)`);
    return store.image(await pullImage(store, ref, opts).catch((err: Error) => {
      throw new Error(`image not found in the local store: ${text}, and pulling ${formatReference(ref)} failed: ${err.message}`, { cause: err });
    }));
  }
  return store.image(await pullImage(store, ref, opts));
}

/** A stored image for the reference: by digest (an index digest resolves to its platform's image), else by tag. */
async function findInStore(store: Store, text: string, ref: Reference, platform: Platform): Promise<Digest | undefined> {
  if (ref.digest) {
    if (!(await store.hasBlob(ref.digest))) return undefined;
    const doc = JSON.parse((await store.readBlob(ref.digest)).toString('utf8')) as { mediaType?: string; manifests?: unknown };
    if (doc.mediaType !== MediaType.ociIndex && doc.mediaType !== MediaType.dockerManifestList && !doc.manifests) return ref.digest;
    const chosen = choosePlatform(doc as Index, platform, text).digest;
    return (await store.hasBlob(chosen)) ? chosen : undefined;
  }
  for (const name of [storeName(ref)!, `${ref.registry}/${ref.repository}:${ref.tag}`, text]) {
    const digest = await store.resolve(name);
    if (digest) return digest;
  }
  return undefined;
}

/** Pulls the reference's image (for the platform) into the store and tags it with its familiar name. */
export async function pullImage(store: Store, ref: Reference, opts: BaseImageOptions): Promise<Digest> {
  const client = new RegistryClient(ref.registry, opts);
  opts.progress?.({ type: 'note', message: `pulling ${formatReference(ref)}` });
  const remote = await openRegistryImage(client, ref, opts.platform);
  const digest = await importImage(store, remote, { progress: opts.progress });
  if (remote.index) await store.putBlob(remote.index.bytes);
  const name = storeName(ref);
  if (name && !ref.digest) await store.tag(name, digest);
  const locations = await BlobLocations.load(store.root);
  await locations.record([remote.manifest.config.digest, ...remote.manifest.layers.map((l) => l.digest)], ref.registry, ref.repository);
  opts.progress?.({ type: 'note', message: `pulled ${formatReference(ref)} ${digest}` });
  return digest;
}
