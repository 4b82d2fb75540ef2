// Leases: what a running build uses or is creating, so that prune (and fsck --repair) never delete
// it. A lease is `leases/<pid>-<random>.json` = { owner, layers: [diffId], blobs: [digest] },
// rewritten (temp + rename) as the build touches more entries, removed when the build ends and
// ignored (then removed) once its process is dead, so a SIGKILLed build holds nothing.
//
// Ordering with gc.lock (lock.ts), which a deleting process holds from before it reads the leases
// until its last deletion:
//   build: write the lease naming X, then wait while gc.lock is held, then look at / use / create X
//   gc:    take gc.lock, read the leases, delete what nothing names, release gc.lock
// If the build's lease was written before gc read the leases, gc keeps X. If it was written after,
// gc already held the lock when the build checked it, so the build waits until gc is done and then
// sees the store as gc left it (X present, or absent and re-created or reported). Builds never wait
// for each other, only for a running prune.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Digest } from '../image/types.js';
import { currentOwner, ownerAlive, waitForGc, type Owner } from './lock.js';

export interface LeaseContent {
  owner: Owner;
  layers: Digest[];
  blobs: Digest[];
}

export interface Leased {
  layers?: Digest[];
  blobs?: Digest[];
}

export class Lease {
  private readonly layers = new Set<Digest>();
  private readonly blobs = new Set<Digest>();
  /** Lease writes in order; a caller returns only once its entries are on disk. */
  private pending: Promise<void> = Promise.resolve();
  private readonly removeOnExit = (): void => fs.rmSync(this.file, { force: true });

  private constructor(private readonly root: string, readonly file: string) {}

  static async take(root: string): Promise<Lease> {
    const lease = new Lease(root, path.join(root, 'leases', `${process.pid}-${randomBytes(6).toString('hex')}.json`));
    await lease.write();
    process.on('exit', lease.removeOnExit);
    return lease;
  }

  /** Names entries this process is about to use or create; resolves when no gc can delete them. */
  hold(entries: Leased): Promise<void> {
    const layers = (entries.layers ?? []).filter((d) => !this.layers.has(d));
    const blobs = (entries.blobs ?? []).filter((d) => !this.blobs.has(d));
    if (layers.length === 0 && blobs.length === 0) return this.pending; // named already (maybe still being written)
    for (const d of layers) this.layers.add(d);
    for (const d of blobs) this.blobs.add(d);
    this.pending = this.pending.catch(() => undefined).then(async () => {
      await this.write();
      await waitForGc(this.root);
    });
    return this.pending;
  }

  async release(): Promise<void> {
    process.off('exit', this.removeOnExit);
    await this.pending.catch(() => undefined);
    await fsp.rm(this.file, { force: true });
  }

  private async write(): Promise<void> {
    const content: LeaseContent = { owner: currentOwner(), layers: [...this.layers], blobs: [...this.blobs] };
    // The temp name starts with the pid too, so a dead process's temp is swept like its lease.
    const tmp = `${this.file}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(content));
    await fsp.rename(tmp, this.file);
  }
}

/** Everything the leases of live processes name; leases of dead processes are removed. */
export async function liveLeases(root: string): Promise<{ layers: Set<Digest>; blobs: Set<Digest> }> {
  const dir = path.join(root, 'leases');
  const live = { layers: new Set<Digest>(), blobs: new Set<Digest>() };
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    let content: LeaseContent;
    try {
      content = JSON.parse(await fsp.readFile(path.join(dir, name), 'utf8')) as LeaseContent;
    } catch {
      continue; // replaced or released while we looked
    }
    if (!ownerAlive(content.owner)) {
      await fsp.rm(path.join(dir, name), { force: true });
      continue;
    }
    for (const d of content.layers) live.layers.add(d);
    for (const d of content.blobs) live.blobs.add(d);
  }
  return live;
}
