// Exported step cache (--cache-to / --cache-from). The cache travels as an OCI image manifest whose
// config is the list of cache records (key -> layer) and whose layers are those records' blobs, so
// any OCI layout directory or registry can hold it: type=local writes an OCI layout directory,
// type=registry pushes the same manifest. Importing is lazy: the records are read at the start of
// a build, and a layer blob is fetched, checked and extracted only when a step hits its record.
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseRegistryReference } from '../image/reference.js';
import { buildManifest, digestOf, serializeManifest, toJson } from '../image/manifest.js';
import { blobPathIn, type ImageSource } from '../image/source.js';
import { MediaType, type Digest, type ImageConfig, type Index, type LayerRecord, type Manifest, type Platform } from '../image/types.js';
import type { CacheRecord } from '../store/cache.js';
import type { BlobSource } from '../store/import.js';
import { writeOciDir } from './oci-dir.js';
import { RegistryClient, RegistryError, type RegistryOptions } from './registry/client.js';
import { openRegistryImage } from './registry/pull.js';
import { pushImage, type PushOptions } from './registry/push.js';

export const CacheConfigMediaType = 'application/vnd.strata.cache.config.v1+json';
/** index.json ref name of the cache manifest in a local cache directory */
const CacheRefName = 'strata-cache';

interface CacheConfig {
  records: { key: string; layer?: LayerRecord }[];
}

export type CacheSpec =
  | { type: 'local'; dir: string; mode: 'min' | 'max' }
  | { type: 'registry'; ref: string; mode: 'min' | 'max' };

/** `type=local,dest=DIR[,mode=max]`, `type=local,src=DIR`, `type=registry,ref=REF[,mode=max]`, as buildx writes them. */
export function parseCacheSpec(spec: string, direction: 'to' | 'from'): CacheSpec {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      // buildx: a bare value of --cache-from is a registry ref
      if (fields.size === 0 && !spec.includes(',') && direction === 'from') return { type: 'registry', ref: spec, mode: 'min' };
      throw new Error(`--cache-${direction} ${spec}: expected key=value pairs such as type=local,${direction === 'to' ? 'dest' : 'src'}=DIR`);
    }
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const mode = fields.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new Error(`--cache-${direction} ${spec}: mode must be min or max`);
  const type = fields.get('type') ?? (fields.has('ref') ? 'registry' : undefined);
  if (type === 'local') {
    const dir = fields.get(direction === 'to' ? 'dest' : 'src');
    if (!dir) throw new Error(`--cache-${direction} ${spec}: type=local needs ${direction === 'to' ? 'dest' : 'src'}=DIR`);
    return { type, dir, mode };
  }
  if (type === 'registry') {
    const ref = fields.get('ref');
    if (!ref) throw new Error(`--cache-${direction} ${spec}: type=registry needs ref=REF`);
    return { type, ref, mode };
  }
  throw new Error(`--cache-${direction} ${spec}: type must be local or registry`);
}

/** The cache records as an image-shaped source: the records in the config, their blobs as layers. */
export function cacheImage(records: CacheRecord[], blobPath: (digest: Digest) => string): ImageSource {
  const unique = new Map<string, CacheRecord>();
  for (const r of records) unique.set(r.key, r);
  const sorted = [...unique.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  const config: CacheConfig = { records: sorted.map((r) => ({ key: r.key, ...(r.layer && { layer: r.layer }) })) };
  const configBytes = toJson(config);
  const layers = new Map<Digest, LayerRecord>();
  for (const r of sorted) if (r.layer) layers.set(r.layer.digest, r.layer);
  const manifest = buildManifest({ mediaType: CacheConfigMediaType, digest: digestOf(configBytes), size: configBytes.length }, [...layers.values()]);
  const manifestBytes = serializeManifest(manifest);
  return {
    manifestDigest: digestOf(manifestBytes),
    manifest,
    manifestBytes,
    // Transports copy the config as bytes; nothing reads it as an image config.
    config: config as unknown as ImageConfig,
    configBytes,
    blobPath,
  };
}

export async function writeLocalCache(dir: string, image: ImageSource): Promise<void> {
  await writeOciDir(image, dir, [`${CacheRefName}:latest`]);
}

/** Records found in an exported cache, and where to get their blobs (checked by the importer). */
export interface CacheImport extends BlobSource {
  label: string;
  records: Map<string, LayerRecord | undefined>;
}

/** Parses the records of a cache manifest's config, refusing anything that is not a strata cache. */
export function cacheRecords(manifest: Manifest, configBytes: Buffer, label: string): Map<string, LayerRecord | undefined> {
  if (manifest.config.mediaType !== CacheConfigMediaType) throw new Error(`${label} is not a strata cache (config type ${manifest.config.mediaType})`);
  const config = JSON.parse(configBytes.toString('utf8')) as CacheConfig;
  return new Map(config.records.map((r) => [r.key, r.layer]));
}

/** A cache written by writeLocalCache; a missing directory is an empty cache (the first CI run). */
export async function openLocalCache(dir: string): Promise<CacheImport | undefined> {
  const label = `cache ${dir}`;
  const indexText = await fs.readFile(path.join(dir, 'index.json'), 'utf8').catch(() => undefined);
  if (indexText === undefined) return undefined;
  const index = JSON.parse(indexText) as Index;
  // writeLocalCache replaces the one manifest of its directory
  const descriptor = index.manifests.filter((d) => d.mediaType === MediaType.ociManifest).at(-1);
  if (!descriptor) throw new Error(`${label} holds no cache manifest`);
  const blobs = path.join(dir, 'blobs');
  const manifestBytes = await fs.readFile(blobPathIn(blobs, descriptor.digest));
  if (digestOf(manifestBytes) !== descriptor.digest) throw new Error(`${label}: manifest does not match its digest`);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  const configBytes = await fs.readFile(blobPathIn(blobs, manifest.config.digest));
  if (digestOf(configBytes) !== manifest.config.digest) throw new Error(`${label}: config does not match its digest`);
  return {
    label,
    records: cacheRecords(manifest, configBytes, label),
    blobPath: (digest) => blobPathIn(blobs, digest),
  };
}

/** A cache pushed by pushRegistryCache; a missing tag or repository is an empty cache (the first CI run). */
export async function openRegistryCache(refText: string, opts: RegistryOptions, platform: Platform): Promise<CacheImport | undefined> {
  const ref = parseRegistryReference(refText);
  const client = new RegistryClient(ref.registry, opts);
  let image;
  try {
    image = await openRegistryImage(client, ref, platform);
  } catch (err) {
    if (err instanceof RegistryError && err.status === 404) return undefined;
    throw err;
  }
  const label = `cache ${refText}`;
  return {
    label,
    records: cacheRecords(image.manifest, image.configBytes, label),
    openBlob: (d) => image.openBlob(d),
  };
}

export async function pushRegistryCache(image: ImageSource, refText: string, opts: PushOptions): Promise<void> {
  await pushImage(image, parseRegistryReference(refText), opts);
}
