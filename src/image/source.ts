// What transports read an image from: parsed manifest and config plus a file for every blob.

import { createHash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { matchesDigest, parseDigest } from './manifest.js';
import { MediaType, type Digest, type ImageConfig, type Manifest } from './types.js';

export interface ImageSource {
  manifestDigest: Digest;
  manifest: Manifest;
  manifestBytes: Buffer;
  config: ImageConfig;
  configBytes: Buffer;
  /** A readable file holding that blob (layer, config or manifest). */
  blobPath(digest: Digest): string;
}

/** Where a content-addressed blob lives under an OCI layout's `blobs` directory: `<alg>/<hex>`. */
export function blobPathIn(blobsDir: string, digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  return join(blobsDir, algorithm, hex);
}

/** Reads blob bytes and checks them against the digest (and size, when known) that named them. */
export async function readVerifiedBlob(path: string, digest: Digest, size?: number): Promise<Buffer> {
  const buf = await readFile(path);
  if (!matchesDigest(buf, digest)) {
    throw new Error(`blob ${path} does not match its digest ${digest}`);
  }
  if (size !== undefined && buf.length !== size) {
    throw new Error(`blob ${digest} is ${buf.length} bytes, its descriptor says ${size}`);
  }
  return buf;
}

/** A blob file as a stream of 1 MiB chunks: the default 64 KiB makes a thread-pool round trip per
 * chunk, which left an export of 84 MB mostly waiting (0.5 of its 0.8 s). */
export function readBlobFile(path: string): ReadStream {
  return createReadStream(path, { highWaterMark: 1 << 20 });
}

/**
 * The file holding a blob, checked to have the size and the digest its descriptor promises before
 * anything is written from it: a blob damaged on disk is never exported (sha256 reads at over
 * 1 GB/s, a small price next to writing the archive).
 */
export async function sizedBlobFile(img: ImageSource, blob: { digest: Digest; size: number }): Promise<string> {
  const path = img.blobPath(blob.digest);
  const { size } = await stat(path);
  if (size !== blob.size) throw new Error(`blob ${blob.digest} (${path}) is ${size} bytes, its descriptor says ${blob.size}`);
  const { algorithm, hex } = parseDigest(blob.digest);
  const hash = createHash(algorithm);
  await pipeline(readBlobFile(path), hash);
  if (hash.digest('hex') !== hex) throw new Error(`blob ${blob.digest} (${path}) does not match its digest: the file is damaged (strata fsck --repair)`);
  return path;
}

const ManifestTypes: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];

/** An image whose blobs sit in a `blobs/<alg>/<hex>` tree (an OCI layout, or strata's own blob store). */
export async function openLayoutImage(blobsDir: string, manifestDigest: Digest): Promise<ImageSource> {
  const manifestBytes = await readVerifiedBlob(blobPathIn(blobsDir, manifestDigest), manifestDigest);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  // Docker schema 2 and OCI manifests share the shape; OCI allows leaving mediaType out.
  if (manifest.schemaVersion !== 2 || (manifest.mediaType !== undefined && !ManifestTypes.includes(manifest.mediaType))
    || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new Error(`${manifestDigest} is not an image manifest`);
  }
  const configBytes = await readVerifiedBlob(
    blobPathIn(blobsDir, manifest.config.digest), manifest.config.digest, manifest.config.size);
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  if (config.rootfs?.diff_ids?.length !== manifest.layers.length) {
    throw new Error(`image ${manifestDigest}: ${manifest.layers.length} layers but ${config.rootfs?.diff_ids?.length ?? 0} diff_ids`);
  }
  return {
    manifestDigest,
    manifest,
    manifestBytes,
    config,
    configBytes,
    blobPath: (digest) => blobPathIn(blobsDir, digest),
  };
}
