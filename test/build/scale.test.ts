// Builds that stress the overlay model: many layers (mount options must fit one page) and a large
// file appended to in a later step (copy-up copies it whole; the lower layer stays as it was).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageShape, makeContext, strata, tempDir } from '../helpers.js';

const root = tempDir('scale-store');
const out = tempDir('scale-out');
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

describe('scale', () => {
  it('builds 150 RUN layers, and a RUN over all of them sees every file', async () => {
    const runs = Array.from({ length: 150 }, (_, i) => `RUN echo ${i} > /f${i}`);
    const ctx = makeContext(['FROM scratch', 'ADD busybox-rootfs.tar /', ...runs, 'RUN cat /f* | wc -l > /count && cat /f149 > /last', ''].join('\n'));
    const archive = path.join(out, 'many.tar');
    const run = await strata(['build', '--root', root, '--progress', 'plain', '--output', `type=oci,dest=${archive}`, ctx]);
    expect(run.stderr).not.toContain('ERROR');
    expect(run.code).toBe(0);
    const shape = imageShape(archive);
    expect(shape.layers).toHaveLength(152);
    expect(shape.layers[150].entries.map((e) => `${e.name} ${e.size}`)).toEqual(['f149 4']);
    const last = shape.layers[151].entries.map((e) => `${e.name} ${e.size}`).sort();
    expect(last).toEqual(['count 4', 'last 4']);
  }, 600_000);

  it('appending to a 200 MiB lower file puts the whole file in the new layer and leaves the lower one unchanged', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null\nRUN echo x >> /big\n');
    const archive = path.join(out, 'big.tar');
    const run = await strata(['build', '--root', root, '--output', `type=oci,dest=${archive}`, ctx]);
    expect(run.code).toBe(0);
    const shape = imageShape(archive);
    expect(shape.layers).toHaveLength(3);
    expect(shape.layers[1].entries.map((e) => `${e.name} ${e.size}`)).toEqual(['big 209715200']);
    expect(shape.layers[2].entries.map((e) => `${e.name} ${e.size}`)).toEqual(['big 209715202']);
    // the stored diff of the lower layer still holds the original file
    const lower = path.join(root, 'layers', shape.diff_ids[1].slice(7), 'diff', 'big');
    expect(fs.statSync(lower).size).toBe(209715200);
  }, 600_000);
});
