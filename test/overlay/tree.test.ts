// The user-space overlay view and upper writer on plain directories (no mount needed).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fsx } from '../../src/native/index.js';
import { LayeredTree, isOpaque } from '../../src/overlay/tree.js';
import { UpperWriter } from '../../src/overlay/upper.js';
import { tempDir } from '../helpers.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function layer(files: Record<string, string | { whiteout: true } | { dir: true; opaque?: boolean; mode?: number } | { link: string }>): string {
  const dir = tempDir('layer');
  dirs.push(dir);
  for (const [name, spec] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof spec === 'string') fs.writeFileSync(p, spec);
    else if ('whiteout' in spec) fsx.mknod(p, fs.constants.S_IFCHR | 0o600, 0, 0);
    else if ('link' in spec) fs.symlinkSync(spec.link, p);
    else {
      fs.mkdirSync(p, { recursive: true, mode: spec.mode ?? 0o755 });
      if (spec.mode !== undefined) fs.chmodSync(p, spec.mode);
      if (spec.opaque) fsx.setxattr(p, 'trusted.overlay.opaque', Buffer.from('y'));
    }
  }
  return dir;
}

describe('LayeredTree', () => {
  it('follows overlay lookup rules: upper first, whiteouts hide, opaque stops merging, non-dirs hide', () => {
    const bottom = layer({ 'a/old': 'old', 'a/keep': 'keep', 'b/x': 'x', 'c/y': 'y', 'f': 'file-bottom' });
    const middle = layer({ 'a/keep': 'keep2', 'b': { dir: true, opaque: true }, 'b/new': 'n', 'c': { whiteout: true }, 'f': 'file-middle' });
    const top = layer({ 'a/old': { whiteout: true } });
    const tree = new LayeredTree([top, middle, bottom]);
    expect(tree.readdir('')).toEqual(['a', 'b', 'f']);
    expect(tree.readdir('a')).toEqual(['keep']);
    expect(fs.readFileSync(tree.lookup('a/keep')!.abs, 'utf8')).toBe('keep2');
    expect(tree.readdir('b')).toEqual(['new']);
    expect(tree.lookup('c')).toBeNull();
    expect(tree.lookup('c/y')).toBeNull();
    expect(fs.readFileSync(tree.lookup('f')!.abs, 'utf8')).toBe('file-middle');
  });

  it('resolves symlinks inside the root: absolute targets restart at the root, .. stops there', () => {
    const base = layer({ 'etc': { link: '/' }, 'real/f': 'f', 'up': { link: '../../../real' }, 'loop': { link: 'loop' } });
    const tree = new LayeredTree([base]);
    expect(tree.resolve('/etc/real/f')).toBe('real/f');
    expect(tree.resolve('/up/f')).toBe('real/f');
    expect(tree.resolve('/../../real/f')).toBe('real/f');
    expect(tree.resolve('/etc', false)).toBe('etc');
    expect(() => tree.resolve('/loop/x')).toThrow(/too many levels/);
  });
});

describe('UpperWriter', () => {
  it('copies parents up with the lower attributes and makes a directory over an upper whiteout opaque', async () => {
    const lower = layer({ 'srv': { dir: true, mode: 0o750 }, 'srv/old': 'o', 'gone/f': 'f' });
    const upper = layer({ 'gone': { whiteout: true } });
    const writer = new UpperWriter(upper, [lower]);
    const src = path.join(layer({ 's': 'content' }), 's');
    await writer.copyFile('srv/new', src, { mode: 0o644, uid: 0, gid: 0 });
    expect(fs.statSync(path.join(upper, 'srv')).mode & 0o7777).toBe(0o750);
    expect(fs.readdirSync(path.join(upper, 'srv'))).toEqual(['new']);
    expect(isOpaque(path.join(upper, 'srv'))).toBe(false);
    writer.mkdir('gone');
    expect(fs.statSync(path.join(upper, 'gone')).isDirectory()).toBe(true);
    expect(isOpaque(path.join(upper, 'gone'))).toBe(true);
    expect(writer.merged.readdir('gone')).toEqual([]);
    expect(writer.merged.readdir('srv')).toEqual(['new', 'old']);
  });

  it('writes through an image symlink only inside the root', async () => {
    const lower = layer({ 'etc': { link: '/' }, 'bin/sh': 'sh' });
    const upper = layer({});
    const writer = new UpperWriter(upper, [lower]);
    const target = writer.resolve('/etc/passwd');
    expect(target).toBe('passwd');
    await writer.copyFile(target, path.join(lower, 'bin/sh'), { mode: 0o644, uid: 0, gid: 0 });
    expect(fs.readdirSync(upper)).toEqual(['passwd']);
  });

  it('refuses to make a directory through a file', () => {
    const writer = new UpperWriter(layer({}), [layer({ 'f': 'x' })]);
    expect(() => writer.ensureDir('f/sub')).toThrow(/not a directory/);
  });
});
