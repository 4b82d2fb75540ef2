// End-to-end builds on real overlay mounts through the CLI, read back with independent tools.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxTar, entryLines, imageShape, makeContext, overlayMountsUnder, peersDir, strata, tempDir } from '../helpers.js';

const root = tempDir('store');
const out = tempDir('out');
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

async function buildImage(name: string, dockerfile: string, files: Record<string, string> = {}): Promise<{ archive: string; digest: string; stderr: string }> {
  const ctx = makeContext(dockerfile, files);
  const archive = path.join(out, `${name}.tar`);
  const run = await strata(['build', '--root', root, '--progress', 'plain', '-t', `test/${name}:1`, '--output', `type=oci,dest=${archive}`, ctx]);
  fs.rmSync(ctx, { recursive: true, force: true });
  expect(run.stderr + run.stdout).not.toContain('ERROR');
  expect(run.code).toBe(0);
  return { archive, digest: run.stdout.trim().split('\n').pop()!, stderr: run.stderr };
}

/** Layers after the base, as sorted entry lines. */
const upperLayers = (archive: string): string[][] => imageShape(archive).layers.slice(1).map(entryLines);

describe('Docker classic builder fidelity (the peers cases)', () => {
  for (const name of ['seed-shape', 'multistage', 'metadata']) {
    it(`${name} matches Docker layer for layer`, async () => {
      const ctx = tempDir(name);
      fs.copyFileSync(path.join(peersDir, 'cases', name, 'Dockerfile'), path.join(ctx, 'Dockerfile'));
      fs.linkSync(busyboxTar, path.join(ctx, 'busybox-rootfs.tar'));
      const archive = path.join(out, `peers-${name}.tar`);
      const run = await strata(['build', '--root', root, '--progress', 'plain', '--output', `type=oci,dest=${archive}`, ctx]);
      expect(run.stderr).not.toContain('ERROR');
      expect(run.code).toBe(0);
      const cmp = execFileSync('python3', [path.join(peersDir, 'layers-vs-ref.py'), archive, path.join(peersDir, 'refs', `${name}.docker-ref.json`)]).toString();
      expect(cmp).toContain('MATCH');
    });
  }
});

describe('layer shapes', () => {
  it('builds the seed 004 shape: FROM scratch + ADD root.tar.gz + RUNs + CMD gives 3 layers', async () => {
    const ctxFiles = {};
    const ctx = makeContext('FROM scratch\nADD root.tar.gz /\nRUN echo one > /one\nRUN true\nRUN rm /bin/ls && echo two > /two\nCMD ["/bin/sh"]\n', ctxFiles);
    fs.writeFileSync(path.join(ctx, 'root.tar.gz'), zlib.gzipSync(fs.readFileSync(busyboxTar)));
    const archive = path.join(out, 'seed004.tar');
    const run = await strata(['build', '--root', root, '--output', `type=oci,dest=${archive}`, ctx]);
    expect(run.code).toBe(0);
    const shape = imageShape(archive);
    expect(shape.layers).toHaveLength(3);
    expect(shape.history.map((h) => Boolean(h.empty_layer))).toEqual([false, false, true, false, true]);
    expect(shape.layers[0].entries.find((e) => e.name === 'bin/busybox')?.size).toBe(fs.statSync('/bin/busybox').size);
    expect(entryLines(shape.layers[1])).toEqual(['f 644 0:0 4 one']);
    expect(entryLines(shape.layers[2])).toEqual(['d 755 0:0 0 bin', 'f 600 0:0 0 bin/.wh.ls', 'f 644 0:0 4 two']);
    expect(shape.config.config.Cmd).toEqual(['/bin/sh']);
    expect(shape.diff_ids).toEqual(shape.layers.map((l) => l.diff_id));
  });

  it('ADD extracts bzip2 and xz archives too, and copies a non-archive file as it is', async () => {
    const ctx = makeContext('FROM scratch\nADD root.tar.bz2 /\nADD extra.tar.xz /opt/\nADD notes.txt /opt/\n', { 'notes.txt': 'plain\n' });
    execFileSync('sh', ['-c', `bzip2 -c ${busyboxTar} > ${ctx}/root.tar.bz2 && mkdir ${ctx}/x && echo hi > ${ctx}/x/hello && tar -C ${ctx}/x --owner=7 --group=8 -cJf ${ctx}/extra.tar.xz hello`]);
    const archive = path.join(out, 'add-archives.tar');
    const run = await strata(['build', '--root', root, '--output', `type=oci,dest=${archive}`, ctx]);
    expect(run.stderr).not.toContain('ERROR');
    const shape = imageShape(archive);
    expect(shape.layers[0].entries.length).toBeGreaterThan(250);
    expect(entryLines(shape.layers[1])).toEqual(['d 755 0:0 0 opt', 'f 644 7:8 3 opt/hello']);
    expect(entryLines(shape.layers[2])).toEqual(['d 755 0:0 0 opt', 'f 644 0:0 6 opt/notes.txt']);
  });

  it('runs RUN heredocs: a script body, a body fed to a command, a quoted delimiter without expansion', async () => {
    const { archive } = await buildImage('heredoc', "FROM scratch\nADD busybox-rootfs.tar /\nRUN <<EOF\necho script > /a\necho two >> /a\nEOF\nRUN cat <<A > /b && cat <<'B' > /c\nhome=$HOME\nA\nliteral $HOME\nB\n");
    expect(upperLayers(archive)).toEqual([['f 644 0:0 11 a'], ['f 644 0:0 11 b', 'f 644 0:0 14 c']]);
  });

  it('upper layers take precedence over lower ones', async () => {
    const { archive } = await buildImage('precedence', 'FROM scratch\nADD busybox-rootfs.tar /\nRUN echo 1 > /f\nRUN echo 2 > /f\nRUN cat /f > /seen\n');
    expect(upperLayers(archive)).toEqual([['f 644 0:0 2 f'], ['f 644 0:0 2 f'], ['f 644 0:0 2 seen']]);
    const bundle = tempDir('bundle');
    execFileSync('sh', ['-c', `skopeo copy -q oci-archive:${archive} oci:${bundle}/layout:t && umoci unpack --image ${bundle}/layout:t ${bundle}/b >/dev/null`]);
    expect(fs.readFileSync(path.join(bundle, 'b/rootfs/seen'), 'utf8')).toBe('2\n');
    fs.rmSync(bundle, { recursive: true, force: true });
  });

  it('a hardlink pair modified through one name: copy-up breaks the link, the lower layer keeps both', async () => {
    const { archive } = await buildImage('hardlink', 'FROM scratch\nADD busybox-rootfs.tar /\nRUN echo a > /h1 && ln /h1 /h2\nRUN echo b >> /h1\n');
    const [first, second] = upperLayers(archive);
    expect(first).toEqual(['f 644 0:0 2 h1', 'h 644 0:0 0 h2 -> h1']);
    expect(second).toEqual(['f 644 0:0 4 h1']);
  });

  it('mv of a lower directory becomes a whiteout plus a full copy (no redirect_dir)', async () => {
    const { archive } = await buildImage('mvdir', 'FROM scratch\nADD busybox-rootfs.tar /\nRUN mkdir -p /d/sub && echo x > /d/sub/f\nRUN mv /d /e\n');
    expect(upperLayers(archive)[1]).toEqual(['d 755 0:0 0 e', 'd 755 0:0 0 e/sub', 'f 600 0:0 0 .wh.d', 'f 644 0:0 2 e/sub/f']);
  });

  it('a deleted file, a directory replaced by a file and a file replaced by a directory', async () => {
    const { archive } = await buildImage('replace', 'FROM scratch\nADD busybox-rootfs.tar /\nRUN mkdir /d && echo x > /d/f && echo y > /x && echo z > /gone\nRUN rm -r /d /x /gone && echo file > /d && mkdir /x && echo in > /x/y\n');
    expect(upperLayers(archive)[1]).toEqual(['d 755 0:0 0 x', 'f 600 0:0 0 .wh.gone', 'f 644 0:0 3 x/y', 'f 644 0:0 5 d', 'f 755 0:0 0 x/.wh..wh..opq']);
  });

  it('keeps suid bits, owners, symlinks and fifos', async () => {
    const { archive } = await buildImage('attrs', 'FROM scratch\nADD busybox-rootfs.tar /\nRUN echo s > /s && chown 12:34 /s && chmod 4755 /s && ln -s /s /link && mkfifo /fifo && echo c > /cap\n');
    const layer = imageShape(archive).layers[1];
    expect(entryLines(layer)).toEqual(['f 4755 12:34 2 s', 'f 644 0:0 2 cap', 'l 777 0:0 0 link -> /s', 'p 644 0:0 0 fifo']);
  });
});

describe('failures leave nothing behind', () => {
  it('a failing RUN fails the build with its exit code, output and the Dockerfile frame', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo before-failure && exit 3\nCMD ["/bin/sh"]\n');
    const failRoot = tempDir('failstore');
    const run = await strata(['build', '--root', failRoot, '-t', 'test/fail:1', ctx]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Dockerfile:3/);
    expect(run.stderr).toContain('>>>3 | RUN echo before-failure && exit 3');
    expect(run.stderr).toContain('before-failure');
    expect(run.stderr).toMatch(/exit code: 3/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fs.readdirSync(path.join(failRoot, 'tmp'))).toEqual([]);
    expect(fs.readdirSync(path.join(failRoot, 'tags'))).toEqual([]);
    // the ADD layer that did succeed is kept, complete
    expect(fs.readdirSync(path.join(failRoot, 'layers'))).toHaveLength(1);
    fs.rmSync(failRoot, { recursive: true, force: true });
  });

  it('SIGKILL of the builder mid-RUN leaves no mount and no sandbox process', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo started && sleep 600\n');
    const killRoot = tempDir('killstore');
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [path.join(import.meta.dirname, '..', '..', 'bin', 'strata.js'), 'build', '--root', killRoot, '--progress', 'plain', ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (d) => (output += d));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`RUN did not start: ${output}`)), 30_000);
      const timer = setInterval(() => {
        if (output.includes('started') && mountsInAnyNamespace(killRoot).length > 0) {
          clearInterval(timer);
          clearTimeout(deadline);
          resolve();
        }
      }, 50);
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    let left: string[] = [];
    for (let i = 0; i < 100; i++) {
      left = mountsInAnyNamespace(killRoot);
      if (left.length === 0 && !sandboxAlive(killRoot)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toEqual([]);
    expect(sandboxAlive(killRoot)).toBe(false);
    expect(overlayMountsUnder(killRoot)).toEqual([]);
    // the next strata command cleans the dead build's temp dir
    await strata(['images', '--root', killRoot]);
    expect(fs.readdirSync(path.join(killRoot, 'tmp'))).toEqual([]);
    fs.rmSync(killRoot, { recursive: true, force: true });
  });
});

describe('context boundaries', () => {
  it('a COPY source outside the context is refused with the Dockerfile line', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nCOPY ../secret /x\n');
    const run = await strata(['build', '--root', root, ctx]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('>>>3 | COPY ../secret /x');
    expect(run.stderr).toContain('ERROR: ../secret: forbidden path outside the build context');
  });
});

describe('interrupts', () => {
  it('SIGTERM mid-RUN stops the build with a one-line reason and leaves no temp dir or mount', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo started && sleep 600\n');
    const termRoot = tempDir('termstore');
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [path.join(import.meta.dirname, '..', '..', 'bin', 'strata.js'), 'build', '--root', termRoot, '--progress', 'plain', '-t', 'test/term:1', ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (d) => (output += d));
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (output.includes('started')) {
          clearInterval(timer);
          resolve();
        }
      }, 50);
    });
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).not.toBe(0);
    expect(output).toContain('SIGTERM received');
    expect(output).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(path.join(termRoot, 'tmp'))).toEqual([]);
    expect(fs.readdirSync(path.join(termRoot, 'tags'))).toEqual([]);
    expect(mountsInAnyNamespace(termRoot)).toEqual([]);
    fs.rmSync(termRoot, { recursive: true, force: true });
  });
});

/** Overlay mounts of a store seen from any process's mount namespace (the sandbox's is private). */
function mountsInAnyNamespace(storeRoot: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
        if (line.includes(' overlay ') && line.includes(storeRoot)) found.push(`${pid}: ${line}`);
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

function sandboxAlive(storeRoot: string): boolean {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(storeRoot);
    } catch {
      return false;
    }
  });
}
