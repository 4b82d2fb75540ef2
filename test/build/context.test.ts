// The build context as COPY reads it: .dockerignore matching (Docker's rules), which ignore file
// applies, source resolution inside the root, and the content hash of COPY sources.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextError, PatternSet, hashSources, openContext, readSources, walkTree } from '../../src/build/context.js';
import { tempDir } from '../helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tree(files: Record<string, string | { link: string } | { mode: number; content: string }>): string {
  const dir = tempDir('context');
  dirs.push(dir);
  for (const [name, spec] of Object.entries(files)) {
    const abs = path.join(dir, name);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (name.endsWith('/')) continue;
    if (typeof spec === 'string') fs.writeFileSync(abs, spec);
    else if ('link' in spec) fs.symlinkSync(spec.link, abs);
    else {
      fs.writeFileSync(abs, spec.content);
      fs.chmodSync(abs, spec.mode);
    }
  }
  return dir;
}

// [ignore file lines, path, excluded?] - Docker's semantics (moby/patternmatcher MatchesOrParentMatches
// after ignorefile.ReadAll's cleaning).
const TABLE: [string[], string, boolean][] = [
  [['*.log'], 'a.log', true],
  [['*.log'], 'dir/a.log', false], // `*` does not cross '/', patterns are anchored at the root
  [['**/*.log'], 'dir/sub/a.log', true],
  [['**/*.log'], 'a.log', true], // `**/` matches zero directories too
  [['dir'], 'dir/file', true], // a pattern matching a directory excludes its contents
  [['dir'], 'dir/sub/deep/file', true],
  [['dir'], 'other/dir', false],
  [['dir/'], 'dir/file', true], // a trailing slash is cleaned away
  [['/dir'], 'dir/file', true], // a leading slash is dropped
  [['./dir'], 'dir/x', true],
  [['dir/../other'], 'other/x', true], // cleaned like filepath.Clean
  [['dir', '!dir/keep'], 'dir/keep', false], // exceptions re-include
  [['dir', '!dir/keep'], 'dir/other', true],
  [['*', '!src'], 'src/a.ts', false],
  [['*', '!src'], 'README', true],
  [['**'], 'any/thing', true],
  [['a/**/b'], 'a/b', true],
  [['a/**/b'], 'a/x/y/b', true],
  [['a/**/b'], 'a/x/y/c', false],
  [['a/**'], 'a', false], // `a/**` matches below a, not a itself
  [['a/**'], 'a/x', true],
  [['dir/*'], 'dir/sub/file', true], // through the parent dir/sub
  [['file?.txt'], 'file1.txt', true],
  [['file?.txt'], 'file10.txt', false],
  [['[a-c].md'], 'b.md', true],
  [['[a-c].md'], 'd.md', false],
  [['*.md', '!README.md'], 'README.md', false],
  [['*.md', '!README.md'], 'CHANGES.md', true],
  [['*.md', '!README.md', 'README.md'], 'README.md', true], // the last matching line wins
  [['# comment'], '# comment', false], // comment lines are skipped
  [['  spaced.txt  '], 'spaced.txt', true], // lines are trimmed
  [['f(1)+x.txt'], 'f(1)+x.txt', true], // regexp characters match literally
  [['f(1)+x.txt'], 'f1x.txt', false],
  [['**.txt'], 'deep/er/notes.txt', true], // moby matches a leading ** followed by text as a suffix
  [['Secret'], 'secret', false], // case-sensitive, as on Linux
  [['\\*star'], '*star', true], // backslash escapes
  [['\\*star'], 'xstar', false],
  [['!dir/keep'], 'dir/keep', false], // an exception alone excludes nothing
  [[''], 'anything', false],
];

describe('.dockerignore matching', () => {
  it.each(TABLE)('%j on %s -> excluded %s', (lines, file, excluded) => {
    expect(new PatternSet(lines, '.dockerignore').matches(file)).toBe(excluded);
  });

  it('rejects a lone "!" and a bad pattern, naming the file and line', () => {
    expect(() => new PatternSet(['a', '!'], '.dockerignore')).toThrow('.dockerignore:2: illegal exclusion pattern "!"');
    expect(() => new PatternSet(['[unclosed'], '.dockerignore')).toThrow('.dockerignore: bad pattern "[unclosed"');
  });
});

describe('openContext', () => {
  it('hides excluded paths, keeps excluded directories that hold re-included files', async () => {
    const dir = tree({
      '.dockerignore': 'secret.txt\nbuild\n!build/keep\nDockerfile\n',
      Dockerfile: 'FROM scratch\n',
      'secret.txt': 's',
      'app.txt': 'a',
      'build/out.o': 'o',
      'build/keep': 'k',
      'logs/x.log': 'l',
    });
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    expect(ctx.ignoreFile).toBe(path.join(fs.realpathSync(dir), '.dockerignore'));
    expect(ctx.lookup('secret.txt')).toBeNull();
    expect(ctx.lookup('Dockerfile')).toBeNull(); // readable by the builder from disk, not COPYable
    expect(ctx.lookup('build')?.type).toBe('dir');
    expect(ctx.lookup('build/out.o')).toBeNull();
    expect([...walkTree(ctx, '')].map((e) => e.rel)).toEqual(['.dockerignore', 'app.txt', 'build', 'build/keep', 'logs', 'logs/x.log']);
  });

  it('<Dockerfile>.dockerignore next to the Dockerfile takes precedence over the context one', async () => {
    const dir = tree({ '.dockerignore': 'a.txt\n', 'a.txt': 'a', 'b.txt': 'b', 'docker/app.Dockerfile': 'FROM scratch\n', 'docker/app.Dockerfile.dockerignore': 'b.txt\n' });
    const ctx = await openContext(dir, path.join(dir, 'docker', 'app.Dockerfile'));
    expect(ctx.ignoreFile).toBe(path.join(dir, 'docker', 'app.Dockerfile.dockerignore'));
    expect(ctx.lookup('a.txt')?.type).toBe('file');
    expect(ctx.lookup('b.txt')).toBeNull();
    const plain = await openContext(dir, path.join(dir, 'Dockerfile'));
    expect(plain.lookup('a.txt')).toBeNull();
    expect(plain.lookup('b.txt')?.type).toBe('file');
  });

  it('resolves sources inside the root: `..` and symlinks leading out are errors, links inside are followed', async () => {
    const dir = tree({
      'real/f.txt': 'f',
      'inside': { link: 'real' },
      'up': { link: '../..' },
      'etc': { link: '/etc' },
      'sub/': '',
      'sub/back': { link: '../real/f.txt' },
    });
    fs.symlinkSync(path.join(fs.realpathSync(dir), 'real'), path.join(dir, 'abs-inside'));
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    expect(ctx.resolve('inside/f.txt')).toBe('real/f.txt');
    expect(ctx.resolve('abs-inside/f.txt')).toBe('real/f.txt');
    expect(ctx.resolve('sub/back')).toBe('real/f.txt');
    expect(ctx.resolve('sub/back', false)).toBe('sub/back');
    expect(() => ctx.resolve('../x')).toThrow(new ContextError('../x: forbidden path outside the build context'));
    expect(() => ctx.resolve('up/x')).toThrow('up/x: symlink up -> ../.. points outside the build context');
    expect(() => ctx.resolve('etc/passwd')).toThrow('etc/passwd: symlink etc -> /etc points outside the build context');
  });
});

describe('hashSources', () => {
  const files = { 'app/a.txt': 'alpha', 'app/sub/b.txt': 'beta', 'app/run.sh': { mode: 0o755, content: '#!/bin/sh\n' }, 'app/l': { link: 'a.txt' }, 'other.txt': 'o' };

  it('is the same for the same content whatever the mtimes and creation order', async () => {
    const one = tree(files);
    const reversed = tree(Object.fromEntries(Object.entries(files).reverse()));
    const when = new Date('2001-02-03T04:05:06Z');
    fs.utimesSync(path.join(reversed, 'app', 'a.txt'), when, when);
    fs.utimesSync(path.join(reversed, 'app', 'sub'), when, when);
    const a = await hashSources(await openContext(one, path.join(one, 'Dockerfile')), ['app']);
    const b = await hashSources(await openContext(reversed, path.join(reversed, 'Dockerfile')), ['app']);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
  });

  it('changes with bytes, modes, link targets and new files of the sources, not with other files', async () => {
    const dir = tree(files);
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    const seen = new Set<string>();
    const hash = async (): Promise<string> => {
      const h = await hashSources(ctx, ['app']);
      seen.add(h);
      return h;
    };
    const base = await hash();
    fs.writeFileSync(path.join(dir, 'other.txt'), 'not copied');
    expect(await hash()).toBe(base);
    fs.writeFileSync(path.join(dir, 'app', 'a.txt'), 'ALPHA');
    await hash();
    fs.chmodSync(path.join(dir, 'app', 'run.sh'), 0o700);
    await hash();
    fs.rmSync(path.join(dir, 'app', 'l'));
    fs.symlinkSync('sub/b.txt', path.join(dir, 'app', 'l'));
    await hash();
    fs.writeFileSync(path.join(dir, 'app', 'sub', 'new'), '');
    await hash();
    expect(seen.size).toBe(5);
  });

  it('covers exactly what COPY reads: .dockerignore, wildcards, --exclude', async () => {
    const dir = tree({ ...files, '.dockerignore': 'app/sub\n' });
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    const before = await hashSources(ctx, ['app', '*.txt']);
    fs.writeFileSync(path.join(dir, 'app', 'sub', 'b.txt'), 'ignored anyway');
    expect(await hashSources(ctx, ['app', '*.txt'])).toBe(before);
    fs.writeFileSync(path.join(dir, 'more.txt'), 'matched by *.txt');
    const withMore = await hashSources(ctx, ['app', '*.txt']);
    expect(withMore).not.toBe(before);
    const excluded = await hashSources(ctx, ['app', '*.txt'], { excludes: ['more.txt'] });
    expect(excluded).toBe(before);
    await expect(hashSources(ctx, ['app/sub/b.txt'])).rejects.toThrow('app/sub/b.txt: not found in the build context');
  });

  it('hands what it read to the COPY that follows (once), so the copy reads the same listing and bytes', async () => {
    const dir = tree(files);
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    await hashSources(ctx, ['app', 'https://example.invalid/x'], { excludes: ['*.sh'] });
    const first = readSources(ctx, ['app'], 'build context', ['*.sh']);
    expect(first.listed[0].entries.map((e) => e.rel)).toEqual(['a.txt', 'l', 'sub', 'sub/b.txt']);
    expect([...first.contents.values()].map(String).sort()).toEqual(['alpha', 'beta']);
    const again = readSources(ctx, ['app'], 'build context', ['*.sh']);
    expect(again.listed[0].entries.map((e) => e.rel)).toEqual(['a.txt', 'l', 'sub', 'sub/b.txt']);
    expect(again.contents.size).toBe(0);
  });

  it('reads large files streamed and small ones directly, with the same result', async () => {
    const big = Buffer.alloc(3 << 20, 7);
    const dir = tree({ 'big.bin': big.toString('latin1') });
    const ctx = await openContext(dir, path.join(dir, 'Dockerfile'));
    const first = await hashSources(ctx, ['big.bin']);
    fs.appendFileSync(path.join(dir, 'big.bin'), 'x');
    expect(await hashSources(ctx, ['big.bin'])).not.toBe(first);
  });
});
