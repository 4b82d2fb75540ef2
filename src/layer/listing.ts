// What `strata layers` shows: each layer of an image with the instruction that made it, its sizes and
// its entries, whiteouts and opaque markers called out (what people install dive for).
import { createHash } from 'node:crypto';
import type { ImageSource } from '../image/source.js';
import { decompressedStream } from './compression.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type EntryType } from './entry.js';
import { readTar } from './tar-read.js';

export interface ListedEntry {
  path: string;
  type: EntryType | 'whiteout' | 'opaque';
  mode: string;
  uid: number;
  gid: number;
  size: number;
  /** seconds since the epoch */
  mtime: number;
  linkname?: string;
  /** sha256 of a regular file's content */
  sha256?: string;
  /** extended attributes, values as base64 */
  xattrs?: Record<string, string>;
}

export interface ListedLayer {
  index: number;
  digest: string;
  diffId: string;
  size: number;
  instruction: string;
  entries: ListedEntry[];
}

export async function listLayers(image: ImageSource): Promise<ListedLayer[]> {
  const instructions = image.config.history.filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
  const layers: ListedLayer[] = [];
  for (const [index, desc] of image.manifest.layers.entries()) {
    const { stream } = await decompressedStream(image.blobPath(desc.digest));
    const entries: ListedEntry[] = [];
    for await (const { header, body } of readTar(stream)) {
      let sha256: string | undefined;
      if (header.type === 'file') {
        const hash = createHash('sha256');
        for await (const chunk of body) hash.update(chunk as Buffer);
        sha256 = hash.digest('hex');
      } else {
        body.resume();
      }
      const base = header.path.split('/').pop() ?? '';
      const type = base === OPAQUE_MARKER ? 'opaque' : base.startsWith(WHITEOUT_PREFIX) ? 'whiteout' : header.type;
      entries.push({
        path: header.path, type, mode: header.mode.toString(8).padStart(4, '0'), uid: header.uid, gid: header.gid,
        size: header.size, mtime: header.mtime,
        ...(header.linkname !== undefined ? { linkname: header.linkname } : {}),
        ...(sha256 && { sha256 }),
        ...(header.xattrs?.size ? { xattrs: Object.fromEntries([...header.xattrs].map(([k, v]) => [k, v.toString('base64')])) } : {}),
      });
    }
    layers.push({ index, digest: desc.digest, diffId: image.config.rootfs.diff_ids[index], size: desc.size, instruction: instructions[index] ?? '', entries });
  }
  return layers;
}

export function formatLayers(layers: ListedLayer[]): string {
  const out: string[] = [];
  for (const layer of layers) {
    out.push(`layer ${layer.index}  ${layer.digest}  ${layer.size} bytes  ${layer.entries.length} entries`);
    out.push(`  ${layer.instruction}`);
    for (const e of layer.entries) {
      const mark = e.type === 'whiteout' ? `  [whiteout: deletes ${e.path.replace(/(^|\/)\.wh\./, '$1')}]`
        : e.type === 'opaque' ? '  [opaque: hides the lower content of this directory]' : '';
      const link = e.linkname !== undefined ? ` -> ${e.linkname}` : '';
      out.push(`    ${e.type.padEnd(8)} ${e.mode} ${String(e.uid).padStart(5)}:${String(e.gid).padEnd(5)} ${String(e.size).padStart(10)}  ${e.path}${link}${mark}`);
    }
  }
  return out.join('\n');
}
