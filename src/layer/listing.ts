// What `strata layers` shows: each layer of an image with the instruction that made it, its sizes and
// its entries, whiteouts and opaque markers called out (what people install dive for).
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { ImageSource } from '../image/source.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type EntryType } from './entry.js';
import { readTar } from './tar-read.js';

export interface ListedEntry {
  path: string;
  type: EntryType | 'whiteout' | 'opaque';
  mode: string;
  uid: number;
  gid: number;
  size: number;
  linkname?: string;
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
    const raw = createReadStream(image.blobPath(desc.digest));
    const stream = desc.mediaType.endsWith('gzip') ? raw.pipe(createGunzip()) : raw;
    const entries: ListedEntry[] = [];
    for await (const { header, body } of readTar(stream)) {
      body.resume();
      const base = header.path.split('/').pop() ?? '';
      const type = base === OPAQUE_MARKER ? 'opaque' : base.startsWith(WHITEOUT_PREFIX) ? 'whiteout' : header.type;
      entries.push({
        path: header.path, type, mode: header.mode.toString(8).padStart(4, '0'), uid: header.uid, gid: header.gid,
        size: header.size, ...(header.linkname !== undefined ? { linkname: header.linkname } : {}),
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
