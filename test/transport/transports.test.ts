// Writes a small real image (busybox + a whiteout) in all three formats and checks the output with the
// consumers that matter: skopeo, umoci, oci-image-tool and podman (runc). Also reads every format back.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { buildManifest, descriptorOf, digestOf, parseDigest, serializeManifest } from '../../src/image/manifest.js';
import { appendLayer, emptyConfig, serializeConfig, withCmd, withCreated, withLabels } from '../../src/image/mutate.js';
import { openLayoutImage, type ImageSource } from '../../src/image/source.js';
import { MediaType, type ImageConfig, type Index, type LayerRecord } from '../../src/image/types.js';
import { writeDockerArchive } from '../../src/transport/docker-archive.js';
import { writeOciArchive } from '../../src/transport/oci-archive.js';
import { writeOciDir } from '../../src/transport/oci-dir.js';
import { openImageArchive } from '../../src/transport/read-archive.js';

const exec = promisify(execFile);
const ToolTimeout = 120_000;

async function run(cmd: string, args: string[]): Promise<string> {
  return (await exec(cmd, args, { maxBuffer: 64 << 20 })).stdout;
}

const missingTools = new Set<string>();
async function probeTools(names: string[]): Promise<void> {
  for (const name of names) {
    await exec('sh', ['-c', `command -v ${name}`]).catch(() => missingTools.add(name));
  }
}
function needTools(ctx: TestContext, ...names: string[]): void {
  const missing = names.filter((n) => missingTools.has(n));
  if (missing.length > 0) ctx.skip(`not installed: ${missing.join(', ')}`);
}

const sha256 = (buf: Buffer) => `sha256:${createHash('sha256').update(buf).digest('hex')}`;

/** Every entry of a tar file (headers and, for files, contents). */
async function readTar(path: string): Promise<{ header: tar.Header; data: Buffer }[]> {
  const extract = tar.extract();
  const feeding = pipeline(createReadStream(path), extract);
  const out: { header: tar.Header; data: Buffer }[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ header: entry.header, data: Buffer.concat(chunks) });
  }
  await feeding;
  return out;
}

let work: string;
let blobsDir: string;
let img: ImageSource;
let layers: LayerRecord[];
const Busybox = '/bin/busybox';
const Names = ['localhost/seed:1', 'seed'];

/** Layers as strata stores them: `tar --sort=name` of a directory, gzip -n, in a blobs/sha256 tree. */
async function storeLayer(dir: string): Promise<LayerRecord> {
  const tarPath = `${dir}.tar`;
  await run('tar', ['--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-C', dir, '-cf', tarPath, '.']);
  await run('sh', ['-c', `gzip -n -c '${tarPath}' > '${tarPath}.gz'`]);
  const gz = await readFile(`${tarPath}.gz`);
  const record: LayerRecord = { digest: sha256(gz), diffId: sha256(await readFile(tarPath)), size: gz.length, mediaType: MediaType.ociLayerGzip };
  await writeFile(join(blobsDir, 'sha256', parseDigest(record.digest).hex), gz);
  return record;
}

async function storeImage(config: ImageConfig): Promise<ImageSource> {
  const configBytes = serializeConfig(config);
  const manifestBytes = serializeManifest(buildManifest(descriptorOf(MediaType.ociConfig, configBytes), layers));
  for (const b of [configBytes, manifestBytes]) await writeFile(join(blobsDir, 'sha256', parseDigest(digestOf(b)).hex), b);
  return openLayoutImage(blobsDir, digestOf(manifestBytes));
}

function baseConfig(): ImageConfig {
  let cfg = emptyConfig({ architecture: 'amd64', os: 'linux' });
  cfg = appendLayer(cfg, layers[0]!.diffId, { created_by: 'ADD rootfs /' });
  cfg = appendLayer(cfg, layers[1]!.diffId, { created_by: 'RUN echo > /hello && rm /etc/removeme' });
  return withCreated(withLabels(withCmd(cfg, ['cat', '/hello']), { 'org.example': 'strata' }), '2024-01-01T00:00:00Z');
}

beforeAll(async () => {
  await probeTools(['tar', 'gzip', 'skopeo', 'umoci', 'oci-image-tool', 'podman', 'runc']);
  if (missingTools.has('tar') || missingTools.has('gzip')) throw new Error('GNU tar and gzip are needed to build the test image');
  work = await mkdtemp(join(tmpdir(), 'strata-transport-test-'));
  blobsDir = join(work, 'store', 'blobs');
  await mkdir(join(blobsDir, 'sha256'), { recursive: true });

  const l1 = join(work, 'l1');
  await mkdir(join(l1, 'bin'), { recursive: true });
  await mkdir(join(l1, 'etc'));
  await copyFile(Busybox, join(l1, 'bin', 'busybox'));
  await symlink('busybox', join(l1, 'bin', 'sh'));
  await symlink('busybox', join(l1, 'bin', 'cat'));
  await writeFile(join(l1, 'hello'), 'from layer 1\n');
  await writeFile(join(l1, 'etc', 'removeme'), 'x\n');
  const l2 = join(work, 'l2');
  await mkdir(join(l2, 'etc'), { recursive: true });
  await writeFile(join(l2, 'hello'), 'from layer 2\n');
  await writeFile(join(l2, 'etc', '.wh.removeme'), '');
  layers = [await storeLayer(l1), await storeLayer(l2)];
  img = await storeImage(baseConfig());
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function expectRootfs(rootfs: string): Promise<void> {
  expect(await readFile(join(rootfs, 'hello'), 'utf8')).toBe('from layer 2\n');
  expect((await readFile(join(rootfs, 'bin', 'busybox'))).equals(await readFile(Busybox))).toBe(true);
  expect(await readlink(join(rootfs, 'bin', 'sh'))).toBe('busybox');
  await expect(lstat(join(rootfs, 'etc', 'removeme'))).rejects.toThrow(/ENOENT/);
  await expect(lstat(join(rootfs, 'etc', '.wh.removeme'))).rejects.toThrow(/ENOENT/);
}

/** podman with a private store and the flags this host needs (see /work/shared/peers/README.md). */
function podman(...args: string[]): Promise<string> {
  const store = join(work, 'podman');
  return run('podman', ['--root', join(store, 'root'), '--runroot', join(store, 'run'), '--storage-driver', 'overlay', '--runtime', 'runc', ...args]);
}
const podmanRun = (image: string) =>
  podman('run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', image);

describe('oci-archive', () => {
  it('is a sorted, deterministic OCI layout tarball', async () => {
    const a = join(work, 'det-a.oci.tar');
    const b = join(work, 'det-b.oci.tar');
    await writeOciArchive(img, a, Names);
    await writeOciArchive(img, b, Names);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);

    const entries = await readTar(a);
    const names = entries.map((e) => e.header.name);
    const blobNames = [img.manifestDigest, img.manifest.config.digest, ...layers.map((l) => l.digest)]
      .map((d) => `blobs/sha256/${parseDigest(d).hex}`).sort();
    expect(names).toEqual(['blobs/', 'blobs/sha256/', ...blobNames, 'index.json', 'oci-layout']);
    for (const { header } of entries) {
      expect(header).toMatchObject({ uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0) });
      expect(header.mode).toBe(header.type === 'directory' ? 0o755 : 0o644);
    }
    const byName = new Map(entries.map((e) => [e.header.name, e.data]));
    expect(JSON.parse(byName.get('oci-layout')!.toString())).toEqual({ imageLayoutVersion: '1.0.0' });
    for (const blob of blobNames) expect(sha256(byName.get(blob)!)).toBe(`sha256:${blob.split('/')[2]}`);
    const index = JSON.parse(byName.get('index.json')!.toString()) as Index;
    expect(index.manifests).toEqual(['localhost/seed:1', 'seed:latest'].map((name) => ({
      mediaType: MediaType.ociManifest,
      digest: img.manifestDigest,
      size: img.manifestBytes.length,
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':')[1] },
    })));

    await writeOciArchive(img, b, []);
    const unnamed = JSON.parse((await readTar(b)).find((e) => e.header.name === 'index.json')!.data.toString()) as Index;
    expect(unnamed.manifests).toEqual([{ mediaType: MediaType.ociManifest, digest: img.manifestDigest, size: img.manifestBytes.length }]);
  });

  it('streams the same bytes into a Writable', async () => {
    const file = join(work, 'stream-file.oci.tar');
    await writeOciArchive(img, file, Names);
    const chunks: Buffer[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk); done(); } });
    await writeOciArchive(img, sink, Names);
    expect(Buffer.concat(chunks).equals(await readFile(file))).toBe(true);
  });

  it('is read by skopeo and unpacked by umoci', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'skopeo', 'umoci');
    const archive = join(work, 'skopeo.oci.tar');
    await writeOciArchive(img, archive, Names);
    const inspected = JSON.parse(await run('skopeo', ['inspect', `oci-archive:${archive}:1`]));
    expect(inspected.Digest).toBe(img.manifestDigest);
    expect(inspected.Layers).toEqual(layers.map((l) => l.digest));
    expect(inspected.Labels).toEqual({ 'org.example': 'strata' });
    const config = JSON.parse(await run('skopeo', ['inspect', '--config', `oci-archive:${archive}:latest`]));
    expect(config.rootfs.diff_ids).toEqual(layers.map((l) => l.diffId));

    // skopeo copy re-verifies every blob digest on the way.
    const layout = join(work, 'skopeo-layout');
    await run('skopeo', ['copy', `oci-archive:${archive}:1`, `oci:${layout}:t`]);
    const bundle = join(work, 'skopeo-bundle');
    await run('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
    await expectRootfs(join(bundle, 'rootfs'));
  });

  it('is loaded by podman under its name and runs', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'podman', 'runc');
    const archive = join(work, 'podman.oci.tar');
    await writeOciArchive(img, archive, ['localhost/seed:oci']);
    expect(await podman('load', '-i', archive)).toContain('localhost/seed:oci');
    expect(await podmanRun('localhost/seed:oci')).toBe('from layer 2\n');
  });

  it('leaves neither the destination nor a temporary file when a blob is missing', async () => {
    const dir = join(work, 'atomic');
    await mkdir(dir);
    const broken: ImageSource = { ...img, blobPath: (d) => (d === layers[1]!.digest ? join(work, 'nope') : img.blobPath(d)) };
    await expect(writeOciArchive(broken, join(dir, 'out.tar'), Names)).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);

    // A blob whose file does not have the manifest's size is refused before anything is written.
    const wrongSize: ImageSource = { ...img, blobPath: (d) => (d === layers[1]!.digest ? img.blobPath(layers[0]!.digest) : img.blobPath(d)) };
    await expect(writeDockerArchive(wrongSize, join(dir, 'out.tar'), Names)).rejects.toThrow(/bytes, its descriptor says/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('oci-dir', () => {
  it('is validated by oci-image-tool and unpacked by umoci by tag', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'oci-image-tool', 'umoci');
    const dir = join(work, 'layout-validate');
    await writeOciDir(img, dir, ['localhost/seed:1']);
    await run('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=1', dir]);
    const bundle = join(work, 'layout-bundle');
    await run('umoci', ['unpack', '--image', `${dir}:1`, bundle]);
    await expectRootfs(join(bundle, 'rootfs'));
  });

  it('merges into an existing layout, replacing descriptors with the same ref name', { timeout: ToolTimeout }, async (ctx) => {
    const dir = join(work, 'layout-merge');
    await writeOciDir(img, dir, ['localhost/seed:1', 'localhost/seed:keep']);
    const img2 = await storeImage(withCmd(baseConfig(), ['cat', '/etc/removeme']));
    await writeOciDir(img2, dir, ['localhost/seed:1', 'localhost/seed:2']);
    await writeOciDir(img2, dir, []);
    await writeOciDir(img2, dir, []);

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Index;
    expect(index.manifests.map((d) => [d.annotations?.['org.opencontainers.image.ref.name'], d.digest])).toEqual([
      ['keep', img.manifestDigest],
      ['1', img2.manifestDigest],
      ['2', img2.manifestDigest],
      [undefined, img2.manifestDigest],
    ]);
    for (const d of [img.manifestDigest, img2.manifestDigest, img2.manifest.config.digest, ...layers.map((l) => l.digest)]) {
      expect(sha256(await readFile(join(dir, 'blobs', 'sha256', parseDigest(d).hex)))).toBe(d);
    }
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);

    needTools(ctx, 'skopeo');
    expect(JSON.parse(await run('skopeo', ['inspect', `oci:${dir}:1`])).Digest).toBe(img2.manifestDigest);
    expect(JSON.parse(await run('skopeo', ['inspect', `oci:${dir}:keep`])).Digest).toBe(img.manifestDigest);
  });
});

describe('docker-archive', () => {
  it('has the docker save layout: manifest.json, repositories, uncompressed layer.tar per layer', async () => {
    const a = join(work, 'a.docker.tar');
    const b = join(work, 'b.docker.tar');
    await writeDockerArchive(img, a, Names);
    await writeDockerArchive(img, b, Names);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);

    const entries = new Map((await readTar(a)).map((e) => [e.header.name, e.data]));
    const chain1 = layers[0]!.diffId;
    const chain2 = digestOf(Buffer.from(`${chain1} ${layers[1]!.diffId}`));
    const [id1, id2] = [chain1, chain2].map((d) => parseDigest(d).hex);
    const configName = `${parseDigest(img.manifest.config.digest).hex}.json`;
    expect([...entries.keys()]).toEqual([
      configName,
      `${id1}/`, `${id1}/VERSION`, `${id1}/json`, `${id1}/layer.tar`,
      `${id2}/`, `${id2}/VERSION`, `${id2}/json`, `${id2}/layer.tar`,
      'manifest.json', 'repositories',
    ].sort());
    expect(JSON.parse(entries.get('manifest.json')!.toString())).toEqual([
      { Config: configName, RepoTags: ['localhost/seed:1', 'seed:latest'], Layers: [`${id1}/layer.tar`, `${id2}/layer.tar`] },
    ]);
    expect(JSON.parse(entries.get('repositories')!.toString())).toEqual({ 'localhost/seed': { 1: id2 }, seed: { latest: id2 } });
    expect(entries.get(configName)!.equals(img.configBytes)).toBe(true);
    expect(sha256(entries.get(`${id1}/layer.tar`)!)).toBe(layers[0]!.diffId);
    expect(sha256(entries.get(`${id2}/layer.tar`)!)).toBe(layers[1]!.diffId);
    expect(entries.get(`${id1}/VERSION`)!.toString()).toBe('1.0');
    expect(JSON.parse(entries.get(`${id2}/json`)!.toString())).toMatchObject({ id: id2, parent: id1, os: 'linux', config: { Cmd: ['cat', '/hello'] } });
  });

  it('is read by skopeo', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'skopeo');
    const archive = join(work, 'skopeo.docker.tar');
    await writeDockerArchive(img, archive, ['localhost/seed:1']);
    const inspected = JSON.parse(await run('skopeo', ['inspect', `docker-archive:${archive}`]));
    expect(inspected.Layers).toEqual(layers.map((l) => l.diffId));
    expect(inspected.Labels).toEqual({ 'org.example': 'strata' });
    await run('skopeo', ['copy', `docker-archive:${archive}`, `oci:${join(work, 'from-docker-layout')}:t`]);
  });

  it('is loaded by podman under its tags and runs', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'podman', 'runc');
    const archive = join(work, 'podman.docker.tar');
    await writeDockerArchive(img, archive, ['localhost/seed:docker']);
    expect(await podman('load', '-i', archive)).toContain('localhost/seed:docker');
    expect(await podmanRun('localhost/seed:docker')).toBe('from layer 2\n');
  });
});

describe('openImageArchive', () => {
  async function expectSameImage(source: ImageSource, opts: { layersAsWritten: boolean }) {
    expect(source.configBytes.equals(img.configBytes)).toBe(true);
    expect(source.config.rootfs.diff_ids).toEqual(layers.map((l) => l.diffId));
    expect(digestOf(await readFile(source.blobPath(source.manifestDigest)))).toBe(source.manifestDigest);
    expect(digestOf(await readFile(source.blobPath(source.manifest.config.digest)))).toBe(source.manifest.config.digest);
    for (const [i, layer] of source.manifest.layers.entries()) {
      const blob = await readFile(source.blobPath(layer.digest));
      expect(sha256(blob)).toBe(layer.digest);
      expect(blob.length).toBe(layer.size);
      expect(layer.digest).toBe(opts.layersAsWritten ? layers[i]!.digest : layers[i]!.diffId);
    }
    if (opts.layersAsWritten) expect(source.manifestBytes.equals(img.manifestBytes)).toBe(true);
  }

  it('round-trips an OCI archive', async () => {
    const archive = join(work, 'roundtrip.oci.tar');
    await writeOciArchive(img, archive, Names);
    const opened = await openImageArchive(archive);
    try {
      expect(opened.format).toBe('oci');
      expect(opened.images.map((i) => [i.refName, i.imageName])).toEqual([['1', 'localhost/seed:1'], ['latest', 'seed:latest']]);
      for (const { source } of opened.images) await expectSameImage(source, { layersAsWritten: true });
    } finally {
      await opened.cleanup();
    }
  });

  it('round-trips an OCI layout directory without copying it', async () => {
    const dir = join(work, 'roundtrip-layout');
    await writeOciDir(img, dir, ['localhost/seed:1']);
    const opened = await openImageArchive(dir);
    expect(opened.images).toHaveLength(1);
    const { source } = opened.images[0]!;
    expect(source.blobPath(layers[0]!.digest)).toBe(join(dir, 'blobs', 'sha256', parseDigest(layers[0]!.digest).hex));
    await expectSameImage(source, { layersAsWritten: true });
    await opened.cleanup();
    expect(await readdir(dir)).toContain('index.json');
  });

  it('round-trips a docker-archive, and writing it back gives the same bytes', async () => {
    const archive = join(work, 'roundtrip.docker.tar');
    await writeDockerArchive(img, archive, Names);
    const opened = await openImageArchive(archive);
    try {
      expect(opened.format).toBe('docker-archive');
      expect(opened.images.map((i) => i.refName)).toEqual(['localhost/seed:1', 'seed:latest']);
      const { source } = opened.images[0]!;
      await expectSameImage(source, { layersAsWritten: false });
      expect(source.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.ociLayer, MediaType.ociLayer]);
      const again = join(work, 'roundtrip-again.docker.tar');
      await writeDockerArchive(source, again, Names);
      expect((await readFile(again)).equals(await readFile(archive))).toBe(true);
    } finally {
      await opened.cleanup();
    }
  });

  it('reads docker-archives written by skopeo (symlinked layers) and gzipped archives', { timeout: ToolTimeout }, async (ctx) => {
    needTools(ctx, 'skopeo');
    const oci = join(work, 'for-skopeo.oci.tar');
    await writeOciArchive(img, oci, ['localhost/seed:1']);
    const archive = join(work, 'by-skopeo.docker.tar');
    await run('skopeo', ['copy', `oci-archive:${oci}`, `docker-archive:${archive}:localhost/seed:1`]);
    expect((await readTar(archive)).some((e) => e.header.type === 'symlink')).toBe(true);
    const opened = await openImageArchive(archive);
    try {
      expect(opened.images.map((i) => i.imageName)).toEqual(['localhost/seed:1']);
      await expectSameImage(opened.images[0]!.source, { layersAsWritten: false });
    } finally {
      await opened.cleanup();
    }

    await run('sh', ['-c', `gzip -n -c '${oci}' > '${oci}.gz'`]);
    const gzipped = await openImageArchive(`${oci}.gz`);
    await expectSameImage(gzipped.images[0]!.source, { layersAsWritten: true });
    await gzipped.cleanup();
  });

  it('removes its extracted files on cleanup', async () => {
    const archive = join(work, 'cleanup.oci.tar');
    await writeOciArchive(img, archive, []);
    const opened = await openImageArchive(archive);
    const layerPath = opened.images[0]!.source.blobPath(layers[0]!.digest);
    await lstat(layerPath);
    await opened.cleanup();
    await expect(lstat(layerPath)).rejects.toThrow(/ENOENT/);
  });

  const unsafe: { name: string; entry: Partial<tar.Header> & { name: string }; error: RegExp }[] = [
    { name: 'a parent-directory name', entry: { name: '../escaped', type: 'file' }, error: /unsafe path/ },
    { name: 'a name that climbs out midway', entry: { name: 'blobs/../../escaped', type: 'file' }, error: /unsafe path/ },
    { name: 'an absolute name', entry: { name: '/escaped', type: 'file' }, error: /unsafe path/ },
    { name: 'a symlink out of the archive', entry: { name: 'index.json', type: 'symlink', linkname: '../../etc/passwd' }, error: /unsafe path/ },
    { name: 'an absolute symlink', entry: { name: 'index.json', type: 'symlink', linkname: '/etc/passwd' }, error: /unsafe path/ },
    { name: 'a hard link out of the archive', entry: { name: 'index.json', type: 'link', linkname: '../etc/passwd' }, error: /unsafe path/ },
    { name: 'a device node', entry: { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }, error: /unsupported entry type/ },
  ];
  it.each(unsafe)('rejects $name', async ({ entry, error }) => {
    const dir = await mkdtemp(join(work, 'unsafe-'));
    const archive = join(dir, 'evil.tar');
    const pack = tar.pack();
    const written = pipeline(pack, createWriteStream(archive));
    pack.entry({ name: 'oci-layout' }, '{"imageLayoutVersion":"1.0.0"}');
    if (entry.type === 'file') pack.entry(entry, 'x');
    else pack.entry(entry);
    pack.finalize();
    await written;
    await expect(openImageArchive(archive)).rejects.toThrow(error);
    expect(await readdir(dir)).toEqual(['evil.tar']);
    await expect(lstat(join(work, 'escaped'))).rejects.toThrow(/ENOENT/);
  });
});
