// A layer committed while its upperdir is written (COPY, ADD): kept only when it is byte for byte the
// commit of the finished upperdir; anything written out of walk order, or changed behind the
// watcher's back, falls back to the usual commit.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lutimesSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { commitLayer } from '../../src/layer/commit.js';
import { readUpperdir } from '../../src/layer/diff.js';
import { EagerCommit } from '../../src/layer/eager-commit.js';
import { UpperWriter, type Attrs } from '../../src/overlay/upper.js';

let tmp: string;
let upper: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'strata-eager-'));
  upper = path.join(tmp, 'upper');
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const CLAMP = 2_000_000_000; // later than any mtime below, so every mtime reaches the tar as written
const file = (mode: number, mtime: number): Attrs => ({ mode, uid: 0, gid: 0, mtime });

function eagerWriter(): { writer: UpperWriter; eager: EagerCommit; blob: string } {
  rmSync(upper, { recursive: true, force: true });
  mkdirSync(upper);
  const writer = new UpperWriter(upper, []);
  const blob = path.join(tmp, 'eager.tar.gz');
  const eager = new EagerCommit(upper, blob, { clampMtime: CLAMP });
  writer.watcher = eager;
  return { writer, eager, blob };
}

async function usualCommit() {
  return commitLayer(readUpperdir(upper, { clampMtime: CLAMP }), path.join(tmp, 'usual.tar.gz'));
}

describe('EagerCommit', () => {
  it('streams entries written in walk order into the same blob the commit of the finished upperdir gives', async () => {
    const { writer, eager, blob } = eagerWriter();
    const big = randomBytes(1_300_000); // several 512 KiB gzip blocks
    writer.mkdir('etc', file(0o755, 1000));
    await writer.writeStream('etc/passwd', Readable.from([Buffer.from('root:x:0:0::/root:/bin/sh\n')]), file(0o644, 1001));
    writer.mkdir('usr', file(0o755, 1002));
    // a parent the writer makes on its own (usr/bin), then a big file, a hardlink to a file written
    // before it, a symlink and a fifo
    await writer.writeStream('usr/bin/big', Readable.from([big.subarray(0, 700_000), big.subarray(700_000)]), file(0o755, 1003));
    await writer.hardlink('usr/bin/big2', 'usr/bin/big');
    writer.symlink('usr/bin/sh', 'busybox', file(0o777, 1004));
    writer.device('usr/fifo', 'fifo', 0, 0, file(0o600, 1005));
    // directories get their mtimes last, as COPY and ADD set them
    lutimesSync(path.join(upper, 'etc'), 1000, 1000);
    lutimesSync(path.join(upper, 'usr'), 1002, 1002);

    const streamed = await eager.finish();
    const usual = await usualCommit();
    expect(streamed).toBeDefined();
    expect(streamed).toEqual(usual);
    expect(usual.entries).toBe(8);
    expect(existsSync(blob)).toBe(true);
  });

  it('falls back (no layer, no blob file) when an entry comes before one already streamed', async () => {
    const { writer, eager, blob } = eagerWriter();
    await writer.writeStream('b', Readable.from([Buffer.from('b')]), file(0o644, 1));
    await writer.writeStream('a', Readable.from([Buffer.from('a')]), file(0o644, 1));
    expect(await eager.finish()).toBeUndefined();
    expect(existsSync(blob)).toBe(false);
  });

  it('falls back when a directory comes after its own children (an archive listing usr/bin/ls before usr/)', async () => {
    const { writer, eager } = eagerWriter();
    await writer.writeStream('usr/bin/ls', Readable.from([Buffer.from('ls')]), file(0o755, 1));
    writer.mkdir('usr', file(0o700, 1));
    expect(await eager.finish()).toBeUndefined();
  });

  it('falls back when the upperdir changed behind the watcher, and when the step abandons it', async () => {
    const first = eagerWriter();
    await first.writer.writeStream('a', Readable.from([Buffer.from('a')]), file(0o644, 1));
    chmodSync(path.join(upper, 'a'), 0o600); // not told: the final walk sees another header
    expect(await first.eager.finish()).toBeUndefined();

    const second = eagerWriter();
    await second.writer.writeStream('a', Readable.from([Buffer.from('a')]), file(0o644, 1));
    second.eager.abandon();
    expect(await second.eager.finish()).toBeUndefined();
    expect(existsSync(second.blob)).toBe(false);
  });
});
