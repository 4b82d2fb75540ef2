// Opens an image archive of any kind strata writes or imports: an OCI archive tarball, an OCI layout
// directory, or a docker-archive (`docker save` / `podman save` / skopeo). Tarballs, plain or gzipped,
// are extracted into a temporary directory and the images exposed as ImageSources.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { buildManifest, descriptorOf, digestOf, parseDigest, serializeManifest } from '../image/manifest.js';
import { blobPathIn, openLayoutImage, readVerifiedBlob, type ImageSource } from '../image/source.js';
import {
  AnnotationRefName, MediaType, type Descriptor, type Digest, type ImageConfig, type Index, type LayerRecord,
} from '../image/types.js';
import { AnnotationImageName, OciLayoutFile } from './oci-layout.js';

export interface ArchiveImage {
  /** How the archive names the image: the OCI ref name annotation (usually just the tag) or a docker RepoTag. */
  refName?: string;
  /** The full image name when the archive records one (`io.containerd.image.name`, docker RepoTags). */
  imageName?: string;
  source: ImageSource;
}

export interface OpenedArchive {
  format: 'oci' | 'docker-archive';
  images: ArchiveImage[];
  /** Removes the extracted files; the sources' blob paths are invalid afterwards. */
  cleanup(): Promise<void>;
}

export async function openImageArchive(path: string): Promise<OpenedArchive> {
  const work = await mkdtemp(join(tmpdir(), 'strata-archive-'));
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    const root = (await stat(path)).isDirectory() ? path : await extractTar(path, join(work, 'root'));
    if (await isFile(join(root, OciLayoutFile))) {
      return { format: 'oci', images: await readOciLayout(root), cleanup };
    }
    if (await isFile(join(root, 'manifest.json'))) {
      return { format: 'docker-archive', images: await readDockerArchive(root, join(work, 'manifests')), cleanup };
    }
    throw new Error(`${path}: neither an OCI layout (oci-layout, index.json) nor a docker-archive (manifest.json)`);
  } catch (err) {
    await cleanup();
    throw err;
  }
}

// ---- OCI layout

const IndexTypes: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
const ManifestTypes: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];

async function readOciLayout(root: string): Promise<ArchiveImage[]> {
  const version = (JSON.parse(await readFile(join(root, OciLayoutFile), 'utf8')) as { imageLayoutVersion?: string }).imageLayoutVersion;
  if (version !== '1.0.0') throw new Error(`unsupported OCI layout version ${JSON.stringify(version)}`);
  const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as Index;
  const blobsDir = join(root, 'blobs');
  const images: ArchiveImage[] = [];
  for (const d of index.manifests ?? []) {
    const refName = d.annotations?.[AnnotationRefName];
    const imageName = d.annotations?.[AnnotationImageName];
    for (const source of await imagesUnder(blobsDir, d)) images.push({ refName, imageName, source });
  }
  return images;
}

/** The images a descriptor leads to: itself, every image of a nested (multi-platform) index, or none for other artifacts. */
async function imagesUnder(blobsDir: string, d: Descriptor): Promise<ImageSource[]> {
  if (IndexTypes.includes(d.mediaType)) {
    const nested = JSON.parse((await readVerifiedBlob(blobPathIn(blobsDir, d.digest), d.digest, d.size)).toString('utf8')) as Index;
    const found: ImageSource[] = [];
    for (const child of nested.manifests ?? []) found.push(...(await imagesUnder(blobsDir, child)));
    return found;
  }
  // BuildKit stores provenance/SBOM attestations as manifests beside the image ones.
  if (!ManifestTypes.includes(d.mediaType) || d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') {
    return [];
  }
  return [await openLayoutImage(blobsDir, d.digest)];
}

// ---- docker-archive

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function readDockerArchive(root: string, manifestsDir: string): Promise<ArchiveImage[]> {
  const entries = JSON.parse(await readFile(join(root, 'manifest.json'), 'utf8')) as DockerManifestEntry[];
  await mkdir(manifestsDir, { recursive: true });
  const images: ArchiveImage[] = [];
  for (const entry of entries) {
    const source = await dockerImageSource(root, entry, manifestsDir);
    const tags = entry.RepoTags ?? [];
    if (tags.length === 0) images.push({ source });
    for (const tag of tags) images.push({ refName: tag, imageName: tag, source });
  }
  return images;
}

/**
 * An OCI view of one docker-archive image. The synthesized manifest's layers are the archive's own layer files:
 * uncompressed tars (digest = diff_id by definition) or, as some writers produce, gzip blobs (digest computed).
 */
async function dockerImageSource(root: string, entry: DockerManifestEntry, manifestsDir: string): Promise<ImageSource> {
  const configPath = join(root, safeName(entry.Config));
  const configBytes = await readFile(configPath);
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== entry.Layers.length) {
    throw new Error(`docker-archive ${entry.Config}: ${entry.Layers.length} layers but ${diffIds.length} diff_ids`);
  }
  const configDescriptor = descriptorOf(MediaType.ociConfig, configBytes);
  const blobs = new Map<Digest, string>([[configDescriptor.digest, configPath]]);
  const layers: LayerRecord[] = [];
  for (const [i, layerName] of entry.Layers.entries()) {
    const path = join(root, safeName(layerName));
    const diffId = diffIds[i]!;
    const gzipped = await isGzip(path);
    const digest = gzipped ? await hashFile(path) : diffId;
    blobs.set(digest, path);
    layers.push({ digest, diffId, size: (await stat(path)).size, mediaType: gzipped ? MediaType.ociLayerGzip : MediaType.ociLayer });
  }
  const manifest = buildManifest(configDescriptor, layers);
  const manifestBytes = serializeManifest(manifest);
  const manifestDigest = digestOf(manifestBytes);
  const manifestPath = join(manifestsDir, parseDigest(manifestDigest).hex);
  await writeFile(manifestPath, manifestBytes);
  blobs.set(manifestDigest, manifestPath);
  return {
    manifestDigest,
    manifest,
    manifestBytes,
    config,
    configBytes,
    blobPath(digest) {
      const path = blobs.get(digest);
      if (!path) throw new Error(`blob ${digest} is not part of this docker-archive image`);
      return path;
    },
  };
}

// ---- extraction

/**
 * Extracts the outer tar into `dest`. Only directories, regular files and links to regular files inside the
 * archive are accepted; links become hard links (never symlinks on disk), so no path can lead outside `dest`.
 */
async function extractTar(path: string, dest: string): Promise<string> {
  await mkdir(dest, { recursive: true });
  const extract = tar.extract();
  const feeding = (await isGzip(path))
    ? pipeline(createReadStream(path), createGunzip(), extract)
    : pipeline(createReadStream(path), extract);
  // Awaited below; until then a failure must not surface as an unhandled rejection.
  feeding.catch(() => {});
  const links: { name: string; target: string }[] = [];
  for await (const entry of extract) {
    const { header } = entry;
    if (isArchiveRoot(header.name)) {
      entry.resume();
      continue;
    }
    const name = safeName(header.name);
    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        await mkdir(join(dest, dirname(name)), { recursive: true });
        await pipeline(entry, createWriteStream(join(dest, name)));
        break;
      case 'directory':
        await mkdir(join(dest, name), { recursive: true });
        entry.resume();
        break;
      case 'symlink': // relative to the link's directory
        links.push({ name, target: safeName(posix.join(posix.dirname(name), linkTarget(header.linkname, name))) });
        entry.resume();
        break;
      case 'link': // relative to the archive root
        links.push({ name, target: safeName(linkTarget(header.linkname, name)) });
        entry.resume();
        break;
      default:
        throw new Error(`${path}: unsupported entry type ${header.type} for ${name}`);
    }
  }
  await feeding;

  // Links may precede their targets and point at other links, so they are resolved after every file exists.
  const linkTargets = new Map(links.map((l) => [l.name, l.target]));
  for (const { name, target } of links) {
    let resolved = target;
    for (let hops = 0; linkTargets.has(resolved); hops++) {
      if (hops > 40) throw new Error(`${path}: link loop at ${name}`);
      resolved = linkTargets.get(resolved)!;
    }
    if (!(await isFile(join(dest, resolved)))) throw new Error(`${path}: link ${name} does not lead to a file in the archive`);
    await mkdir(join(dest, dirname(name)), { recursive: true });
    await link(join(dest, resolved), join(dest, name));
  }
  return dest;
}

function isArchiveRoot(name: string): boolean {
  return posix.normalize(name).replace(/\/+$/, '') === '.';
}

/** A normalised archive-relative name, rejecting absolute names and names that climb out with "..". */
function safeName(raw: string): string {
  const name = posix.normalize(raw).replace(/\/+$/, '');
  if (name === '.' || name === '..' || name.startsWith('../') || posix.isAbsolute(name) || name.includes('\0')) {
    throw new Error(`unsafe path in archive: ${JSON.stringify(raw)}`);
  }
  return name;
}

/** A link's target as written; absolute targets would mean the extracting host's files, so they are refused. */
function linkTarget(linkname: string | null | undefined, name: string): string {
  if (!linkname) throw new Error(`link ${name} has no target`);
  if (posix.isAbsolute(linkname)) throw new Error(`unsafe path in archive: link ${name} -> ${JSON.stringify(linkname)}`);
  return linkname;
}

// ---- small file helpers

async function isFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isFile() ?? false;
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

async function hashFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}
