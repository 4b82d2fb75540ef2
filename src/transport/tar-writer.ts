// Deterministic tar output for image archives: entries sorted by name, mtime 0, owner 0:0 with no user or
// group names, mode 0644 for files and 0755 for directories. The same entries always give the same bytes.

import { createWriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { replaceAtomically } from './atomic.js';

export type TarEntry =
  | { name: string; kind: 'dir' }
  | { name: string; kind: 'file'; data: Buffer }
  /** Streamed content (large blobs): `open` is called when the entry is written and must yield exactly `size` bytes. */
  | { name: string; kind: 'file'; size: number; open: () => Readable };

/**
 * Writes a tar of `entries` to a Writable (which is ended), to stdout for "-", or atomically to a file path.
 */
export async function writeTar(dest: string | Writable, entries: TarEntry[]): Promise<void> {
  if (typeof dest !== 'string') return packTo(dest, entries);
  if (dest === '-') return packTo(process.stdout, entries);
  return replaceAtomically(dest, (tmp) => packTo(createWriteStream(tmp, { flags: 'wx', mode: 0o644 }), entries));
}

async function packTo(out: Writable, entries: TarEntry[]): Promise<void> {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  sorted.forEach((e, i) => {
    if (i > 0 && sorted[i - 1]!.name === e.name) throw new Error(`duplicate tar entry ${e.name}`);
  });

  const pack = tar.pack();
  const written = pipeline(pack, out);
  // Consumed below; without this a failing `out` would be an unhandled rejection while an entry is in flight.
  written.catch(() => {});
  try {
    for (const e of sorted) {
      const header = {
        name: e.kind === 'dir' ? `${e.name}/` : e.name,
        type: e.kind === 'dir' ? ('directory' as const) : ('file' as const),
        mode: e.kind === 'dir' ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        mtime: new Date(0),
      };
      if (e.kind === 'file' && 'open' in e) {
        await pipeline(e.open(), pack.entry({ ...header, size: e.size }));
      } else {
        await new Promise<void>((resolve, reject) => {
          const done = (err?: Error | null) => (err ? reject(err) : resolve());
          if (e.kind === 'file') pack.entry(header, e.data, done);
          else pack.entry(header, done);
        });
      }
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
  }
  await written;
}
