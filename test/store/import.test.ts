// importImage and the transports at FROM: images from OCI archives, layouts and docker-archives
// land in the store byte for byte, their whiteouts and opaque dirs as overlay expects them, and a
// layer that does not unpack to its diff_id is refused with nothing kept.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, serializeManifest } from '../../src/image/manifest.js';
import { MediaType, type ImageConfig, type Manifest } from '../../src/image/types.js';
import { importImage, layerRecords } from '../../src/store/import.js';
import { Store } from '../../src/store/store.js';
import { openImageArchive } from '../../src/transport/read-archive.js';
import { makeContext, strata, tempDir, type Run } from '../helpers.js';

const expectOk = (run: Run) => expect(run.code, run.stderr).toBe(0);
const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

const BASE = [
  'FROM scratch',
  'ADD busybox-rootfs.tar /',
  'RUN mkdir -p /srv/old && echo old > /srv/old/file && echo gone > /gone',
  'RUN rm /gone && rm -rf /srv && mkdir /srv && echo new > /srv/only',
  '',
].join('\n');

let work: string;
let root: string;
let digest: string;
let ociTar: string;
let dockerTar: string;
const cleanup: string[] = [];

beforeAll(async () => {
  work = tempDir('import');
  root = path.join(work, 'root');
  const ctx = makeContext(BASE);
  cleanup.push(work, ctx);
  const built = await strata(['build', '--root', root, '-q', '-t', 'imp/base:1', ctx]);
  expectOk(built);
  digest = lastLine(built.stdout);
  ociTar = path.join(work, 'base.oci.tar');
  dockerTar = path.join(work, 'base.docker.tar');
  expectOk(await strata(['export', '--root', root, 'imp/base:1', `oci-archive:${ociTar}:v1`]));
  expectOk(await strata(['export', '--root', root, 'imp/base:1', `docker-archive:${dockerTar}`]));
}, 120_000);

afterAll(() => {
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
});

describe('importImage', () => {
  it('an OCI archive: same manifest digest, blobs byte for byte, overlay whiteout and opaque dir in the lowerdir', async () => {
    const store = await Store.open(path.join(work, 'fresh-oci'));
    const archive = await openImageArchive(ociTar);
    try {
      const source = archive.images[0]!.source;
      expect(await importImage(store, source)).toBe(digest);
      for (const layer of source.manifest.layers) {
        expect(fs.readFileSync(store.blobPath(layer.digest)).equals(fs.readFileSync(source.blobPath(layer.digest)))).toBe(true);
      }
      const top = path.join(store.layerDir(source.config.rootfs.diff_ids[2]!), 'diff');
      const gone = fs.lstatSync(path.join(top, 'gone'));
      expect([gone.isCharacterDevice(), gone.rdev]).toEqual([true, 0]);
      expect(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(top, 'srv')]).toString()).toBe('y');
      expect(fs.readdirSync(path.join(top, 'srv'))).toEqual(['only']);
      // Layers already stored are not fetched again.
      const events: string[] = [];
      await importImage(store, source, { progress: (e) => e.type === 'blob' && events.push(e.state) });
      expect(events).toEqual(['exists', 'exists', 'exists']);
      expect(fs.readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
    } finally {
      await archive.cleanup();
    }
  }, 60_000);

  it('a layer that does not unpack to its diff_id is refused; no layer, manifest or temp dir is left', async () => {
    const store = await Store.open(path.join(work, 'fresh-bad'));
    const archive = await openImageArchive(ociTar);
    try {
      const source = archive.images[0]!.source;
      const wrong = `sha256:${'0'.repeat(64)}`;
      const config: ImageConfig = { ...source.config, rootfs: { type: 'layers', diff_ids: [source.config.rootfs.diff_ids[0]!, wrong, source.config.rootfs.diff_ids[2]!] } };
      const configBytes = Buffer.from(JSON.stringify(config));
      const manifest: Manifest = { ...source.manifest, config: { ...source.manifest.config, digest: digestOf(configBytes), size: configBytes.length } };
      const manifestBytes = serializeManifest(manifest);
      const forged = { ...source, config, configBytes, manifest, manifestBytes, manifestDigest: digestOf(manifestBytes) };
      await expect(importImage(store, forged)).rejects.toThrow(
        `layer ${source.manifest.layers[1]!.digest} unpacks to ${source.config.rootfs.diff_ids[1]}, but the image config says ${wrong}`);
      expect(await store.hasLayer(wrong)).toBe(false);
      expect(await store.hasBlob(forged.manifestDigest)).toBe(false);
      expect(fs.readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
    } finally {
      await archive.cleanup();
    }
  }, 60_000);

  it('layer media types: Docker gzip layers are OCI gzip layers (same bytes), uncompressed ones OCI tar', () => {
    const config = { rootfs: { type: 'layers', diff_ids: ['sha256:a', 'sha256:b'] } } as unknown as ImageConfig;
    const manifest = {
      schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: 'sha256:c', size: 1 },
      layers: [
        { mediaType: MediaType.dockerLayerGzip, digest: 'sha256:1', size: 10 },
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: 'sha256:2', size: 20 },
      ],
    } as Manifest;
    expect(layerRecords(manifest, config)).toEqual([
      { digest: 'sha256:1', diffId: 'sha256:a', size: 10, mediaType: MediaType.ociLayerGzip },
      { digest: 'sha256:2', diffId: 'sha256:b', size: 20, mediaType: MediaType.ociLayer },
    ]);
    const foreign = { ...manifest, layers: [{ mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: 'sha256:1', size: 1 }, manifest.layers[1]!] };
    expect(() => layerRecords(foreign, config)).toThrow('layer sha256:1 has media type application/vnd.docker.image.rootfs.foreign.diff.tar.gzip, which strata cannot unpack');
  });
});

describe('transports at FROM, import and export', () => {
  const child = (from: string) => makeContext(`FROM ${from}\nRUN ls /srv; test -e /gone || echo no-gone\n`);
  const runOutput = (run: Run) => run.stderr.split('\n').filter((l) => /^#[\d.]+ \[1\] /.test(l) && !/DONE/.test(l)).map((l) => l.replace(/^#[\d.]+ \[1\] /, ''));

  it('FROM oci-archive:PATH:TAG builds on the archive\'s layers, unchanged', async () => {
    const ctx = child(`oci-archive:${ociTar}:v1`);
    const fresh = path.join(work, 'from-oci');
    cleanup.push(ctx);
    const run = await strata(['build', '--root', fresh, '--progress', 'plain', '-t', 'kid', ctx]);
    expectOk(run);
    expect(runOutput(run)).toEqual(['only', 'no-gone']);
    const base = JSON.parse((await strata(['inspect', '--root', root, 'imp/base:1'])).stdout).manifest.layers as { digest: string }[];
    const kid = JSON.parse((await strata(['inspect', '--root', fresh, 'kid'])).stdout).manifest.layers as { digest: string }[];
    expect(kid.slice(0, 3)).toEqual(base);
  }, 120_000);

  it('FROM docker-archive:PATH and FROM oci:DIR:TAG (via export) see the same tree', async () => {
    const layout = path.join(work, 'layout');
    expectOk(await strata(['export', '--root', root, 'imp/base:1', `oci:${layout}:v2`]));
    for (const [i, from] of [`docker-archive:${dockerTar}`, `oci:${layout}:v2`].entries()) {
      const ctx = child(from);
      cleanup.push(ctx);
      // A store per build: the step cache would otherwise answer the second RUN.
      const run = await strata(['build', '--root', path.join(work, `from-other-${i}`), '--progress', 'plain', ctx]);
      expectOk(run);
      expect(runOutput(run)).toEqual(['only', 'no-gone']);
    }
  }, 120_000);

  it('a missing tag in an archive names what the archive has', async () => {
    const ctx = child(`oci-archive:${ociTar}:nope`);
    cleanup.push(ctx);
    const run = await strata(['build', '--root', path.join(work, 'from-missing'), ctx]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`oci-archive:${ociTar}:nope: no image named nope (it has: v1, imp/base:v1)`);
  }, 60_000);

  it('import tags the archive\'s names or the given one; push to a transport writes what skopeo reads', async () => {
    const fresh = path.join(work, 'imported');
    const imported = await strata(['import', '--root', fresh, dockerTar]);
    expectOk(imported);
    const named = await strata(['import', '--root', fresh, `oci-archive:${ociTar}`, 'renamed:7']);
    expectOk(named);
    expect(lastLine(named.stdout)).toBe(digest);
    const images = (await strata(['images', '--root', fresh])).stdout;
    expect(images).toMatch(/imp\/base:1\s+sha256:/);
    expect(images).toMatch(new RegExp(`renamed:7\\s+${digest}`));
    const out = path.join(work, 'pushed.tar');
    expectOk(await strata(['push', '--root', fresh, 'renamed:7', `oci-archive:${out}:seven`]));
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${out}:seven`]).toString()) as { Digest: string };
    expect(inspected.Digest).toBe(digest);
  }, 120_000);
});
