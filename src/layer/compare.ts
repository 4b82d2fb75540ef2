// `strata diff A B`: where two images differ, layer by layer and entry by entry, so a user can find
// what makes a build non-reproducible (a timestamp, a changed file, a different owner).
import type { ImageSource } from '../image/source.js';
import { listLayers, type ListedEntry } from './listing.js';

export interface EntryChange {
  path: string;
  change: 'added' | 'removed' | 'changed';
  /** for 'changed': each differing field as [A's value, B's value] */
  fields?: Record<string, [unknown, unknown]>;
}

export interface LayerDifference {
  index: number;
  /** the digests, when they differ (equal layers are not listed) */
  digests: [string | undefined, string | undefined];
  instructions: [string | undefined, string | undefined];
  entries: EntryChange[];
}

export interface ImageDifference {
  identical: boolean;
  manifests: [string, string];
  /** config fields (runtime config, history, rootfs, created...) that differ, as [A, B] */
  config: Record<string, [unknown, unknown]>;
  layers: LayerDifference[];
}

const COMPARED: (keyof ListedEntry)[] = ['type', 'mode', 'uid', 'gid', 'size', 'mtime', 'linkname', 'sha256', 'xattrs'];

export async function compareImages(a: ImageSource, b: ImageSource): Promise<ImageDifference> {
  const config: Record<string, [unknown, unknown]> = {};
  const ca = a.config as unknown as Record<string, unknown>;
  const cb = b.config as unknown as Record<string, unknown>;
  for (const key of [...new Set([...Object.keys(ca), ...Object.keys(cb)])].sort()) {
    if (key === 'config') {
      const ra = (ca.config ?? {}) as Record<string, unknown>;
      const rb = (cb.config ?? {}) as Record<string, unknown>;
      for (const field of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
        if (!same(ra[field], rb[field])) config[`config.${field}`] = [ra[field], rb[field]];
      }
    } else if (!same(ca[key], cb[key])) {
      config[key] = [ca[key], cb[key]];
    }
  }
  const [la, lb] = [await listLayers(a), await listLayers(b)];
  const layers: LayerDifference[] = [];
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    const [x, y] = [la[i], lb[i]];
    if (x && y && x.digest === y.digest) continue;
    layers.push({ index: i, digests: [x?.digest, y?.digest], instructions: [x?.instruction, y?.instruction], entries: compareEntries(x?.entries ?? [], y?.entries ?? []) });
  }
  return { identical: a.manifestDigest === b.manifestDigest, manifests: [a.manifestDigest, b.manifestDigest], config, layers };
}

function compareEntries(a: ListedEntry[], b: ListedEntry[]): EntryChange[] {
  const inB = new Map(b.map((e) => [e.path, e]));
  const changes: EntryChange[] = [];
  for (const x of a) {
    const y = inB.get(x.path);
    if (!y) {
      changes.push({ path: x.path, change: 'removed' });
      continue;
    }
    inB.delete(x.path);
    const fields: Record<string, [unknown, unknown]> = {};
    for (const f of COMPARED) if (!same(x[f], y[f])) fields[f] = [x[f], y[f]];
    if (Object.keys(fields).length > 0) changes.push({ path: x.path, change: 'changed', fields });
  }
  for (const y of inB.values()) changes.push({ path: y.path, change: 'added' });
  return changes.sort((p, q) => (p.path < q.path ? -1 : p.path > q.path ? 1 : 0));
}

const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);

export function formatDifference(d: ImageDifference, names: [string, string]): string {
  if (d.identical) return `${names[0]} and ${names[1]} are the same image (${d.manifests[0]})`;
  const show = (v: unknown): string => (v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));
  const out = [`--- ${names[0]} ${d.manifests[0]}`, `+++ ${names[1]} ${d.manifests[1]}`];
  for (const [key, [x, y]] of Object.entries(d.config)) {
    if (key === 'rootfs' || key === 'history') continue; // shown per layer below
    out.push(`config ${key}: ${show(x)} -> ${show(y)}`);
  }
  if (d.config.history) out.push('config history differs (instructions or created times)');
  for (const layer of d.layers) {
    out.push(`layer ${layer.index}: ${show(layer.digests[0])} -> ${show(layer.digests[1])}`);
    if (layer.instructions[0] !== layer.instructions[1]) out.push(`  instruction: ${show(layer.instructions[0])} -> ${show(layer.instructions[1])}`);
    for (const e of layer.entries) {
      const mark = e.change === 'added' ? '+' : e.change === 'removed' ? '-' : '~';
      const detail = e.fields ? `  ${Object.entries(e.fields).map(([f, [x, y]]) => `${f} ${show(x)} -> ${show(y)}`).join(', ')}` : '';
      out.push(`  ${mark} ${e.path}${detail}`);
    }
    if (layer.entries.length === 0) out.push('  (same entries; the bytes of the tar or its compression differ)');
  }
  return out.join('\n');
}
