// Who owns a store entry that only lives as long as a process (a lease, the gc lock), and the one
// lock of the store: `gc.lock`, held by `prune` and `fsck --repair` while they delete.
//
// Builds never take a lock against each other: every store entry is content-addressed and appears
// by one atomic rename of a complete file or directory, so two builds writing the same entry write
// the same bytes and the second rename either replaces identical content (blobs, tags) or fails
// because the first already stands (layer directories) - either way one complete entry remains.
// Only deletion needs coordination, and only with the builds that use what would be deleted: see
// lease.ts for how a build and a prune order themselves around gc.lock.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** A process, told apart from a later one that reuses its pid by its start time (in clock ticks). */
export interface Owner {
  pid: number;
  start: string;
}

function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3,
    // starttime field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function currentOwner(): Owner {
  return { pid: process.pid, start: startTime(process.pid) ?? '' };
}

export function ownerAlive(owner: Owner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false;
  const start = startTime(owner.pid);
  return start !== undefined && (owner.start === '' || start === owner.start);
}

/** Whether the process named by the leading `<pid>-` of a file name in tmp/ or leases/ is alive. */
export function pidPrefixAlive(name: string): boolean {
  const pid = Number(/^(\d+)-/.exec(name)?.[1]);
  return Number.isInteger(pid) && pid > 0 && startTime(pid) !== undefined;
}

export class StoreBusyError extends Error {}

const gcLockPath = (root: string): string => path.join(root, 'gc.lock');

async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as Owner;
  } catch {
    return undefined; // gone (locks are linked into place whole, never seen half-written)
  }
}

/** The live process holding gc.lock, if any. */
export async function gcLockHolder(root: string): Promise<Owner | undefined> {
  const owner = await readOwner(gcLockPath(root));
  return owner && ownerAlive(owner) ? owner : undefined;
}

/**
 * Takes gc.lock (an exclusive hard link) or fails naming the live holder. A lock left by a dead process is
 * broken by renaming it to a unique name first, so that of two processes breaking it at once only
 * one removes it; the loser retries and finds the winner's live lock.
 */
export async function acquireGcLock(root: string): Promise<() => Promise<void>> {
  const file = gcLockPath(root);
  const me = currentOwner();
  for (let attempt = 0; attempt < 5; attempt++) {
    // Written whole under a private name, then hard-linked into place: link() fails if the lock
    // exists, and a reader never sees it empty.
    const staged = path.join(root, 'tmp', `${process.pid}-gc-lock-${randomBytes(4).toString('hex')}`);
    await fsp.writeFile(staged, JSON.stringify(me));
    try {
      await fsp.link(staged, file);
      await fsp.rm(staged, { force: true });
      return async () => {
        const owner = await readOwner(file);
        if (owner?.pid === me.pid && owner.start === me.start) await fsp.rm(file, { force: true });
      };
    } catch (err) {
      await fsp.rm(staged, { force: true });
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readOwner(file);
    if (holder && ownerAlive(holder)) {
      throw new StoreBusyError(`the store ${root} is being pruned or repaired by process ${holder.pid}; run this again when it has finished`);
    }
    const claimed = path.join(root, 'tmp', `${process.pid}-stale-gc-lock-${randomBytes(4).toString('hex')}`);
    await fsp.rename(file, claimed).catch(() => undefined);
    await fsp.rm(claimed, { force: true });
  }
  throw new StoreBusyError(`cannot take ${file}: other processes keep taking it`);
}

/** Waits while a live process holds gc.lock (prune and fsck --repair take seconds, not minutes). */
export async function waitForGc(root: string): Promise<void> {
  while (await gcLockHolder(root)) await new Promise((resolve) => setTimeout(resolve, 50));
}
