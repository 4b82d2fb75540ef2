// A layer committed while its upperdir is still being written (ADD). When the writer creates
// entries in the order a walk of the finished upperdir visits them (an archive made with
// `tar --sort=name`, as Debian's rootfs tarballs are; a directory copied in walk order), each entry
// enters the tar -> gzip pipeline as soon as it is final, and compression overlaps the writing
// instead of following it. At the end the finished upperdir is walked once more, metadata only, and
// the layer is kept only if that walk gives exactly the tar headers that were streamed; otherwise,
// and as soon as a change comes out of walk order, the caller commits the usual way. Either way the
// layer's bytes are those of a commit of the finished upperdir.

import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { commitLayer, type CommitOptions, type CommittedLayer } from './commit.js';
import { UpperdirWalk, readUpperdir, type ReadUpperdirOptions } from './diff.js';
import type { LayerEntry } from './entry.js';
import { encodeEntryHeader } from './tar.js';

/** How long a writer may hold the event loop between turns (see turn()). */
const TURN_MS = 1; // ADD of a 200 MB rootfs: 17% faster than with no turns; 0.3 ms and 4 ms were slower

export class EagerCommit {
  private readonly walk: UpperdirWalk;
  private readonly queue = new EntryQueue();
  private readonly streamedHeaders = createHash('sha256');
  /** walkKey of the last path streamed */
  private last: Buffer | undefined;
  private abandoned = false;
  private lastTurn = 0;
  private readonly committed: Promise<CommittedLayer | undefined>;

  constructor(private readonly upper: string, private readonly blobFile: string, private readonly opts: CommitOptions & ReadUpperdirOptions = {}) {
    this.walk = new UpperdirWalk({ clampMtime: opts.clampMtime }, true);
    this.committed = commitLayer(this.queue, blobFile, opts).catch(() => undefined);
  }

  /** `rel` (relative to the upperdir) is about to be created or changed. */
  changing(rel: string): void {
    if (!this.abandoned && !this.inOrder(rel)) this.abandon();
  }

  /** `rel` is final (but for a directory's mtime, which its writer sets to `mtime` later). */
  changed(rel: string, mtime?: number): void {
    if (this.abandoned) return;
    if (!this.inOrder(rel)) {
      this.abandon();
      return;
    }
    this.last = walkKey(rel);
    let entries: LayerEntry[];
    try {
      entries = this.walk.entriesOf(path.join(this.upper, rel), rel, mtime);
    } catch {
      this.abandon(); // what the walk refuses (a name like .wh.x), the usual commit reports
      return;
    }
    for (const entry of entries) this.streamedHeaders.update(encodeEntryHeader(entry));
    this.queue.push(entries);
  }

  /**
   * A turn of the event loop for the commit, at most every TURN_MS: a writer with its input at hand
   * (an archive's bytes already inflated) runs synchronous file-system calls back to back, and
   * without turns the tar writer would get none and the compression threads would wait for blocks.
   */
  turn(): Promise<void> | undefined {
    const now = performance.now();
    if (this.abandoned || now - this.lastTurn < TURN_MS) return undefined;
    this.lastTurn = now;
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Stops streaming (the step failed, or wrote out of order); finish() then returns undefined. */
  abandon(): void {
    this.abandoned = true;
    this.queue.fail(new Error('eager commit abandoned'));
  }

  /** After the writer is done: the layer if it is the commit of the upperdir as it now is, else
   * undefined (and no blob file). */
  async finish(): Promise<CommittedLayer | undefined> {
    this.queue.end();
    const committed = await this.committed;
    if (committed && !this.abandoned && (await this.matchesUpperdir().catch(() => false))) return committed;
    await rm(this.blobFile, { force: true });
    return undefined;
  }

  private inOrder(rel: string): boolean {
    return this.last === undefined || Buffer.compare(walkKey(rel), this.last) > 0;
  }

  private async matchesUpperdir(): Promise<boolean> {
    const walked = createHash('sha256');
    for await (const entry of readUpperdir(this.upper, { clampMtime: this.opts.clampMtime })) walked.update(encodeEntryHeader(entry));
    return walked.digest().equals(this.streamedHeaders.digest());
  }
}

/** A path's place in walk order (readUpperdir's: depth first, siblings in byte order), as bytes that
 * compare in that order: '/' becomes 0, below every byte a name can hold, so a directory's
 * descendants sort right after it and before its next sibling. */
function walkKey(rel: string): Buffer {
  const key = Buffer.from(rel, 'utf8');
  for (let i = 0; i < key.length; i++) if (key[i] === 0x2f) key[i] = 0;
  return key;
}

/** Entries handed over by the writer, read by the tar writer; unbounded, since entries are small
 * and the file contents stay on disk until the tar writer reads them. */
class EntryQueue implements AsyncIterable<LayerEntry> {
  private batches: LayerEntry[][] = [];
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  push(entries: LayerEntry[]): void {
    if (entries.length === 0) return;
    this.batches.push(entries);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  fail(error: Error): void {
    this.error = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LayerEntry> {
    for (;;) {
      if (this.error) throw this.error;
      const batches = this.batches;
      if (batches.length > 0) {
        this.batches = [];
        for (const batch of batches) yield* batch;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
