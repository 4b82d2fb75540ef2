// `strata fsck` and `strata prune` through the CLI on a store filled by a real build.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeContext, strata, tempDir } from '../helpers.js';

// The RUN layer holds a whiteout (/etc/passwd removed) and an opaque directory (/tmp/o re-made).
const DOCKERFILE = `FROM scratch
ADD busybox-rootfs.tar /
RUN mkdir -p /tmp/o && echo old > /tmp/o/a
RUN rm /etc/passwd && rm -rf /tmp/o && mkdir /tmp/o && echo hi > /tmp/o/f
COPY note.txt /note.txt
`;

let root: string;
let ctx: string;
let digest: string;

const sha256File = (file: string): string => `sha256:${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
const layerOf = (file: string): string => {
  const found = fs.readdirSync(path.join(root, 'layers')).find((hex) => fs.existsSync(path.join(root, 'layers', hex, 'diff', file)));
  if (!found) throw new Error(`no layer holds ${file}`);
  return found;
};

async function build(): Promise<string> {
  const run = await strata(['build', '--root', root, '-q', '-t', 'test/fsck:1', ctx]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return run.stdout.trim();
}

async function fsck(...args: string[]): Promise<{ code: number | null; out: string }> {
  const run = await strata(['fsck', '--root', root, ...args]);
  expect(run.stderr).toBe('');
  return { code: run.code, out: run.stdout };
}

beforeAll(async () => {
  root = tempDir('fsck');
  ctx = makeContext(DOCKERFILE, { 'note.txt': 'note\n' });
  digest = await build();
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(ctx, { recursive: true, force: true });
});

describe('strata fsck', () => {
  it('reports a freshly built store clean', async () => {
    const { code, out } = await fsck();
    expect(out).toMatch(/^checked 6 blobs, 4 layers, 1 tags, \d+ cache records: clean\n$/);
    expect(code).toBe(0);
  });

  it('finds a changed file in a layer diff and re-extracts the layer (whiteout, opaque dir) from its blob', async () => {
    const hex = layerOf('tmp/o/f');
    const file = path.join(root, 'layers', hex, 'diff', 'tmp', 'o', 'f');
    fs.writeFileSync(file, 'tampered\n');
    const check = await fsck();
    expect(check.code).toBe(1);
    expect(check.out).toContain(`layer sha256:${hex}: diff does not match its diff_id`);
    expect(check.out).toContain('tag test/fsck:1: points to an incomplete image');

    const repair = await fsck('--repair');
    expect(repair.out).toMatch(new RegExp(`layer sha256:${hex}: diff does not match its diff_id .* - repaired: re-extracted from blob sha256:[0-9a-f]{64}`));
    expect(repair.code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toBe('hi\n');
    expect(fs.statSync(path.join(root, 'layers', hex, 'diff', 'etc', 'passwd')).isCharacterDevice()).toBe(true);
    expect((await fsck()).out).toMatch(/: clean\n$/);
  });

  it('re-makes a deleted layer blob and a deleted link from the layer diff', async () => {
    const hex = layerOf('note.txt');
    const record = JSON.parse(fs.readFileSync(path.join(root, 'layers', hex, 'layer.json'), 'utf8'));
    const blob = path.join(root, 'blobs', 'sha256', record.digest.slice(7));
    fs.rmSync(blob);
    fs.rmSync(path.join(root, 'l', hex.slice(0, 20)));
    const repair = await fsck('--repair');
    expect(repair.out).toContain(`layer sha256:${hex}: its blob ${record.digest} is missing or corrupt - repaired: blob re-made from the layer diff`);
    expect(repair.out).toContain(`layer sha256:${hex}: its link is missing - repaired: l/${hex.slice(0, 20)} re-made`);
    expect(sha256File(blob)).toBe(record.digest);
    expect(fs.readlinkSync(path.join(root, 'l', hex.slice(0, 20)))).toBe(`../layers/${hex}/diff`);
    expect((await fsck()).code).toBe(0);
  });

  it('removes a corrupt config blob and the tag that needs it; the next build restores both', async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
    const config = path.join(root, 'blobs', 'sha256', manifest.config.digest.slice(7));
    fs.appendFileSync(config, ' ');
    const check = await fsck();
    expect(check.out).toContain(`blob ${manifest.config.digest}: content does not match its digest`);
    expect(check.code).toBe(1);
    const repair = await fsck('--repair');
    expect(repair.out).toContain(`blob ${manifest.config.digest}: content does not match its digest - repaired: removed`);
    expect(repair.out).toContain(`tag test/fsck:1: points to an incomplete image: config ${manifest.config.digest} is missing or corrupt - repaired: tag removed`);
    expect(fs.existsSync(config)).toBe(false);
    expect((await strata(['images', '--root', root])).stdout).not.toContain('test/fsck');
    expect(await build()).toBe(digest);
    expect(sha256File(config)).toBe(manifest.config.digest);
    expect((await fsck()).out).toMatch(/1 tags, \d+ cache records: clean\n$/);
  });

  it('removes a layer directory without layer.json', async () => {
    const hex = 'f0'.repeat(32);
    fs.mkdirSync(path.join(root, 'layers', hex, 'diff'), { recursive: true });
    const check = await fsck();
    expect(check.out).toContain(`layer sha256:${hex}: incomplete: no readable layer.json`);
    const repair = await fsck('--repair');
    expect(repair.out).toContain(`layer sha256:${hex}: incomplete: no readable layer.json - repaired: removed`);
    expect(fs.existsSync(path.join(root, 'layers', hex))).toBe(false);
  });
});

describe('strata prune', () => {
  it('keeps tagged images, frees an untagged one, and a later build still works', async () => {
    const other = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo untagged > /u\n');
    const built = await strata(['build', '--root', root, '-q', other]);
    expect(built.code).toBe(0);
    const layersBefore = fs.readdirSync(path.join(root, 'layers')).length;

    const kept = await strata(['prune', '--root', root]);
    expect(kept.stdout).toMatch(/^removed 0 cache records, 0 layers, 2 blobs: freed [\d.]+ (B|KiB) \([\d.]+ MiB in use\)\n$/);
    // the untagged image's manifest and config were orphans; its RUN layer is still named by its cache record
    const all = await strata(['prune', '--root', root, '--all']);
    expect(all.code).toBe(0);
    const freed = /^removed (\d+) cache records, (\d+) layers, (\d+) blobs: freed /.exec(all.stdout);
    expect(freed).not.toBeNull();
    expect(Number(freed![2])).toBe(layersBefore - 4);
    expect(fs.readdirSync(path.join(root, 'layers'))).toHaveLength(4); // the tagged image's
    expect(fs.readdirSync(path.join(root, 'cache')).filter((n) => n.endsWith('.json'))).toEqual([]);
    expect((await fsck()).out).toMatch(/: clean\n$/);
    expect(await build()).toBe(digest);
    fs.rmSync(other, { recursive: true, force: true });
  });
});
