// Reading an image from a registry: negotiate the manifest (OCI or Docker schema 2, an image or an
// index/manifest list resolved to one platform), verify manifest and config against their digests,
// and hand blobs out as streams for importImage to verify while it stores them.

import type { Readable } from 'node:stream';
import { matchesDigest, digestOf } from '../../image/manifest.js';
import { formatReference, type Reference } from '../../image/reference.js';
import { MediaType, type Descriptor, type Digest, type ImageConfig, type Index, type Manifest, type Platform } from '../../image/types.js';
import type { ImportSource } from '../../store/import.js';
import { readBody } from './http.js';
import { RegistryClient, RegistryError } from './client.js';

const ImageManifestTypes: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
const IndexTypes: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
const Accept = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList];

export interface RegistryImage extends ImportSource {
  openBlob(d: Descriptor): Promise<Readable>;
  /** The index the reference named, when it named one (kept so a later `FROM name@<index digest>` resolves offline). */
  index?: { digest: Digest; bytes: Buffer };
}

export async function openRegistryImage(client: RegistryClient, ref: Reference, platform: Platform): Promise<RegistryImage> {
  const name = formatReference(ref);
  let top = await fetchManifest(client, ref.repository, ref.digest ?? ref.tag!, ref.digest, name);
  let index: RegistryImage['index'];
  if (IndexTypes.includes(top.mediaType)) {
    index = { digest: top.digest, bytes: top.bytes };
    const chosen = choosePlatform(JSON.parse(top.bytes.toString('utf8')) as Index, platform, name);
    top = await fetchManifest(client, ref.repository, chosen.digest, chosen.digest, name);
    if (!ImageManifestTypes.includes(top.mediaType)) throw new RegistryError(`${name}: the ${platformText(platform)} entry of the index is not an image manifest (${top.mediaType})`);
  } else if (!ImageManifestTypes.includes(top.mediaType)) {
    throw new RegistryError(`${name}: unsupported manifest type ${top.mediaType}${top.mediaType.includes('v1+') || top.mediaType.includes('signed') ? ' (Docker schema 1 images are not supported)' : ''}`);
  }
  const manifest = JSON.parse(top.bytes.toString('utf8')) as Manifest;
  if (manifest.schemaVersion !== 2 || !manifest.config || !Array.isArray(manifest.layers)) throw new RegistryError(`${name}: malformed image manifest`);
  const configRes = await client.getBlob(ref.repository, manifest.config.digest);
  const configBytes = await readBody(configRes, 16 << 20);
  if (!matchesDigest(configBytes, manifest.config.digest)) throw new RegistryError(`${name}: config blob ${manifest.config.digest} does not match its digest`);
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  return {
    manifestDigest: top.digest,
    manifest,
    manifestBytes: top.bytes,
    config,
    configBytes,
    index,
    openBlob: async (d) => {
      const res = await client.getBlob(ref.repository, d.digest);
      const length = res.headers['content-length'];
      if (length !== undefined && Number(length) !== d.size) {
        res.destroy();
        throw new RegistryError(`${name}: blob ${d.digest} is ${length} bytes on the registry, the manifest says ${d.size}`);
      }
      return res;
    },
  };
}

interface Fetched {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** A manifest by tag or digest. By digest the bytes must hash to it; by tag a Docker-Content-Digest, if sent, must match. */
async function fetchManifest(client: RegistryClient, repository: string, reference: string, expected: Digest | undefined, name: string): Promise<Fetched> {
  const got = await client.getManifest(repository, reference, Accept);
  if (expected && !matchesDigest(got.bytes, expected)) throw new RegistryError(`${name}: manifest ${expected} from the registry does not match its digest`);
  const digest = expected ?? digestOf(got.bytes);
  if (!expected && got.digest?.startsWith('sha256:') && got.digest !== digest) {
    throw new RegistryError(`${name}: manifest bytes hash to ${digest} but the registry says ${got.digest}`);
  }
  // The Content-Type header decides; OCI manifests may leave mediaType out of the body.
  const bodyType = (JSON.parse(got.bytes.toString('utf8')) as { mediaType?: string }).mediaType;
  const mediaType = got.mediaType && got.mediaType !== 'application/json' ? got.mediaType : bodyType ?? MediaType.ociManifest;
  return { bytes: got.bytes, mediaType, digest };
}

const platformText = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** The index entry for the platform; a missing variant matches arm64's default v8 and otherwise any. */
export function choosePlatform(index: Index, want: Platform, name: string): Descriptor {
  const images = index.manifests.filter((d) => d.platform && d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
  const variantOf = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  const matching = images.filter((d) => d.platform!.os === want.os && d.platform!.architecture === want.architecture);
  const exact = matching.find((d) => variantOf(d.platform!) === variantOf(want));
  const chosen = exact ?? (want.variant === undefined ? matching[0] : undefined);
  if (!chosen) {
    const have = images.map((d) => platformText(d.platform!)).join(', ') || 'none';
    throw new RegistryError(`${name}: no image for platform ${platformText(want)} in the index (it has: ${have})`);
  }
  return chosen;
}
