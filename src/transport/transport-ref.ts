// Images named by transport (`oci-archive:PATH[:TAG]`, `oci:DIR[:TAG]`, `docker-archive:PATH[:NAME]`):
// which image of an archive such a name picks, and writing an image to one.

import { parseImageName } from '../image/names.js';
import type { TransportReference } from '../image/reference.js';
import type { ImageSource } from '../image/source.js';
import { writeDockerArchive } from './docker-archive.js';
import { writeOciArchive } from './oci-archive.js';
import { writeOciDir } from './oci-dir.js';
import { openImageArchive, type ArchiveImage } from './read-archive.js';

const describe = (ref: TransportReference) => `${ref.transport}:${ref.path}${ref.tag ? `:${ref.tag}` : ''}`;

/** The image the reference names, the full names the archive gives it, and a cleanup that removes
 * what opening the archive extracted. */
export async function openTransportImage(ref: TransportReference): Promise<{ source: ImageSource; names: string[]; cleanup: () => Promise<void> }> {
  const archive = await openImageArchive(ref.path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${describe(ref)}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  });
  try {
    const expected = ref.transport === 'docker-archive' ? 'docker-archive' : 'oci';
    if (archive.format !== expected) throw new Error(`${describe(ref)}: ${ref.path} is ${archive.format === 'oci' ? 'an OCI layout' : 'a docker-archive'}`);
    const { source } = pick(archive.images, ref);
    const names = archive.images.filter((i) => i.source.manifestDigest === source.manifestDigest && i.imageName).map((i) => i.imageName!);
    return { source, names: [...new Set(names)], cleanup: archive.cleanup };
  } catch (err) {
    await archive.cleanup();
    throw err;
  }
}

function pick(images: ArchiveImage[], ref: TransportReference): ArchiveImage {
  const names = (i: ArchiveImage) => [i.refName, i.imageName].filter((n): n is string => n !== undefined);
  if (ref.tag === undefined) {
    const digests = new Set(images.map((i) => i.source.manifestDigest));
    if (digests.size === 1) return images[0]!;
    const listed = images.flatMap(names).join(', ') || 'unnamed images';
    throw new Error(`${describe(ref)}: ${digests.size === 0 ? 'holds no image' : `holds ${digests.size} images (${listed}); name one with :TAG`}`);
  }
  const full = (n: string) => {
    try {
      return parseImageName(n).full;
    } catch {
      return n;
    }
  };
  const found = images.find((i) => names(i).some((n) => n === ref.tag || full(n) === full(ref.tag!)));
  if (!found) throw new Error(`${describe(ref)}: no image named ${ref.tag} (it has: ${images.flatMap(names).join(', ') || 'unnamed images'})`);
  return found;
}

/**
 * Writes `img` to the transport. `name` is the image's own name (the store tag it came from), used
 * for the archive's names when the reference gives none; an oci TAG becomes the ref name.
 */
export async function writeTransportImage(img: ImageSource, ref: TransportReference, name?: string): Promise<void> {
  switch (ref.transport) {
    case 'oci-archive':
    case 'oci': {
      // The OCI writers take full names and annotate their tag as the ref name.
      const names = ref.tag !== undefined ? [refNameAsImageName(ref.tag, name)] : name ? [name] : [];
      if (ref.transport === 'oci') return writeOciDir(img, ref.path, names);
      return writeOciArchive(img, ref.path, names);
    }
    case 'docker-archive':
      return writeDockerArchive(img, ref.path, ref.tag !== undefined ? [ref.tag] : name ? [name] : []);
  }
}

/** `v2` with image `app:1` -> `app:v2`; a TAG that is itself a full name (`team/app:v2`) is kept. */
function refNameAsImageName(tag: string, name: string | undefined): string {
  if (tag.includes(':') || tag.includes('/')) return tag;
  const repository = name ? parseImageName(name).repository : 'localhost/strata';
  return `${repository}:${tag}`;
}
