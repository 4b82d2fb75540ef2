// The step cache, exported caches, ONBUILD triggers and parallel stages, through real builds.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startRegistry } from '../registry-server.js';
import { imageShape, makeContext, strata, strataBin, tempDir, type Run } from '../helpers.js';

const dirs: string[] = [];
const temp = (label: string): string => {
  const dir = tempDir(label);
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

type Event = { type: string; step?: number; instruction?: string; stage?: string; cached?: boolean; text?: string; message?: string };

function events(run: Run): Event[] {
  expect(run.code, run.stderr).toBe(0);
  // progress goes to stderr (stdout carries only the digest, as with buildx)
  return run.stderr.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Event);
}

/** "instruction -> CACHED|RAN|CONFIG" for every step of a rawjson build */
function stepOutcomes(run: Run): string[] {
  const evs = events(run);
  return evs.filter((e) => e.type === 'step-start').map((start) => {
    const done = evs.find((e) => e.type === 'step-done' && e.step === start.step)!;
    const fs = /^(RUN|COPY|ADD|WORKDIR)\b/.test(start.instruction!);
    return `${start.instruction} -> ${!fs ? 'CONFIG' : done.cached ? 'CACHED' : 'RAN'}`;
  });
}

const digestOf = (run: Run): string => /sha256:[0-9a-f]{64}\s*$/.exec(run.stdout)![0].trim();

const build = (root: string, ctx: string, ...extra: string[]): Promise<Run> =>
  strata(['build', '--root', root, '--progress', 'rawjson', ...extra, ctx]);

const runSteps = `FROM scratch
ADD busybox-rootfs.tar /
RUN echo one > /one
RUN true
LABEL stage=one
RUN date +%s%N > /stamp
WORKDIR /app
CMD ["sh"]
`;

describe('local step cache', () => {
  it('an unchanged rebuild hits the cache for every filesystem step and gives the same digest', async () => {
    const root = temp('root');
    const ctx = makeContext(runSteps);
    dirs.push(ctx);
    const first = await build(root, ctx);
    expect(stepOutcomes(first).filter((s) => s.endsWith('CACHED'))).toEqual([]);
    const second = await build(root, ctx);
    expect(stepOutcomes(second)).toEqual([
      'ADD busybox-rootfs.tar / -> CACHED',
      'RUN echo one > /one -> CACHED',
      'RUN true -> CACHED',
      'LABEL stage=one -> CONFIG',
      'RUN date +%s%N > /stamp -> CACHED',
      'WORKDIR /app -> CACHED',
      'CMD ["sh"] -> CONFIG',
    ]);
    // /stamp differs on every run: equal digests prove the layer was reused, not rebuilt
    expect(digestOf(second)).toBe(digestOf(first));
  });

  it('a changed instruction reruns from that step on; metadata changes keep the cache', async () => {
    const root = temp('root');
    const ctx = makeContext(runSteps);
    dirs.push(ctx);
    await build(root, ctx);
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), runSteps.replace('LABEL stage=one', 'LABEL stage=two').replace('RUN true', 'RUN true && true'));
    expect(stepOutcomes(await build(root, ctx))).toEqual([
      'ADD busybox-rootfs.tar / -> CACHED',
      'RUN echo one > /one -> CACHED',
      'RUN true && true -> RAN',
      'LABEL stage=two -> CONFIG',
      // RUN true && true made no layer: the parent chain is unchanged, so the next step still hits
      'RUN date +%s%N > /stamp -> CACHED',
      'WORKDIR /app -> CACHED',
      'CMD ["sh"] -> CONFIG',
    ]);
  });

  it('a one-file change reruns only from the step that copies it; ignored files and mtimes change nothing', async () => {
    const root = temp('root');
    const ctx = makeContext(`FROM scratch
ADD busybox-rootfs.tar /
RUN echo 1 > /s1
COPY a.txt /a.txt
RUN echo 3 > /s3
RUN echo 4 > /s4
COPY b.txt /b.txt
RUN cat /b.txt > /s6
COPY dir /dir
RUN echo 8 > /s8
`, { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/c.txt': 'c\n', 'dir/ignored.log': 'x\n', '.dockerignore': '**/*.log\n' });
    dirs.push(ctx);
    await build(root, ctx);
    // an ignored file's content, and every mtime, are not inputs
    fs.writeFileSync(path.join(ctx, 'dir/ignored.log'), 'changed\n');
    for (const f of ['a.txt', 'b.txt', 'dir/c.txt', 'dir']) fs.utimesSync(path.join(ctx, f), new Date(2020, 0, 1), new Date(2020, 0, 1));
    expect(stepOutcomes(await build(root, ctx)).filter((s) => s.endsWith('RAN'))).toEqual([]);
    fs.writeFileSync(path.join(ctx, 'b.txt'), 'B\n');
    expect(stepOutcomes(await build(root, ctx))).toEqual([
      'ADD busybox-rootfs.tar / -> CACHED',
      'RUN echo 1 > /s1 -> CACHED',
      'COPY a.txt /a.txt -> CACHED',
      'RUN echo 3 > /s3 -> CACHED',
      'RUN echo 4 > /s4 -> CACHED',
      'COPY b.txt /b.txt -> RAN',
      'RUN cat /b.txt > /s6 -> RAN',
      'COPY dir /dir -> RAN',
      'RUN echo 8 > /s8 -> RAN',
    ]);
    // a mode change of a copied file is an input too
    fs.chmodSync(path.join(ctx, 'dir/c.txt'), 0o600);
    expect(stepOutcomes(await build(root, ctx)).filter((s) => s.endsWith('RAN'))).toEqual(['COPY dir /dir -> RAN', 'RUN echo 8 > /s8 -> RAN']);
  });

  it('ENV and build args the step sees are part of the key', async () => {
    const root = temp('root');
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nARG V=1\nRUN echo $V > /v\n');
    dirs.push(ctx);
    await build(root, ctx);
    expect(stepOutcomes(await build(root, ctx, '--build-arg', 'V=1')).at(-1)).toBe('RUN echo $V > /v -> CACHED');
    expect(stepOutcomes(await build(root, ctx, '--build-arg', 'V=2')).at(-1)).toBe('RUN echo $V > /v -> RAN');
  });

  it('--no-cache runs every step; --no-cache-filter only the named stage', async () => {
    const root = temp('root');
    const ctx = makeContext('FROM scratch AS base\nADD busybox-rootfs.tar /\nRUN echo b > /b\nFROM base AS final\nRUN echo f > /f\n');
    dirs.push(ctx);
    await build(root, ctx);
    expect(stepOutcomes(await build(root, ctx, '--no-cache')).filter((s) => s.endsWith('CACHED'))).toEqual([]);
    expect(stepOutcomes(await build(root, ctx, '--no-cache-filter', 'final'))).toEqual([
      'ADD busybox-rootfs.tar / -> CACHED',
      'RUN echo b > /b -> CACHED',
      'RUN echo f > /f -> RAN',
    ]);
  });

  it('strata plan shows the steps the cache will answer', async () => {
    const root = temp('root');
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo a > /a\nENV X=1\n');
    dirs.push(ctx);
    const before = await strata(['plan', '--root', root, '--json', ctx]);
    expect(before.code, before.stderr).toBe(0);
    expect((JSON.parse(before.stdout) as { steps: { cached?: boolean }[] }).steps.map((s) => s.cached)).toEqual([false, undefined, undefined]);
    await build(root, ctx);
    const after = await strata(['plan', '--root', root, '--json', ctx]);
    expect((JSON.parse(after.stdout) as { steps: { cached?: boolean }[] }).steps.map((s) => s.cached)).toEqual([true, true, undefined]);
    const text = await strata(['plan', '--root', root, ctx]);
    expect(text.stdout).toMatch(/Dockerfile:3\s+CACHED\s+RUN echo a > \/a/);
  });
});

describe('exported cache', () => {
  it('type=local: a second empty store builds without running any step', async () => {
    const ctx = makeContext(runSteps);
    dirs.push(ctx);
    const cacheDir = path.join(temp('cache'), 'c');
    const first = await build(temp('root'), ctx, '--cache-to', `type=local,dest=${cacheDir},mode=max`);
    const second = await build(temp('root'), ctx, '--cache-from', `type=local,src=${cacheDir}`);
    expect(stepOutcomes(second).filter((s) => s.endsWith('RAN'))).toEqual([]);
    expect(digestOf(second)).toBe(digestOf(first));
    // the image is whole in the second store: its layers export and read back
    const out = path.join(temp('out'), 'img.tar');
    const third = await build(temp('root'), ctx, '--cache-from', `type=local,src=${cacheDir}`, '-o', `type=oci,dest=${out}`);
    expect(digestOf(third)).toBe(digestOf(first));
    expect(imageShape(out).layers.flatMap((l) => l.entries.map((e) => e.name))).toEqual(expect.arrayContaining(['one', 'stamp', 'app']));
  });

  it('a corrupted blob in the exported cache is refused and the step runs instead', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo one > /one\n');
    dirs.push(ctx);
    const cacheDir = path.join(temp('cache'), 'c');
    await build(temp('root'), ctx, '--cache-to', `type=local,dest=${cacheDir}`);
    const blobs = path.join(cacheDir, 'blobs', 'sha256');
    // the smallest layer blob is the RUN's; flip a byte in it
    const smallest = fs.readdirSync(blobs).map((n) => path.join(blobs, n)).filter((f) => fs.statSync(f).size < 400 && fs.readFileSync(f)[0] === 0x1f)
      .sort((a, b) => fs.statSync(a).size - fs.statSync(b).size)[0];
    const bytes = fs.readFileSync(smallest);
    bytes[bytes.length - 5] ^= 0xff;
    fs.writeFileSync(smallest, bytes);
    const run = await build(temp('root'), ctx, '--cache-from', `type=local,src=${cacheDir}`);
    expect(stepOutcomes(run)).toEqual(['ADD busybox-rootfs.tar / -> CACHED', 'RUN echo one > /one -> RAN']);
    expect(events(run).some((e) => e.type === 'note' && /wrong content|does not match/.test(e.message ?? ''))).toBe(true);
  });

  it('type=registry: two empty stores share the cache through a real registry', async () => {
    const registry = await startRegistry();
    try {
      const ctx = makeContext(runSteps);
      dirs.push(ctx);
      const ref = `${registry.host}/team/app-cache:main`;
      const first = await build(temp('root'), ctx, '--cache-to', `type=registry,ref=${ref},mode=max`);
      expect(events(first).some((e) => e.type === 'export' && /cache/.test(String((e as { kind?: string }).kind)))).toBe(true);
      const second = await build(temp('root'), ctx, '--cache-from', `type=registry,ref=${ref}`);
      expect(stepOutcomes(second).filter((s) => s.endsWith('RAN'))).toEqual([]);
      expect(digestOf(second)).toBe(digestOf(first));
      // a ref with no cache yet is the first CI run: a note, and the build runs every step
      const fresh = await build(temp('root'), ctx, '--cache-from', `type=registry,ref=${registry.host}/team/none:main`);
      expect(events(fresh).some((e) => e.type === 'note' && /not found/.test(e.message ?? ''))).toBe(true);
      expect(stepOutcomes(fresh).filter((s) => s.endsWith('CACHED'))).toEqual([]);
    } finally {
      await registry.stop();
    }
  });

  it('a missing cache source is a note, not an error', async () => {
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\n');
    dirs.push(ctx);
    const run = await build(temp('root'), ctx, '--cache-from', `type=local,src=${path.join(temp('none'), 'missing')}`);
    expect(events(run).some((e) => e.type === 'note' && /not found/.test(e.message ?? ''))).toBe(true);
  });
});

describe('ONBUILD', () => {
  it('triggers of a base stage run at the start of the stage built on it, and are not inherited further', async () => {
    const root = temp('root');
    const out = path.join(temp('out'), 'img.tar');
    const ctx = makeContext(`FROM scratch AS base
ADD busybox-rootfs.tar /
ONBUILD RUN echo triggered > /from-trigger
ONBUILD ENV FROM_TRIGGER=yes
FROM base
RUN cat /from-trigger > /copy-of-trigger
`);
    dirs.push(ctx);
    const run = await build(root, ctx, '-o', `type=oci,dest=${out}`);
    const outcomes = stepOutcomes(run);
    expect(outcomes).toEqual([
      'ADD busybox-rootfs.tar / -> RAN',
      'ONBUILD RUN echo triggered > /from-trigger -> CONFIG',
      'ONBUILD ENV FROM_TRIGGER=yes -> CONFIG',
      // the triggers, run at the FROM line of the stage built on the base
      'RUN echo triggered > /from-trigger -> RAN',
      'ENV FROM_TRIGGER=yes -> CONFIG',
      'RUN cat /from-trigger > /copy-of-trigger -> RAN',
    ]);
    expect(events(run).filter((e) => e.type === 'step-start').map((e) => (e as { line?: number }).line)).toEqual([2, 3, 4, 5, 5, 6]);
    const shape = imageShape(out);
    expect(shape.config.config.OnBuild ?? null).toBeNull(); // Docker writes null once the triggers ran
    expect(shape.config.config.Env).toContain('FROM_TRIGGER=yes');
    const names = shape.layers.map((l) => l.entries.map((e) => `${e.name}:${e.size}`));
    expect(names.slice(1)).toEqual([['from-trigger:10'], ['copy-of-trigger:10']]);
    expect(shape.history.map((h) => h.created_by)).toContain('RUN echo triggered > /from-trigger');
  });

  it('a trigger that fails names the FROM line of the stage', async () => {
    const ctx = makeContext('FROM scratch AS base\nADD busybox-rootfs.tar /\nONBUILD RUN exit 3\n\nFROM base\nRUN true\n');
    dirs.push(ctx);
    const run = await strata(['build', '--root', temp('root'), '--progress', 'plain', ctx]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Dockerfile:5/);
    expect(run.stderr).toMatch(/exit code: 3/);
  });
});

describe('parallel stages', () => {
  it('independent stages run at the same time; the final stage waits for both', async () => {
    const ctx = makeContext(`FROM scratch AS base
ADD busybox-rootfs.tar /
FROM base AS left
RUN sleep 1 && echo left > /left
FROM base AS right
RUN sleep 1 && echo right > /right
FROM base
COPY --from=left /left /left
COPY --from=right /right /right
`);
    dirs.push(ctx);
    const out = path.join(temp('out'), 'img.tar');
    const run = await build(temp('root'), ctx, '-o', `type=oci,dest=${out}`);
    const evs = events(run);
    const startOf = (stage: string) => evs.findIndex((e) => e.type === 'step-start' && e.stage === stage);
    const doneOf = (stage: string) => {
      const step = evs.find((e) => e.type === 'step-start' && e.stage === stage)!.step;
      return evs.findIndex((e) => e.type === 'step-done' && e.step === step);
    };
    // each sleeping RUN starts before the other one finishes
    expect(startOf('right')).toBeLessThan(doneOf('left'));
    expect(startOf('left')).toBeLessThan(doneOf('right'));
    expect(startOf('3')).toBeGreaterThan(Math.max(doneOf('left'), doneOf('right')));
    expect(imageShape(out).layers.slice(1).map((l) => l.entries.map((e) => e.name))).toEqual([['left'], ['right']]);
  });

  it('a failing stage stops the others and leaves no temp dir or mount', async () => {
    const root = temp('root');
    const ctx = makeContext(`FROM scratch AS base
ADD busybox-rootfs.tar /
FROM base AS slow
RUN sleep 30
FROM base AS bad
RUN exit 7
FROM base
COPY --from=slow /etc/passwd /a
COPY --from=bad /etc/passwd /b
`);
    dirs.push(ctx);
    const started = Date.now();
    const run = await strata(['build', '--root', root, '--progress', 'plain', ctx]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Dockerfile:6/);
    expect(run.stderr).toMatch(/exit code: 7/);
    expect(Date.now() - started).toBeLessThan(25_000); // the sleeping stage was stopped, not awaited
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
  });
});

describe('reproducible digests and strata diff', () => {
  const dockerfile = 'FROM scratch\nADD busybox-rootfs.tar /\nCOPY app /app\nRUN cat /app/a /app/sub/b > /joined\n';
  const files = { 'app/a': 'alpha\n', 'app/sub/b': 'beta\n' };

  it('two stores, different context mtimes and umask: the same manifest digest', async () => {
    const one = makeContext(dockerfile, files);
    const two = makeContext(dockerfile, files);
    dirs.push(one, two);
    for (const f of ['app/a', 'app/sub/b', 'app/sub', 'app']) fs.utimesSync(path.join(two, f), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const first = await build(temp('root'), one);
    // umask 077 for the second build: files the build creates must not inherit it
    const second = spawnSync('sh', ['-c', 'umask 077 && exec "$0" "$@"', process.execPath, strataBin, 'build', '--root', temp('root'), '-q', two], { encoding: 'utf8' });
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe(digestOf(first));
  });

  it('strata diff shows the entry that differs, and exits 1', async () => {
    const root = temp('root');
    const ctx = makeContext(dockerfile, files);
    dirs.push(ctx);
    expect((await strata(['build', '--root', root, '-q', '-t', 'repro:a', ctx])).code).toBe(0);
    fs.writeFileSync(path.join(ctx, 'app/sub/b'), 'BETA\n');
    expect((await strata(['build', '--root', root, '-q', '-t', 'repro:b', ctx])).code).toBe(0);
    const same = await strata(['diff', '--root', root, 'repro:a', 'repro:a']);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/are the same image/);
    const diff = await strata(['diff', '--root', root, 'repro:a', 'repro:b']);
    expect(diff.code).toBe(1);
    expect(diff.stdout).toMatch(/^layer 1: sha256:\w+ -> sha256:\w+$/m);
    expect(diff.stdout).toMatch(/^ {2}~ app\/sub\/b {2}sha256 [0-9a-f]{64} -> [0-9a-f]{64}$/m);
    expect(diff.stdout).toMatch(/^ {2}~ joined {2}sha256 /m);
    const json = JSON.parse((await strata(['diff', '--root', root, '--json', 'repro:a', 'repro:b'])).stdout) as { layers: { index: number; entries: { path: string }[] }[] };
    expect(json.layers.map((l) => [l.index, l.entries.map((e) => e.path)])).toEqual([[1, ['app/sub/b']], [2, ['joined']]]);
  });
});

describe('a damaged blob is never exported', () => {
  it('export refuses a layer blob that no longer matches its digest, and names the repair', async () => {
    const root = temp('root');
    const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo x > /x\n');
    dirs.push(ctx);
    const built = await strata(['build', '--root', root, '-q', '-t', 'damaged', ctx]);
    expect(built.code, built.stderr).toBe(0);
    const inspect = JSON.parse((await strata(['inspect', '--root', root, 'damaged'])).stdout) as { manifest: { layers: { digest: string }[] } };
    const blob = path.join(root, 'blobs', 'sha256', inspect.manifest.layers[1].digest.slice(7));
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 3] ^= 0x55;
    fs.writeFileSync(blob, bytes);
    const out = path.join(temp('out'), 'img.tar');
    const exported = await strata(['build', '--root', root, '-q', '-o', `type=oci,dest=${out}`, ctx]);
    expect(exported.code).not.toBe(0);
    expect(exported.stderr).toMatch(/does not match its digest.*fsck --repair/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
