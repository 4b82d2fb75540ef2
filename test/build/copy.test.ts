// COPY and ADD through real builds: sources, wildcards, destinations, --chown/--chmod/--from,
// heredocs, .dockerignore, --exclude and the context boundary (errors name the Dockerfile line).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entryLines, imageShape, makeContext, strata, tempDir, writeMemberTar, type TarMember } from '../helpers.js';

const root = tempDir('copy-store');
const out = tempDir('copy-out');
const contexts: string[] = [];
afterAll(() => {
  for (const dir of [root, out, ...contexts]) fs.rmSync(dir, { recursive: true, force: true });
});

const BASE = 'FROM scratch\nADD busybox-rootfs.tar /\n';

function context(dockerfile: string, files: Record<string, string> = {}): string {
  const ctx = makeContext(dockerfile, files);
  contexts.push(ctx);
  return ctx;
}

let builds = 0;
async function build(ctx: string, extra: string[] = []): Promise<{ code: number | null; stderr: string; archive: string }> {
  const archive = path.join(out, `image-${++builds}.tar`);
  const run = await strata(['build', '--root', root, '--progress', 'plain', ...extra, '--output', `type=oci,dest=${archive}`, ctx]);
  return { code: run.code, stderr: run.stderr, archive };
}

/** Entry lines of the layers after the busybox base. */
async function layersOf(ctx: string, extra: string[] = []): Promise<string[][]> {
  const run = await build(ctx, extra);
  expect(run.stderr).not.toContain('ERROR');
  expect(run.code).toBe(0);
  return imageShape(run.archive).layers.slice(1).map(entryLines);
}

/** A failing build: its exit code, the framed Dockerfile line and the message. */
async function failure(ctx: string, line: string, message: string): Promise<void> {
  const run = await build(ctx);
  expect(run.code).not.toBe(0);
  expect(run.stderr).toContain(`>>>${line}`);
  expect(run.stderr).toContain(`ERROR: ${message}`);
}

describe('COPY sources and destinations', () => {
  it('copies several sources, wildcards and directory contents, with and without a trailing slash', async () => {
    const ctx = context(`${BASE}COPY a.txt b.md /multi\nCOPY *.txt /glob/\nCOPY dir /contents\nCOPY a.txt /file\nCOPY a.txt /into/\nWORKDIR /w\nCOPY d?r/sub rel/\n`, {
      'a.txt': 'A', 'c.txt': 'CC', 'b.md': 'BBB', 'dir/top': 'T', 'dir/sub/x': 'XX',
    });
    const layers = await layersOf(ctx);
    expect(layers).toEqual([
      ['d 755 0:0 0 multi', 'f 644 0:0 1 multi/a.txt', 'f 644 0:0 3 multi/b.md'],
      ['d 755 0:0 0 glob', 'f 644 0:0 1 glob/a.txt', 'f 644 0:0 2 glob/c.txt'],
      ['d 755 0:0 0 contents', 'd 755 0:0 0 contents/sub', 'f 644 0:0 1 contents/top', 'f 644 0:0 2 contents/sub/x'].sort(),
      ['f 644 0:0 1 file'],
      ['d 755 0:0 0 into', 'f 644 0:0 1 into/a.txt'],
      ['d 755 0:0 0 w'],
      ['d 755 0:0 0 w', 'd 755 0:0 0 w/rel', 'f 644 0:0 2 w/rel/x'],
    ]);
  });

  it('--chown resolves names in the image (not the host), --chmod sets modes, --link is accepted', async () => {
    const ctx = context(
      `${BASE}RUN echo 'app:x:1000:1001::/home/app:/bin/sh' >> /etc/passwd && echo 'staff:x:50:' >> /etc/group\n` +
        'COPY --chown=app:staff f /o/named\nCOPY --chown=app f /p/primary\nCOPY --chown=7:8 --chmod=640 f /o/numeric\nCOPY --link --chmod=0755 dir /x/\n',
      { f: 'data', 'dir/s.sh': 'echo' },
    );
    const layers = await layersOf(ctx);
    expect(layers.slice(1)).toEqual([
      ['d 755 1000:50 0 o', 'f 644 1000:50 4 o/named'],
      ['d 755 1000:1001 0 p', 'f 644 1000:1001 4 p/primary'], // a missing parent belongs to the --chown owner
      ['d 755 1000:50 0 o', 'f 640 7:8 4 o/numeric'], // an existing parent keeps its owner
      ['d 755 0:0 0 x', 'f 755 0:0 4 x/s.sh'],
    ]);
  });

  it('--chown with a user the image lacks fails on its line', async () => {
    await failure(context(`${BASE}COPY --chown=nosuch f /f\n`, { f: 'x' }), '3 | COPY --chown=nosuch f /f', 'unable to find user nosuch');
  });

  it('--from copies from an earlier stage and from a stage index', async () => {
    const ctx = context(`${BASE.replace('FROM scratch', 'FROM scratch AS build')}RUN mkdir -p /out && echo built > /out/bin && chmod 700 /out/bin\nFROM scratch\nCOPY --from=build /out/bin /app/\nCOPY --from=0 /out /all\n`);
    const run = await build(ctx);
    expect(run.code).toBe(0);
    expect(imageShape(run.archive).layers.map(entryLines)).toEqual([
      ['d 755 0:0 0 app', 'f 700 0:0 6 app/bin'],
      ['d 755 0:0 0 all', 'f 700 0:0 6 all/bin'],
    ]);
  });

  it('--exclude leaves matching paths out, and ADD keeps extracting local archives only', async () => {
    const ctx = context(`${BASE}COPY --exclude=*.log --exclude=tmp dir/ /d/\n`, { 'dir/keep.txt': 'k', 'dir/drop.log': 'l', 'dir/tmp/x': 'x', 'dir/sub/deep.log': 'deep' });
    expect(await layersOf(ctx)).toEqual([['d 755 0:0 0 d', 'd 755 0:0 0 d/sub', 'f 644 0:0 1 d/keep.txt', 'f 644 0:0 4 d/sub/deep.log'].sort()]);
  });

  it('a source that matches nothing, a COPY of a URL and --parents fail on their line', async () => {
    await failure(context(`${BASE}COPY *.nothing /x/\n`), '3 | COPY *.nothing /x/', '*.nothing: no source files were specified');
    await failure(context(`${BASE}COPY http://example.invalid/f /x\n`), '3 | COPY http://example.invalid/f /x', "http://example.invalid/f: source can't be a URL for COPY");
    await failure(context(`${BASE}COPY --parents a/b /x/\n`, { 'a/b': '' }), '3 | COPY --parents a/b /x/', 'COPY --parents is not supported yet');
  });
});

describe('COPY heredocs', () => {
  it('writes heredocs as files: one to a path, several named by their delimiters, <<- strips tabs, quotes stop expansion', async () => {
    const dockerfile = `${BASE}ARG WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nCOPY <<-EOT <<'RAW' /docs/\n\tindented $WHO\n\tEOT\nraw $WHO\nRAW\nADD --chmod=755 <<EOF /run.sh\n#!/bin/sh\nEOF\n`;
    const ctx = context(dockerfile);
    const run = await build(ctx);
    expect(run.stderr).not.toContain('ERROR');
    const shape = imageShape(run.archive);
    expect(shape.layers.slice(1).map(entryLines)).toEqual([
      ['f 644 0:0 12 greeting'],
      ['d 755 0:0 0 docs', 'f 644 0:0 15 docs/EOT', 'f 644 0:0 9 docs/RAW'],
      ['f 755 0:0 10 run.sh'],
    ]);
    // contents, read back from the layers with an independent reader
    const dir = tempDir('heredoc-read');
    contexts.push(dir);
    const { execFileSync } = await import('node:child_process');
    execFileSync('sh', ['-c', `tar -xf ${run.archive} -C ${dir}`]);
    const texts = shape.layers.slice(1).map((layer) => {
      const blob = path.join(dir, 'blobs', 'sha256', layer.ref.replace(/^sha256:/, ''));
      return execFileSync('sh', ['-c', `tar -xzOf ${blob}`]).toString();
    });
    expect(texts).toEqual(['hello world\n', 'indented world\nraw $WHO\n', '#!/bin/sh\n']);
  });
});

describe('.dockerignore', () => {
  it('excluded files are not copied, exceptions re-include, the Dockerfile builds even when ignored', async () => {
    const ctx = context('FROM scratch\nCOPY . /app/\n', {
      '.dockerignore': '# build output\nDockerfile\n.dockerignore\nbusybox-rootfs.tar\n**/*.log\nnode_modules\n!node_modules/keep\n',
      'src/main.ts': 'main', 'src/debug.log': 'log', 'node_modules/dep/x.js': 'x', 'node_modules/keep/k.js': 'k',
    });
    fs.chmodSync(ctx, 0o750); // a created destination takes the source directory's mode
    const run = await build(ctx);
    expect(run.stderr).not.toContain('ERROR');
    const [layer] = imageShape(run.archive).layers.map(entryLines);
    expect(layer).toEqual(['d 750 0:0 0 app', 'd 755 0:0 0 app/node_modules', 'd 755 0:0 0 app/node_modules/keep', 'f 644 0:0 1 app/node_modules/keep/k.js', 'd 755 0:0 0 app/src', 'f 644 0:0 4 app/src/main.ts'].sort());
  });

  it('an ignored source is not found, on its line', async () => {
    const ctx = context(`${BASE}COPY Dockerfile /Dockerfile\n`, { '.dockerignore': 'Dockerfile\n' });
    await failure(ctx, '3 | COPY Dockerfile /Dockerfile', 'Dockerfile: not found in the build context');
  });

  it('<name>.dockerignore next to a -f Dockerfile replaces the context .dockerignore', async () => {
    const ctx = context('', { '.dockerignore': 'a\n', a: 'A', b: 'B', 'build/app.Dockerfile': `${BASE}COPY a b /o/\n`, 'build/app.Dockerfile.dockerignore': 'c\n', c: 'C' });
    expect(await layersOf(ctx, ['-f', path.join(ctx, 'build', 'app.Dockerfile')])).toEqual([['d 755 0:0 0 o', 'f 644 0:0 1 o/a', 'f 644 0:0 1 o/b']]);
    const again = context('', { '.dockerignore': 'a\n', a: 'A', 'build/app.Dockerfile': `${BASE}COPY a /o/\n`, 'build/app.Dockerfile.dockerignore': 'a\n' });
    const run = await build(again, ['-f', path.join(again, 'build', 'app.Dockerfile')]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('ERROR: a: not found in the build context');
  });
});

describe('context boundary', () => {
  it('refuses `..`, and symlinks that lead out of the context, naming the line', async () => {
    await failure(context(`${BASE}COPY sub/../../secret /x\n`, { 'sub/f': '' }), '3 | COPY sub/../../secret /x', 'sub/../../secret: forbidden path outside the build context');
    const ctx = context(`${BASE}COPY out/passwd /x\n`);
    fs.symlinkSync('/etc', path.join(ctx, 'out'));
    await failure(ctx, '3 | COPY out/passwd /x', 'out/passwd: symlink out -> /etc points outside the build context');
    const up = context(`${BASE}COPY up /x\n`);
    fs.symlinkSync('../..', path.join(up, 'up'));
    await failure(up, '3 | COPY up /x', 'up: symlink up -> ../.. points outside the build context');
  });

  it('copies symlinks inside a directory as symlinks and follows a source path through a symlink inside', async () => {
    const ctx = context(`${BASE}COPY tree /t/\nCOPY via/f /direct\nCOPY tree/link /followed\n`, { 'tree/f': 'file', 'tree/g': 'g' });
    fs.symlinkSync('f', path.join(ctx, 'tree', 'link'));
    fs.symlinkSync('/etc/shadow', path.join(ctx, 'tree', 'dangling')); // copied as a link, never read
    fs.symlinkSync('tree', path.join(ctx, 'via'));
    expect(await layersOf(ctx)).toEqual([
      ['d 755 0:0 0 t', 'l 777 0:0 0 t/dangling -> /etc/shadow', 'f 644 0:0 4 t/f', 'f 644 0:0 1 t/g', 'l 777 0:0 0 t/link -> f'].sort(),
      ['f 644 0:0 4 direct'],
      ['f 644 0:0 4 followed'],
    ]);
  });

  it('keeps hardlinks between copied files and source modes and owners become 0:0', async () => {
    const ctx = context(`${BASE}COPY h /h/\n`, { 'h/one': 'same' });
    fs.linkSync(path.join(ctx, 'h', 'one'), path.join(ctx, 'h', 'two'));
    fs.chownSync(path.join(ctx, 'h', 'one'), 123, 456);
    fs.chmodSync(path.join(ctx, 'h', 'one'), 0o4750);
    const run = await build(ctx);
    expect(run.code).toBe(0);
    const entries = imageShape(run.archive).layers[1].entries.map((e) => `${e.type} ${(Number(e.mode) & 0o7777).toString(8)} ${e.uid}:${e.gid} ${e.name}${e.link ? ` -> ${e.link}` : ''}`).sort();
    expect(entries).toEqual(['d 755 0:0 h', 'f 4750 0:0 h/one', 'h 4750 0:0 h/two -> h/one']);
  });
});

describe('ADD of an archive', () => {
  // The same members in name order (the layer is compressed while the archive is extracted) and
  // out of it (the layer is committed after): one layer, byte for byte.
  const members: TarMember[] = [
    { name: 'app', type: 'dir', mtime: 1000 },
    { name: 'app/bin', type: 'dir', mtime: 1100 },
    { name: 'app/bin/tool', data: '#!/bin/sh\necho tool\n', mtime: 2000 },
    { name: 'app/bin/tool2', type: 'hardlink', linkname: 'app/bin/tool', mtime: 2000 },
    { name: 'app/data', data: 'x'.repeat(100_000), mtime: 1400 },
    { name: 'app/link', type: 'symlink', linkname: 'bin/tool', mtime: 2000 },
    { name: 'etc', type: 'dir', mtime: 1200 },
    { name: 'etc/conf', data: 'k=v\n', mtime: 2000 },
  ];
  const unsorted = [6, 7, 0, 5, 4, 1, 2, 3].map((i) => members[i]);

  it('gives the same layer whatever the archive order, with directory mtimes from the archive', async () => {
    const diffIds: string[] = [];
    for (const order of [members, unsorted]) {
      const ctx = context('FROM scratch\nADD rootfs.tar /\n');
      writeMemberTar(path.join(ctx, 'rootfs.tar'), order);
      const archive = path.join(out, `add-order-${diffIds.length}.tar`);
      const run = await strata(['build', '--root', root, '--no-cache', '--progress', 'plain', '--output', `type=oci,dest=${archive}`, ctx], { env: { SOURCE_DATE_EPOCH: '1500' } });
      expect(run.code, run.stderr).toBe(0);
      const [layer] = imageShape(archive).layers;
      diffIds.push(layer.diff_id);
      // mtimes before SOURCE_DATE_EPOCH are kept (directories too, though their children came later);
      // later ones are clamped to it
      const mtimes = Object.fromEntries(layer.entries.map((e) => [e.name.replace(/\/$/, ''), (e as unknown as { mtime: number }).mtime]));
      expect(mtimes).toEqual({ app: 1000, 'app/bin': 1100, 'app/bin/tool': 1500, 'app/bin/tool2': 1500, 'app/data': 1400, 'app/link': 1500, etc: 1200, 'etc/conf': 1500 });
    }
    expect(diffIds[1]).toBe(diffIds[0]);
  });
});
