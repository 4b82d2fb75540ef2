// The commands through the real CLI: plan, build flags, images, inspect, layers, and how errors look.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, imageShape, strata, tempDir, testScope, type Run } from '../helpers.js';

const { root, out, context, track, cleanup } = testScope('cli');
afterAll(cleanup);

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const sha256 = (data: Buffer): string => `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';

/** A file of an OCI archive as Python's tarfile reads it (topmost layer holding it wins). */
function fileInArchive(archive: string, name: string): string {
  const script = `
import gzip, io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
rd = lambda p: t.extractfile(p).read()
m = json.loads(rd('blobs/sha256/' + json.loads(rd('index.json'))['manifests'][0]['digest'][7:]))
for l in reversed(m['layers']):
    data = rd('blobs/sha256/' + l['digest'][7:])
    if l['mediaType'].endswith('gzip'):
        data = gzip.decompress(data)
    lt = tarfile.open(fileobj=io.BytesIO(data))
    try:
        member = lt.getmember(sys.argv[2])
    except KeyError:
        continue
    sys.stdout.write(lt.extractfile(member).read().decode())
    sys.exit(0)
sys.exit(3)
`;
  return execFileSync('python3', ['-c', script, archive, name]).toString();
}

/** A JSON member of a tar file (index.json, manifest.json, blobs/...). */
const tarMember = (archive: string, member: string): Buffer => execFileSync('tar', ['-xOf', archive, member], { maxBuffer: 1 << 26 });

/** Tags a store holds, as `strata images` would resolve them (the tags dir may not exist). */
function storeTags(storeRoot: string): string[] {
  const dir = path.join(storeRoot, 'tags');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

const MULTISTAGE = [
  'FROM scratch AS base',
  'ADD busybox-rootfs.tar /',
  '',
  'FROM base AS unused',
  'RUN echo nope > /nope',
  '',
  'FROM base AS builder',
  'RUN echo built > /artifact',
  'ENV A=1',
  '',
  'FROM base',
  'COPY --from=builder /artifact /artifact',
  'CMD ["cat","/artifact"]',
  '',
].join('\n');

describe('strata plan', () => {
  const ctx = context(MULTISTAGE);

  it('--json: every step with its Dockerfile line and effect; the stage the target does not need is absent', async () => {
    const run = await strata(['plan', '--json', '.'], { cwd: ctx });
    expectOk(run);
    // the cache-hit column (`cached`) depends on the store and is tested with the step cache
    const plan = JSON.parse(run.stdout) as { steps: { cached?: boolean }[] };
    for (const step of plan.steps) delete step.cached;
    expect(plan).toEqual({
      file: 'Dockerfile',
      stages: [
        { name: 'base', base: 'scratch' },
        { name: 'builder', base: 'stage 0' },
        { name: '3', base: 'stage 0' },
      ],
      steps: [
        { stage: 'base', line: 2, instruction: 'ADD busybox-rootfs.tar /', effect: 'layer' },
        { stage: 'builder', line: 8, instruction: 'RUN echo built > /artifact', effect: 'layer' },
        { stage: 'builder', line: 9, instruction: 'ENV A=1', effect: 'config' },
        { stage: '3', line: 12, instruction: 'COPY --from=builder /artifact /artifact', effect: 'layer' },
        { stage: '3', line: 13, instruction: 'CMD ["cat","/artifact"]', effect: 'config' },
      ],
    });
    expect(run.stdout).not.toContain('nope');
  });

  it('text: one row per step with file:line and LAYER/config', async () => {
    const run = await strata(['plan', '.'], { cwd: ctx });
    expectOk(run);
    expect(run.stdout).toBe([
      'Dockerfile: 5 steps',
      'stage base FROM scratch',
      '  Dockerfile:2       LAYER   ADD busybox-rootfs.tar /',
      'stage builder FROM stage 0',
      '  Dockerfile:8       LAYER   RUN echo built > /artifact',
      '  Dockerfile:9       config  ENV A=1',
      'stage 3 FROM stage 0',
      '  Dockerfile:12      LAYER   COPY --from=builder /artifact /artifact',
      '  Dockerfile:13      config  CMD ["cat","/artifact"]',
      '',
    ].join('\n'));
  });

  it('--target keeps only the stages that target needs', async () => {
    const builder = await strata(['plan', '--json', '--target', 'builder', '.'], { cwd: ctx });
    expectOk(builder);
    const plan = JSON.parse(builder.stdout) as { stages: { name: string }[]; steps: { stage: string; line: number }[] };
    expect(plan.stages.map((s) => s.name)).toEqual(['base', 'builder']);
    expect(plan.steps.map((s) => `${s.stage}:${s.line}`)).toEqual(['base:2', 'builder:8', 'builder:9']);
    const unused = await strata(['plan', '--json', '--target', 'unused', '.'], { cwd: ctx });
    expectOk(unused);
    expect((JSON.parse(unused.stdout) as typeof plan).steps.map((s) => `${s.stage}:${s.line}`)).toEqual(['base:2', 'unused:5']);
    const missing = await strata(['plan', '--target', 'nope', '.'], { cwd: ctx });
    expect(missing.code).toBe(1);
    expect(lastLine(missing.stderr)).toBe('ERROR: target stage "nope" could not be found');
  });

  it('-f and --build-arg: a Dockerfile elsewhere, its FROM expanded from a global ARG', async () => {
    const elsewhere = tempDir('cli-df');
    track(elsewhere);
    const df = path.join(elsewhere, 'other.Dockerfile');
    fs.writeFileSync(df, 'ARG V=1\nFROM alpine:$V\nRUN echo $V\nUSER nobody\n');
    const run = await strata(['plan', '--json', '-f', df, '--build-arg', 'V=3.19', '.'], { cwd: ctx });
    expectOk(run);
    const plan = JSON.parse(run.stdout) as { file: string; stages: unknown[]; steps: { line: number; effect: string }[] };
    expect(plan.file).toBe(path.relative(ctx, df));
    expect(plan.stages).toEqual([{ name: '0', base: 'alpine:3.19' }]);
    expect(plan.steps.map((s) => `${s.line} ${s.effect}`)).toEqual(['3 layer', '4 config']);
  });
});

describe('images and inspect', () => {
  const DOCKERFILE = [
    'FROM scratch',
    'ADD busybox-rootfs.tar /',
    'ENV GREETING="hello world" OTHER=2',
    'WORKDIR /srv/app',
    'RUN echo hi > greeting.txt',
    'EXPOSE 8080 53/udp',
    'LABEL org.example.title="inspect me" version=1.2',
    'USER 1000:1000',
    'CMD ["cat","greeting.txt"]',
    '',
  ].join('\n');
  const archive = path.join(out, 'inspect.tar');
  let digest = '';

  beforeAll(async () => {
    const run = await strata(['build', '--root', root, '-q', '-t', 'test/inspect:1', '-t', 'test/inspect:latest', '-t', 'other/name', '--output', `type=oci,dest=${archive}`, context(DOCKERFILE)]);
    expectOk(run);
    digest = run.stdout.trim();
  });

  it('images lists every tag built, all on the digest the build printed', async () => {
    expect(digest).toMatch(DIGEST);
    const images = await strata(['images', '--root', root]);
    expectOk(images);
    const rows = images.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^NAME\s+DIGEST$/);
    const listed = new Map(rows.slice(1).map((r) => r.split(/\s+/) as [string, string]));
    for (const name of ['test/inspect:1', 'test/inspect:latest', 'other/name:latest']) expect(listed.get(name)).toBe(digest);
  });

  it('inspect prints the manifest, config, history and layers the archive holds', async () => {
    const run = await strata(['inspect', '--root', root, 'test/inspect:1']);
    expectOk(run);
    const inspected = JSON.parse(run.stdout) as {
      name: string; digest: string;
      manifest: { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] };
      config: { config: Record<string, unknown>; history: { created_by: string; empty_layer?: boolean }[]; rootfs: { diff_ids: string[] } };
      layers: { digest: string }[];
    };
    expect(inspected.name).toBe('test/inspect:1');
    expect(inspected.digest).toBe(digest);
    expect(inspected.config.config).toEqual({
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GREETING=hello world', 'OTHER=2'],
      Cmd: ['cat', 'greeting.txt'],
      WorkingDir: '/srv/app',
      ExposedPorts: { '53/udp': {}, '8080/tcp': {} },
      Labels: { 'org.example.title': 'inspect me', version: '1.2' },
      User: '1000:1000',
    });
    expect(inspected.config.history.map((h) => `${h.empty_layer ? 'empty' : 'layer'} ${h.created_by}`)).toEqual([
      'layer ADD busybox-rootfs.tar /',
      'empty ENV GREETING="hello world" OTHER=2',
      'layer WORKDIR /srv/app',
      'layer RUN echo hi > greeting.txt',
      'empty EXPOSE 8080 53/udp',
      'empty LABEL org.example.title="inspect me" version=1.2',
      'empty USER 1000:1000',
      'empty CMD ["cat","greeting.txt"]',
    ]);
    // what inspect says is what the archive holds: same manifest bytes' digest, same config, same layers
    const index = JSON.parse(tarMember(archive, 'index.json').toString()) as { manifests: { digest: string }[] };
    expect(index.manifests[0].digest).toBe(digest);
    const manifestBytes = tarMember(archive, `blobs/sha256/${digest.slice(7)}`);
    expect(sha256(manifestBytes)).toBe(digest);
    const manifest = JSON.parse(manifestBytes.toString()) as typeof inspected.manifest;
    expect(inspected.manifest).toEqual(manifest);
    expect(inspected.layers.map((l) => l.digest)).toEqual(manifest.layers.map((l) => l.digest));
    expect(inspected.layers).toHaveLength(3);
    const configBytes = tarMember(archive, `blobs/sha256/${manifest.config.digest.slice(7)}`);
    expect(sha256(configBytes)).toBe(manifest.config.digest);
    expect(inspected.config).toEqual(JSON.parse(configBytes.toString()));
    expect(inspected.config.rootfs.diff_ids).toEqual(imageShape(archive).layers.map((l) => l.diff_id));
    expect(fileInArchive(archive, 'srv/app/greeting.txt')).toBe('hi\n');
  });

  it('inspect by digest gives the same; an unknown name is a one-line error', async () => {
    const byDigest = await strata(['inspect', '--root', root, digest]);
    expectOk(byDigest);
    expect((JSON.parse(byDigest.stdout) as { digest: string }).digest).toBe(digest);
    const missing = await strata(['inspect', '--root', root, 'test/inspect:nope']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe('ERROR: image not found in the local store: test/inspect:nope\n');
  });
});

describe('strata layers', () => {
  const DOCKERFILE = [
    'FROM scratch',
    'ADD busybox-rootfs.tar /',
    'RUN mkdir -p /srv && echo old > /srv/old-content',
    'RUN rm /bin/ls && rm -rf /srv && mkdir /srv && echo x > /srv/new',
    'CMD ["cat","/srv/new"]',
    '',
  ].join('\n');
  const oci = path.join(out, 'layers.oci.tar');
  const docker = path.join(out, 'layers.docker.tar');

  interface Listed { index: number; digest: string; diffId: string; size: number; instruction: string; entries: { path: string; type: string; mode: string; uid: number; gid: number; size: number; linkname?: string }[] }
  const listing = async (image: string, json: boolean): Promise<string> => {
    const run = await strata(['layers', '--root', root, ...(json ? ['--json'] : []), image]);
    expectOk(run);
    return run.stdout;
  };

  beforeAll(async () => {
    expectOk(await strata(['build', '--root', root, '-q', '-t', 'test/layers:1', '--output', `type=oci,dest=${oci}`, '--output', `type=docker,dest=${docker}`, context(DOCKERFILE)]));
  });

  it('lists per layer the instruction and entries, whiteouts and opaque dirs marked', async () => {
    const text = await listing('test/layers:1', false);
    expect(text.endsWith('\n')).toBe(true);
    const blocks = text.trimEnd().split(/\n(?=layer )/);
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatch(/^layer 0  sha256:[0-9a-f]{64}  \d+ bytes  281 entries\n  ADD busybox-rootfs\.tar \/\n/);
    const rows = (block: string): string[] => block.split('\n').slice(1).map((l) => l.trim().replace(/\s+/g, ' '));
    expect(rows(blocks[1])).toEqual([
      'RUN mkdir -p /srv && echo old > /srv/old-content',
      'dir 0755 0:0 0 srv',
      'file 0644 0:0 4 srv/old-content',
    ]);
    expect(rows(blocks[2])).toEqual([
      'RUN rm /bin/ls && rm -rf /srv && mkdir /srv && echo x > /srv/new',
      'dir 0755 0:0 0 bin',
      'whiteout 0600 0:0 0 bin/.wh.ls [whiteout: deletes bin/ls]',
      'dir 0755 0:0 0 srv',
      'opaque 0755 0:0 0 srv/.wh..wh..opq [opaque: hides the lower content of this directory]',
      'file 0644 0:0 2 srv/new',
    ]);
  });

  it('--json: whiteout and opaque entry types, digests equal to the manifest, the same from the store and both archives', async () => {
    const fromStore = JSON.parse(await listing('test/layers:1', true)) as Listed[];
    const inspected = JSON.parse((await strata(['inspect', '--root', root, 'test/layers:1'])).stdout) as { layers: { digest: string; size: number }[]; config: { rootfs: { diff_ids: string[] } } };
    expect(fromStore.map((l) => l.digest)).toEqual(inspected.layers.map((l) => l.digest));
    expect(fromStore.map((l) => l.size)).toEqual(inspected.layers.map((l) => l.size));
    expect(fromStore.map((l) => l.diffId)).toEqual(inspected.config.rootfs.diff_ids);
    expect(fromStore[2].entries.filter((e) => e.type === 'whiteout' || e.type === 'opaque')).toEqual([
      expect.objectContaining({ path: 'bin/.wh.ls', type: 'whiteout', mode: '0600', uid: 0, gid: 0, size: 0 }),
      expect.objectContaining({ path: 'srv/.wh..wh..opq', type: 'opaque', mode: '0755', uid: 0, gid: 0, size: 0 }),
    ]);
    // the independent reader sees the same entries in each layer
    const shape = imageShape(oci);
    expect(fromStore.map((l) => l.entries.map((e) => e.path).sort())).toEqual(shape.layers.map((l) => l.entries.map((e) => e.name.replace(/\/$/, '')).sort()));
    const busybox = fromStore[0].entries.find((e) => e.path === 'bin/busybox');
    expect(busybox).toMatchObject({ type: 'file', mode: '0755', size: fs.statSync('/bin/busybox').size });
    expect(fromStore[0].entries.find((e) => e.path === 'bin/ls')).toMatchObject({ linkname: 'busybox' });

    const fromOci = JSON.parse(await listing(oci, true)) as Listed[];
    expect(fromOci).toEqual(fromStore);
    expect(await listing(oci, false)).toBe(await listing('test/layers:1', false));
    // docker-archive layers are uncompressed: their digest is the diff_id, the entries are the same
    const fromDocker = JSON.parse(await listing(docker, true)) as Listed[];
    expect(fromDocker.map((l) => l.digest)).toEqual(fromStore.map((l) => l.diffId));
    const content = (ls: Listed[]): unknown => ls.map(({ index, diffId, instruction, entries }) => ({ index, diffId, instruction, entries }));
    expect(content(fromDocker)).toEqual(content(fromStore));
  });
});

describe('build flags', () => {
  it('-t repeated, --iidfile and -q: only the digest on stdout, nothing on stderr, every tag resolves to it', async () => {
    const iid = path.join(out, 'iid.txt');
    const run = await strata(['build', '--root', root, '-q', '-t', 'flags/a:1', '-t', 'flags/b:2', '-t', 'localhost:5000/flags/c', '--iidfile', iid, context('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo quiet-output\n')]);
    expectOk(run);
    expect(run.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(run.stderr).toBe('');
    const digest = run.stdout.trim();
    expect(fs.readFileSync(iid, 'utf8')).toBe(digest);
    for (const name of ['flags/a:1', 'flags/b:2', 'localhost:5000/flags/c:latest', 'localhost:5000/flags/c']) {
      const inspected = await strata(['inspect', '--root', root, name]);
      expectOk(inspected);
      expect((JSON.parse(inspected.stdout) as { digest: string }).digest).toBe(digest);
    }
  });

  it('--build-arg reaches a RUN, the ARG default is used otherwise, and neither lands in the config', async () => {
    const ctx = context('FROM scratch\nADD busybox-rootfs.tar /\nARG X=from-default\nARG Y\nRUN echo "x=$X y=$Y" > /x\n');
    const given = path.join(out, 'arg-given.tar');
    const dflt = path.join(out, 'arg-default.tar');
    expectOk(await strata(['build', '--root', root, '-q', '--build-arg', 'X=given', '--build-arg', 'Y=why', '--output', `type=oci,dest=${given}`, ctx]));
    expectOk(await strata(['build', '--root', root, '-q', '--output', `type=oci,dest=${dflt}`, ctx]));
    expect(fileInArchive(given, 'x')).toBe('x=given y=why\n');
    expect(fileInArchive(dflt, 'x')).toBe('x=from-default y=\n');
    expect(imageShape(given).config.config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('-f: a Dockerfile outside the context (the context\'s own Dockerfile is ignored)', async () => {
    const ctx = context('FROM scratch\nRUN exit 9\n', { 'payload.txt': 'from the context\n' });
    const elsewhere = tempDir('cli-f');
    track(elsewhere);
    const df = path.join(elsewhere, 'Build.dockerfile');
    fs.writeFileSync(df, 'FROM scratch\nCOPY payload.txt /payload.txt\nLABEL via=dash-f\n');
    const archive = path.join(out, 'dash-f.tar');
    expectOk(await strata(['build', '--root', root, '-q', '-f', df, '--output', `type=oci,dest=${archive}`, ctx]));
    expect(fileInArchive(archive, 'payload.txt')).toBe('from the context\n');
    const shape = imageShape(archive);
    expect(shape.config.config.Labels).toEqual({ via: 'dash-f' });
    expect(shape.history.map((h) => h.created_by)).toEqual(['COPY payload.txt /payload.txt', 'LABEL via=dash-f']);
  });

  it('--progress rawjson: one JSON object per line with step-start, step-output, step-done, build-done', async () => {
    const run = await strata(['build', '--root', root, '--progress', 'rawjson', context('FROM scratch\nADD busybox-rootfs.tar /\nENV K=v\nRUN echo raw-one && echo raw-two >&2 && echo f > /f\n')]);
    expectOk(run);
    const events = run.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string; step?: number; [k: string]: unknown });
    for (const e of events) expect(typeof e.type).toBe('string');
    expect(events[0]).toMatchObject({ type: 'build-start', steps: 3 });
    expect(events.filter((e) => e.type === 'step-start').map((e) => `${e.step}/${e.total} ${e.line} ${e.instruction}`)).toEqual([
      '1/3 2 ADD busybox-rootfs.tar /',
      '2/3 3 ENV K=v',
      '3/3 4 RUN echo raw-one && echo raw-two >&2 && echo f > /f',
    ]);
    const done = events.filter((e) => e.type === 'step-done');
    expect(done.map((e) => `${e.step} ${e.emptyLayer}`)).toEqual(['1 false', '2 true', '3 false']);
    expect((done[2].layer as { digest: string }).digest).toMatch(DIGEST);
    const output = events.filter((e) => e.type === 'step-output').map((e) => `${e.step} ${e.stream} ${e.text}`);
    expect(output.sort()).toEqual(['3 stderr raw-two\n', '3 stdout raw-one\n']);
    const last = events[events.length - 1];
    expect(last).toMatchObject({ type: 'build-done', manifestDigest: run.stdout.trim(), layers: 2 });
    // step-start comes before its output, which comes before its step-done
    const at = (pred: (e: (typeof events)[number]) => boolean): number => events.findIndex(pred);
    expect(at((e) => e.type === 'step-start' && e.step === 3)).toBeLessThan(at((e) => e.type === 'step-output'));
    expect(at((e) => e.type === 'step-output')).toBeLessThan(at((e) => e.type === 'step-done' && e.step === 3));
  });

  it('--progress plain: the RUN output lines prefixed with [N]', async () => {
    const run = await strata(['build', '--root', root, '--progress', 'plain', context('FROM scratch\nADD busybox-rootfs.tar /\nENV K=v\nRUN echo plain-one && printf "plain-two\\nno-newline" && echo f > /f\n')]);
    expectOk(run);
    const lines = run.stderr.split('\n').map((l) => l.replace(/^#\d+\.\d{3} /, ''));
    expect(lines).toContain('[3/3] RUN echo plain-one && printf "plain-two\\nno-newline" && echo f > /f');
    const runOutput = lines.filter((l) => /^\[3\] (plain|no-)/.test(l));
    expect(runOutput).toEqual(['[3] plain-one', '[3] plain-two', '[3] no-newline']);
    expect(lines.some((l) => /^\[2\] DONE .*\(no layer\)$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\[3\] DONE .* layer [0-9a-f]{12} /.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith(`built ${run.stdout.trim()} (2 layers, `))).toHaveLength(1);
  });

  it('STRATA_ROOT is the store when --root is absent', async () => {
    const envRoot = tempDir('cli-envroot');
    track(envRoot);
    const run = await strata(['build', '-q', '-t', 'env/root:1', context('FROM scratch\nADD busybox-rootfs.tar /\n')], { env: { STRATA_ROOT: envRoot } });
    expectOk(run);
    expect(fs.readFileSync(path.join(envRoot, 'tags', encodeURIComponent('env/root:1')), 'utf8').trim()).toBe(run.stdout.trim());
    const images = await strata(['images'], { env: { STRATA_ROOT: envRoot } });
    expectOk(images);
    expect(images.stdout.trim().split('\n').slice(1)).toEqual([`${'env/root:1'.padEnd(40)} ${run.stdout.trim()}`]);
    // --root still wins over the environment
    const other = await strata(['images', '--root', root], { env: { STRATA_ROOT: envRoot } });
    expect(other.stdout).not.toContain('env/root:1');
  });
});

describe('errors: non-zero exit, a clear message, no stack trace, no tag written', () => {
  const noStack = (run: Run): void => {
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stderr).not.toMatch(/node:internal|\.js:\d+/);
  };
  const failing = async (args: string[], opts: { cwd?: string } = {}): Promise<{ run: Run; store: string }> => {
    const store = tempDir('cli-err');
    track(store);
    const run = await strata(['build', '--root', store, '-t', 'err/x:1', ...args], opts);
    expect(run.code).not.toBe(0);
    expect(run.stdout).toBe('');
    noStack(run);
    expect(storeTags(store)).toEqual([]);
    return { run, store };
  };

  it('unknown instruction: framed with Dockerfile:LINE and >>>', async () => {
    const { run } = await failing([context('FROM scratch\nADD busybox-rootfs.tar /\nFROBNICATE foo\n')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Dockerfile:3\n/);
    expect(run.stderr).toContain('>>>3 | FROBNICATE foo');
    expect(run.stderr).toContain('   2 | ADD busybox-rootfs.tar /');
    expect(lastLine(run.stderr)).toBe('ERROR: unknown instruction: FROBNICATE');
  });

  it('missing context directory: one line naming it', async () => {
    const missing = path.join(out, 'no-such-context');
    const { run } = await failing([missing]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`ERROR: build context ${missing} is not a directory\n`);
  });

  it('missing Dockerfile: one line naming it', async () => {
    const empty = tempDir('cli-empty');
    track(empty);
    const { run } = await failing([empty]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`ERROR: cannot read Dockerfile ${path.join(empty, 'Dockerfile')}: ENOENT\n`);
    const viaF = await failing(['-f', path.join(empty, 'nope.Dockerfile'), empty]);
    expect(viaF.run.stderr).toContain(`nope.Dockerfile: ENOENT`);
  });

  it('COPY of a source that is not in the context: framed, names the source', async () => {
    const { run } = await failing(['--progress', 'plain', context('FROM scratch\nCOPY nothing-here /\n')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('>>>2 | COPY nothing-here /');
    expect(lastLine(run.stderr)).toBe('ERROR: nothing-here: not found in the build context');
  });

  it('--output type=bogus: the usage and one line, exit 2, nothing built', async () => {
    const { run, store } = await failing(['--output', 'type=bogus,dest=x.tar', context('FROM scratch\nADD busybox-rootfs.tar /\n')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('strata build [context]');
    expect(lastLine(run.stderr)).toBe('ERROR: --output type=bogus,dest=x.tar: type must be one of oci, docker, tar, local, oci-dir');
    expect(fs.existsSync(path.join(store, 'layers')) ? fs.readdirSync(path.join(store, 'layers')) : []).toEqual([]);
  });

  it('unknown flag --frobnicate: yargs usage and the error, exit 2', async () => {
    const { run } = await failing([context('FROM scratch\n'), '--frobnicate']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('strata build [context]');
    expect(run.stderr).toContain('--build-arg');
    expect(lastLine(run.stderr)).toBe('ERROR: unknown flag --frobnicate');
  });

  it('FROM an image that is not in the store: names the image', async () => {
    const { run } = await failing([context('FROM not-in-store:3\nRUN true\n')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('>>>1 | FROM not-in-store:3');
    // Not in the store, so strata tried Docker Hub (unreachable or without such an image here).
    expect(lastLine(run.stderr)).toMatch(/^ERROR: image not found in the local store: not-in-store:3, and pulling docker\.io\/library\/not-in-store:3 failed: /);
  });

  it('an invalid -t name is refused before anything is tagged', async () => {
    const { run } = await failing(['-t', 'Bad Name!', context('FROM scratch\nADD busybox-rootfs.tar /\n')]);
    expect(run.code).toBe(1);
    expect(lastLine(run.stderr)).toMatch(/invalid (image name|reference).*Bad Name!/);
  });

  it('an output that cannot be written fails the build and leaves no tag', async () => {
    const { run } = await failing(['--output', `type=oci,dest=${path.join(out, 'no-such-dir', 'x.tar')}`, context('FROM scratch\nADD busybox-rootfs.tar /\n')]);
    expect(run.code).toBe(1);
    expect(lastLine(run.stderr)).toMatch(/^ERROR: .*no-such-dir/);
  });
});
