// Manifests, index files and digests. Every JSON document strata writes is built key by key in a fixed
// order (map keys sorted, like Go's encoding/json), so the same content always has the same digest.

import { createHash } from 'node:crypto';
import { MediaType, type Descriptor, type Digest, type Index, type LayerRecord, type Manifest } from './types.js';

const DigestPattern = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function digestOf(buf: Buffer): Digest {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** Splits a digest into algorithm and hex, rejecting anything else: digests end up in file paths. */
export function parseDigest(digest: Digest): { algorithm: string; hex: string } {
  if (!DigestPattern.test(digest)) throw new Error(`invalid digest: ${JSON.stringify(digest)}`);
  const [algorithm, hex] = digest.split(':') as [string, string];
  return { algorithm, hex };
}

/** Whether `buf` is the content `digest` names (using the digest's own algorithm). */
export function matchesDigest(buf: Buffer, digest: Digest): boolean {
  const { algorithm, hex } = parseDigest(digest);
  return createHash(algorithm).update(buf).digest('hex') === hex;
}

export function descriptorOf(mediaType: string, buf: Buffer): Descriptor {
  return { mediaType, digest: digestOf(buf), size: buf.length };
}

export function buildManifest(
  config: Descriptor,
  layers: LayerRecord[],
  annotations?: Record<string, string>,
): Manifest {
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  if (annotations && Object.keys(annotations).length > 0) manifest.annotations = annotations;
  return manifest;
}

export function serializeManifest(m: Manifest): Buffer {
  return toJson({
    schemaVersion: m.schemaVersion,
    mediaType: m.mediaType,
    config: orderedDescriptor(m.config),
    layers: m.layers.map(orderedDescriptor),
    annotations: sortedMap(m.annotations),
  });
}

export function serializeIndex(index: Index): Buffer {
  return toJson({
    schemaVersion: index.schemaVersion,
    mediaType: index.mediaType,
    manifests: index.manifests.map(orderedDescriptor),
    annotations: sortedMap(index.annotations),
  });
}

/** JSON with undefined fields dropped (JSON.stringify does that) and no trailing newline. */
export function toJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** A copy of a string-keyed map with its keys in sorted order, or undefined when absent/empty. */
export function sortedMap<T>(map: Record<string, T> | undefined): Record<string, T> | undefined {
  if (!map) return undefined;
  const keys = Object.keys(map).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, T> = {};
  for (const k of keys) out[k] = map[k] as T;
  return out;
}

function orderedDescriptor(d: Descriptor): Descriptor {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    platform: d.platform && { architecture: d.platform.architecture, os: d.platform.os, variant: d.platform.variant },
    annotations: sortedMap(d.annotations),
  };
}
