// The exporters of `strata build -o`: the flattened root filesystem as a directory (type=local, or a
// bare DIR) and as a tar (type=tar, `-o -` to stdout), and the OCI / docker archives streamed to
// stdout. Whiteouts and opaque directories of later layers must be applied, not copied.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageShape, makeContext, strataBin, tempDir, strata, type Run } from '../helpers.js';

const root = tempDir('outputs-store');
const out = tempDir('outputs-out');
const cleanup: string[] = [root, out];
afterAll(() => {
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
});

function expectOk(run: Run): void {
  if (run.code !== 0) throw new Error(`strata exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
}

/** strata with stdout kept as bytes (an archive). */
function strataBytes(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [strataBin, ...args]);
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(chunks), stderr }));
  });
}

// Layer 2 writes what layer 3 deletes (a file, a directory with content) or hides (opaque /srv).
const DOCKERFILE = [
  'FROM scratch',
  'ADD busybox-rootfs.tar /',
  'RUN mkdir -p /srv/keep /gone/deep && echo old > /srv/old && echo x > /gone/deep/x && echo l > /srv/keep/l',
  'RUN rm /bin/ls && rm -rf /gone /srv && mkdir /srv && echo new > /srv/new && chown 1000:1000 /srv/new && chmod 0640 /srv/new',
  'RUN echo a > /a && ln /a /a-link && ln -s /srv/new /new-link',
  '',
].join('\n');

/** "type mode uid:gid size path[ -> target]" for every entry under dir, as find reports it. */
function treeOf(dir: string): string[] {
  return execFileSync('find', ['.', '-mindepth', '1', '-printf', '%y %m %U:%G %s %P -> %l\\n'], { cwd: dir }).toString().split('\n').filter(Boolean)
    .map((l) => l.replace(/ -> $/, '').replace(/^d (\d+ \d+:\d+) \d+/, 'd $1 -').replace(/^l (\d+ \d+:\d+) \d+/, 'l $1 0')).sort();
}

/** The same description for a tar's entries, from Python's tarfile (an independent reader). */
function tarTreeOf(archive: string): string[] {
  const script = `
import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    kind = 'd' if m.isdir() else 'l' if m.issym() else 'f'
    size = '-' if m.isdir() else (0 if m.issym() else m.size)
    link = ' -> ' + m.linkname if m.issym() else ''
    if m.islnk():
        kind, size = 'f', 2
    print(f"{kind} {m.mode & 0o7777:o} {m.uid}:{m.gid} {size} {m.name}{link}")
`;
  return execFileSync('python3', ['-c', script, archive]).toString().trim().split('\n').sort();
}

describe('rootfs exporters', () => {
  const ctx = makeContext(DOCKERFILE);
  cleanup.push(ctx);
  const local = path.join(out, 'local');
  const bare = path.join(out, 'bare');
  const tarFile = path.join(out, 'rootfs.tar');

  beforeAll(async () => {
    expectOk(await strata(['build', '--root', root, '-q', '-o', `type=local,dest=${local}`, '-o', bare, '-o', `type=tar,dest=${tarFile}`, ctx]));
  });

  it('type=local: the layers applied in order, whiteouts and opaque directories honoured', () => {
    expect(fs.existsSync(path.join(local, 'bin', 'busybox'))).toBe(true);
    expect(fs.existsSync(path.join(local, 'bin', 'ls'))).toBe(false); // whiteout
    expect(fs.existsSync(path.join(local, 'gone'))).toBe(false); // whiteout of a directory with content
    expect(fs.readdirSync(path.join(local, 'srv'))).toEqual(['new']); // opaque: old and keep/ hidden
    const st = fs.statSync(path.join(local, 'srv', 'new'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect(fs.statSync(path.join(local, 'a')).ino).toBe(fs.statSync(path.join(local, 'a-link')).ino);
    expect(fs.readlinkSync(path.join(local, 'new-link'))).toBe('/srv/new');
    const names = execFileSync('find', ['.', '-name', '.wh.*'], { cwd: local }).toString();
    expect(names).toBe(''); // no marker is left behind
  });

  it('a bare -o DIR is type=local; type=tar holds the same tree as the directory', () => {
    expect(treeOf(bare)).toEqual(treeOf(local));
    const tarTree = tarTreeOf(tarFile);
    expect(tarTree).toEqual(treeOf(local));
    expect(tarTree).toContain('f 640 1000:1000 4 srv/new');
    expect(tarTree.filter((l) => l.includes('.wh.'))).toEqual([]);
  });

  it('-o - streams the same rootfs tar on stdout, and nothing else: no digest, progress on stderr', async () => {
    const run = await strataBytes(['build', '--root', root, '--progress', 'plain', '-o', '-', ctx]);
    expect(run.code).toBe(0);
    const streamed = path.join(out, 'streamed.tar');
    fs.writeFileSync(streamed, run.stdout);
    expect(run.stdout.equals(fs.readFileSync(tarFile))).toBe(true);
    expect(run.stderr).toContain('exported tar to stdout');
    expect(run.stderr).toMatch(/built sha256:[0-9a-f]{64}/);
  });

  it('the local exporter keeps what the directory held and never writes outside it', async () => {
    const dest = path.join(out, 'existing');
    fs.mkdirSync(path.join(dest, 'srv'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'mine.txt'), 'kept\n');
    fs.symlinkSync(out, path.join(dest, 'escape')); // an image entry under escape/ must not follow it
    const escaping = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN mkdir /escape && echo e > /escape/outside\n');
    cleanup.push(escaping);
    const run = await strata(['build', '--root', root, '-q', '-o', dest, escaping]);
    expectOk(run);
    expect(fs.readFileSync(path.join(dest, 'mine.txt'), 'utf8')).toBe('kept\n');
    expect(fs.lstatSync(path.join(dest, 'escape')).isDirectory()).toBe(true); // the image's directory replaced the link
    expect(fs.existsSync(path.join(out, 'outside'))).toBe(false);
  });
});

describe('archives on stdout', () => {
  const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo streamed > /s\n');
  cleanup.push(ctx);

  it('type=oci,dest=- and type=docker,dest=- write the same archive as to a file', async () => {
    for (const type of ['oci', 'docker']) {
      const file = path.join(out, `${type}.tar`);
      expectOk(await strata(['build', '--root', root, '-q', '-t', 'out/streamed:1', '-o', `type=${type},dest=${file}`, ctx]));
      const run = await strataBytes(['build', '--root', root, '-q', '-t', 'out/streamed:1', '-o', `type=${type},dest=-`, ctx]);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout.equals(fs.readFileSync(file))).toBe(true);
    }
    const shape = imageShape(path.join(out, 'oci.tar'));
    expect(shape.layers[1].entries.map((e) => e.name)).toEqual(['s']);
  });
});
