// Bringing an image into the store from anywhere (an archive, a layout, a registry): blobs are copied
// byte for byte and checked against their digests while they stream, each new layer is extracted
// into an overlay lowerdir (checked against its diff_id), and the config and manifest come last, so
// the store never holds a manifest whose layers are missing. A pulled base's layers are never
// recompressed: a build on top of it refers to the very same blobs.

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readBlobFile } from '../image/source.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressedStream } from '../layer/compression.js';
import { extractLayer } from '../layer/extract.js';
import { digestOf, parseDigest } from '../image/manifest.js';
import { MediaType, type Descriptor, type Digest, type ImageConfig, type LayerRecord, type Manifest } from '../image/types.js';
import type { ProgressSink } from '../progress/events.js';
import type { Store } from './store.js';

/** Where blobs come from: files (an archive, a layout) or a stream per blob (a registry). */
export interface BlobSource {
  blobPath?(digest: Digest): string;
  openBlob?(d: Descriptor): Promise<Readable>;
}

/** An image to import: an ImageSource (blobs in files) or a remote one that streams its blobs. */
export interface ImportSource extends BlobSource {
  manifestDigest: Digest;
  manifest: Manifest;
  manifestBytes: Buffer;
  config: ImageConfig;
  configBytes: Buffer;
}

export interface ImportOptions {
  progress?: ProgressSink;
  /** layers fetched at once */
  concurrency?: number;
}

export class ImportError extends Error {}

const OciZstd = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** The OCI media type for a layer's bytes: Docker's gzip type is the same gzip stream. */
const LayerMediaTypes: Record<string, string> = {
  [MediaType.ociLayerGzip]: MediaType.ociLayerGzip,
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  [MediaType.ociLayer]: MediaType.ociLayer,
  'application/vnd.docker.image.rootfs.diff.tar': MediaType.ociLayer,
  [OciZstd]: OciZstd,
};

/** The layers of a stored (or about to be stored) image as a build on top of it must list them. */
export function layerRecords(manifest: Manifest, config: ImageConfig): LayerRecord[] {
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new ImportError(`image has ${manifest.layers.length} layers but its config lists ${diffIds.length} diff_ids`);
  }
  return manifest.layers.map((layer, i) => {
    const mediaType = LayerMediaTypes[layer.mediaType];
    if (!mediaType) throw new ImportError(`layer ${layer.digest} has media type ${layer.mediaType}, which strata cannot unpack`);
    return { digest: layer.digest, diffId: diffIds[i]!, size: layer.size, mediaType };
  });
}

/** Imports `source` and returns its manifest digest (the same as the source's: nothing is rewritten). */
export async function importImage(store: Store, source: ImportSource, opts: ImportOptions = {}): Promise<Digest> {
  if (digestOf(source.manifestBytes) !== source.manifestDigest) throw new ImportError(`manifest ${source.manifestDigest} does not match its bytes`);
  if (digestOf(source.configBytes) !== source.manifest.config.digest) throw new ImportError(`config ${source.manifest.config.digest} does not match its bytes`);
  const records = layerRecords(source.manifest, source.config);
  const work = await store.makeTemp('import');
  try {
    // One task per distinct diff_id: an image may repeat a layer, and two extractions of it must not race.
    const tasks = [...new Map(records.map((r) => [r.diffId, r])).values()];
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < tasks.length && !failed) {
        const record = tasks[next++]!;
        await importLayer(store, source, record, work, opts.progress).catch((err) => {
          failed = true;
          throw err;
        });
      }
    };
    // Every worker has stopped before the temp dir goes: none is left writing into it.
    const results = await Promise.allSettled(Array.from({ length: Math.min(opts.concurrency ?? 3, tasks.length) }, worker));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    // Same diff_id, other blob (a second compression of it): the blob is still needed for outputs.
    for (const record of records) {
      if (!(await store.hasBlob(record.digest))) await copyBlob(store, source, record, work, opts.progress);
    }
    await store.putBlob(source.configBytes);
    await store.putBlob(source.manifestBytes);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return source.manifestDigest;
}

/** Stores one layer of `source` (blob copied and checked, then extracted and checked against its
 * diff_id) unless the store has it; `work` is a temp dir of the store. */
export async function importLayer(store: Store, source: BlobSource, record: LayerRecord, work: string, progress?: ProgressSink): Promise<void> {
  const descriptor = { mediaType: record.mediaType, digest: record.digest, size: record.size };
  if (await store.hasBlob(record.digest)) {
    progress?.({ type: 'blob', action: 'pull', digest: record.digest, bytes: record.size, total: record.size, state: 'exists' });
  } else {
    await copyBlob(store, source, descriptor, work, progress);
  }
  if (await store.hasLayer(record.diffId)) return;
  const dir = path.join(work, `layer-${parseDigest(record.diffId).hex}`);
  const { stream } = await decompressedStream(store.blobPath(record.digest));
  const hash = createHash('sha256');
  const hashed = stream.pipe(new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  }));
  stream.on('error', (err) => hashed.destroy(err));
  try {
    await extractLayer(hashed, dir);
  } catch (err) {
    stream.destroy();
    await rm(dir, { recursive: true, force: true });
    throw new ImportError(`layer ${record.digest}: ${(err as Error).message}`, { cause: err });
  }
  const diffId = `sha256:${hash.digest('hex')}`;
  if (diffId !== record.diffId) {
    await rm(dir, { recursive: true, force: true });
    throw new ImportError(`layer ${record.digest} unpacks to ${diffId}, but the image config says ${record.diffId}`);
  }
  await store.addLayer(record, dir);
}

const MaxBlobAttempts = 3;

/** Streams one blob into the store, hashing as it goes; a wrong digest or size keeps nothing. */
async function copyBlob(store: Store, source: BlobSource, d: Descriptor, work: string, progress?: ProgressSink): Promise<void> {
  const file = path.join(work, `blob-${parseDigest(d.digest).hex}`);
  for (let attempt = 1; ; attempt++) {
    try {
      await copyVerified(source, d, file, progress);
      break;
    } catch (err) {
      await rm(file, { force: true });
      // A connection dropped mid-blob: start the blob again (the client already retried the request itself).
      const dropped = (err as { retryable?: boolean }).retryable || (err as NodeJS.ErrnoException).code === 'ECONNRESET';
      if (!source.openBlob || !dropped || attempt >= MaxBlobAttempts) throw err;
    }
  }
  await store.adoptBlob(file, d.digest);
}

async function copyVerified(source: BlobSource, d: Descriptor, file: string, progress?: ProgressSink): Promise<void> {
  const input = source.openBlob ? await source.openBlob(d) : readBlobFile(source.blobPath!(d.digest));
  const { algorithm, hex } = parseDigest(d.digest);
  const hash = createHash(algorithm);
  let bytes = 0;
  let reported = 0;
  const report = (state: 'progress' | 'done') => progress?.({ type: 'blob', action: 'pull', digest: d.digest, bytes, total: d.size, state });
  report('progress');
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > d.size) return done(new ImportError(`blob ${d.digest} is longer than the ${d.size} bytes its descriptor says; nothing was kept`));
      hash.update(chunk);
      if (Date.now() - reported > 1000) {
        reported = Date.now();
        report('progress');
      }
      done(null, chunk);
    },
  });
  await pipeline(input, meter, createWriteStream(file, { flags: 'wx' }));
  if (bytes !== d.size) throw new ImportError(`blob ${d.digest} is ${bytes} bytes, its descriptor says ${d.size}; nothing was kept`);
  const got = hash.digest('hex');
  if (got !== hex) throw new ImportError(`blob ${d.digest} has the wrong content (its bytes hash to ${algorithm}:${got}); nothing was kept`);
  report('done');
}
