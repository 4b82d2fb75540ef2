// Replace-by-rename: readers of a destination see the old file or the complete new one, never a partial one.

import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Runs `write` on a temporary path next to `dest` (same filesystem, so rename is atomic), then renames it over `dest`. */
export async function replaceAtomically(dest: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await write(tmp);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
