// strata against a real registry (Debian's docker-registry, distribution 2.8) over plain HTTP on
// 127.0.0.1: build --push, skopeo and strata pulling it back, FROM the registry, whiteouts and
// opaque directories of a pulled base seen by a RUN, chunked upload, cross-repository mount, a
// multi-platform index, a corrupted blob refused, and podman running the pushed image.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageShape, makeContext, strata, tempDir, tool, type Run } from '../helpers.js';
import { registryBlobFile, startRegistry, type Registry } from '../registry-server.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const expectOk = (run: Run) => expect(run.code, run.stderr).toBe(0);
const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

/** JSON events of a --progress rawjson run. */
const events = (run: Run) => run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

// A base with a whiteout (/bin/ls removed) and an opaque directory (/etc replaced), as a RUN leaves them.
const BASE = [
  'FROM scratch',
  'ADD busybox-rootfs.tar /',
  'RUN mkdir -p /srv/old && echo old > /srv/old/file && echo keep > /srv/keep',
  'RUN rm /bin/ls && rm -rf /srv && mkdir /srv && echo new > /srv/only && echo hi > /hello',
  'CMD ["cat", "/hello"]',
  '',
].join('\n');

let registry: Registry;
const cleanup: string[] = [];
let root: string;
let ctx: string;
let baseRef: string;
let baseDigest: string;

beforeAll(async () => {
  registry = await startRegistry();
  root = tempDir('reg-root');
  ctx = makeContext(BASE);
  cleanup.push(root, ctx);
  baseRef = `${registry.host}/team/base:1`;
  const run = await strata(['build', '--root', root, '--progress', 'rawjson', '-t', baseRef, '--push', ctx]);
  expectOk(run);
  baseDigest = lastLine(run.stdout);
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
});

/** The registry's manifest for a reference, as skopeo fetches it. */
function rawManifest(ref: string): Buffer {
  return execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
}

describe('push', () => {
  it('build --push uploads every blob with progress and the registry holds the local digest', async () => {
    expect(baseDigest).toMatch(DIGEST);
    expect(sha256(rawManifest(baseRef))).toBe(baseDigest);
    const local = await strata(['inspect', '--root', root, baseRef]);
    const manifest = JSON.parse(local.stdout).manifest as { config: { digest: string }; layers: { digest: string; size: number }[] };
    const pushed = new Map<string, number>();
    for (const e of events(await strata(['push', '--root', root, '--progress', 'rawjson', baseRef, `${registry.host}/team/copy:1`]))) {
      if (e.type === 'blob') pushed.set(e.digest as string, e.total as number);
    }
    // Every blob went up (or was mounted): the three layers and the config.
    expect([...pushed.keys()].sort()).toEqual([manifest.config.digest, ...manifest.layers.map((l) => l.digest)].sort());
  }, 60_000);

  it('the build printed per-blob byte progress and the pushed digest', async () => {
    const run = await strata(['build', '--root', tempDir('reg-progress'), '--progress', 'plain', '-t', `${registry.host}/team/progress:1`, '--push', ctx]);
    expectOk(run);
    const digest = lastLine(run.stdout);
    expect(run.stderr).toMatch(/push [0-9a-f]{12} 1\.\d+MB\/1\.\d+MB done/);
    expect(run.stderr).toContain(`pushed ${registry.host}/team/progress:1 ${digest}`);
    // Same Dockerfile, same context, another store: the same image (reproducible), so the same digest.
    expect(digest).toBe(baseDigest);
  }, 120_000);

  it('a blob the registry has is skipped (HEAD); a sibling repository\'s blob is mounted, not uploaded', async () => {
    const again = events(await strata(['push', '--root', root, '--progress', 'rawjson', baseRef]));
    const states = again.filter((e) => e.type === 'blob').map((e) => e.state);
    expect(states.length).toBe(4);
    expect(new Set(states)).toEqual(new Set(['exists']));
    const mounted = events(await strata(['push', '--root', root, '--progress', 'rawjson', baseRef, `${registry.host}/elsewhere/base:2`]));
    expect(new Set(mounted.filter((e) => e.type === 'blob').map((e) => e.state))).toEqual(new Set(['mounted']));
    expect(sha256(rawManifest(`${registry.host}/elsewhere/base:2`))).toBe(baseDigest);
  }, 60_000);

  it('chunked upload (PATCH with Content-Range) of blobs larger than --chunk-size gives the same blobs', async () => {
    const fresh = tempDir('reg-chunk');
    cleanup.push(fresh);
    expectOk(await strata(['build', '--root', fresh, '-q', '-t', 'chunky', ctx]));
    // 64 KiB chunks: the 1.1 MB busybox layer goes up in ~18 PATCH requests.
    const run = await strata(['push', '--root', fresh, '--chunk-size', '0.0625', 'chunky', `${registry.host}/chunked/base:1`]);
    expectOk(run);
    expect(lastLine(run.stdout)).toBe(baseDigest);
    const out = tempDir('reg-chunk-out');
    cleanup.push(out);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/chunked/base:1`, `oci:${out}:x`]);
    const manifest = JSON.parse(rawManifest(`${registry.host}/chunked/base:1`).toString()) as { layers: { digest: string }[] };
    for (const layer of manifest.layers) {
      expect(sha256(fs.readFileSync(path.join(out, 'blobs/sha256', layer.digest.slice(7))))).toBe(layer.digest);
    }
  }, 60_000);
});

describe('pull', () => {
  it('skopeo copies the pushed image; its layers show the whiteout and the opaque directory', () => {
    const out = tempDir('reg-skopeo');
    cleanup.push(out);
    const archive = path.join(out, 'base.tar');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${baseRef}`, `oci-archive:${archive}`]);
    const shape = imageShape(archive);
    expect(shape.layers.length).toBe(3);
    expect(shape.layers[2]!.whiteouts.sort()).toEqual(['bin/.wh.ls', 'srv/.wh..wh..opq']);
  });

  it('strata pull into an empty store: same digest, the name as written, overlay whiteouts in the lowerdirs', async () => {
    const fresh = tempDir('reg-pull');
    cleanup.push(fresh);
    const run = await strata(['pull', '--root', fresh, '--progress', 'plain', baseRef]);
    expectOk(run);
    expect(lastLine(run.stdout)).toBe(baseDigest);
    expect(run.stderr).toMatch(/pull [0-9a-f]{12} 1\.\d+MB\/1\.\d+MB done/);
    const images = await strata(['images', '--root', fresh]);
    expect(images.stdout).toMatch(new RegExp(`${baseRef.replace(/\./g, '\\.')}\\s+${baseDigest}`));
    // The top layer's lowerdir: /bin/ls a 0/0 character device, /srv opaque.
    const config = JSON.parse((await strata(['inspect', '--root', fresh, baseRef])).stdout).config as { rootfs: { diff_ids: string[] } };
    const top = path.join(fresh, 'layers', config.rootfs.diff_ids[2]!.slice(7), 'diff');
    const ls = fs.lstatSync(path.join(top, 'bin/ls'));
    expect([ls.isCharacterDevice(), ls.rdev]).toEqual([true, 0]);
    expect(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(top, 'srv')]).toString()).toBe('y');
  }, 60_000);

  it('FROM the registry: the RUN sees exactly what the image shows, and the base layers are reused byte for byte', async () => {
    const fresh = tempDir('reg-from');
    const child = makeContext(`FROM ${registry.host}/team/base:1\nRUN ls /srv; test ! -e /bin/ls && echo no-ls; cat /hello\n`);
    cleanup.push(fresh, child);
    const run = await strata(['build', '--root', fresh, '--progress', 'plain', '-t', 'child', child]);
    expectOk(run);
    // FROM is no step: the RUN is step 1.
    const output = run.stderr.split('\n').filter((l) => /^#[\d.]+ \[1\] /.test(l) && !/DONE/.test(l)).map((l) => l.replace(/^#[\d.]+ \[1\] /, ''));
    expect(output).toEqual(['only', 'no-ls', 'hi']);
    const base = JSON.parse(rawManifest(baseRef).toString()) as { layers: { digest: string }[] };
    const built = JSON.parse((await strata(['inspect', '--root', fresh, 'child'])).stdout).manifest as { layers: { digest: string }[] };
    expect(built.layers.slice(0, 3).map((l) => l.digest)).toEqual(base.layers.map((l) => l.digest));
    // A second build finds the base in the store: --pull=never works now.
    const offline = await strata(['build', '--root', fresh, '-q', '--pull', 'never', child]);
    expectOk(offline);
  }, 120_000);

  it('--pull=never with an image not in the store fails naming it and the Dockerfile line', async () => {
    const fresh = tempDir('reg-never');
    const child = makeContext(`FROM ${registry.host}/team/base:1\nRUN true\n`);
    cleanup.push(fresh, child);
    const run = await strata(['build', '--root', fresh, '--pull', 'never', child]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`image not found in the local store: ${registry.host}/team/base:1 (--pull=never)`);
    expect(run.stderr).toMatch(/Dockerfile:1/);
  }, 60_000);

  it('a reference by digest pulls that manifest; a missing tag is a clear registry error', async () => {
    const fresh = tempDir('reg-digest');
    cleanup.push(fresh);
    const byDigest = await strata(['pull', '--root', fresh, '-q', `${registry.host}/team/base@${baseDigest}`]);
    expectOk(byDigest);
    expect(lastLine(byDigest.stdout)).toBe(baseDigest);
    const missing = await strata(['pull', '--root', fresh, '-q', `${registry.host}/team/base:nope`]);
    expect(missing.code).toBe(1);
    expect(lastLine(missing.stderr)).toBe(`ERROR: ${registry.host}: GET /v2/team/base/manifests/nope: HTTP 404 MANIFEST_UNKNOWN: manifest unknown`);
  }, 60_000);

  it('a layer blob corrupted in the registry storage is refused and nothing of it is kept', async () => {
    // An image of its own: registry blob storage is shared by all repositories, other tests must not see the damage.
    const own = tempDir('reg-corrupt-src');
    const ownCtx = makeContext(`FROM ${baseRef}\nRUN echo corrupt-me-${Date.now()} > /unique\n`);
    cleanup.push(own, ownCtx);
    const corruptRef = `${registry.host}/corrupt/base:1`;
    expectOk(await strata(['build', '--root', own, '-q', '-t', corruptRef, '--push', ownCtx]));
    const manifest = JSON.parse(rawManifest(corruptRef).toString()) as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[manifest.layers.length - 1]!;
    // Same size, one byte changed in the middle: only the digest can tell.
    const file = registryBlobFile(registry, layer.digest);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const fresh = tempDir('reg-corrupt');
    cleanup.push(fresh);
    const run = await strata(['pull', '--root', fresh, corruptRef]);
    expect(run.code).toBe(1);
    expect(lastLine(run.stderr), run.stderr).toMatch(new RegExp(`^ERROR: blob ${layer.digest} has the wrong content \\(its bytes hash to sha256:[0-9a-f]{64}\\); nothing was kept$`));
    expect(fs.existsSync(path.join(fresh, 'blobs/sha256', layer.digest.slice(7)))).toBe(false);
    expect(fs.readdirSync(path.join(fresh, 'tags'))).toEqual([]);
    expect(fs.readdirSync(path.join(fresh, 'tmp'))).toEqual([]);
  }, 60_000);

  it('a multi-platform index resolves to the host platform, or to the one --platform asks for', async () => {
    const work = tempDir('reg-multi');
    cleanup.push(work);
    const layout = path.join(work, 'layout');
    const store = path.join(work, 'root');
    // Two images that differ in content, one relabelled arm64/v8, under one index.
    const mk = (arch: string) => makeContext(`FROM scratch\nADD busybox-rootfs.tar /\nRUN echo ${arch} > /which\n`);
    const amdCtx = mk('amd64');
    const armCtx = mk('arm64');
    cleanup.push(amdCtx, armCtx);
    expectOk(await strata(['build', '--root', store, '-q', '-t', 'multi:amd64', amdCtx]));
    expectOk(await strata(['build', '--root', store, '-q', '-t', 'multi:arm64', armCtx]));
    expectOk(await strata(['export', '--root', store, 'multi:amd64', `oci:${layout}:amd64`]));
    expectOk(await strata(['export', '--root', store, 'multi:arm64', `oci:${layout}:arm64`]));
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; mediaType: string; annotations: Record<string, string> }[] };
    const blob = (d: string) => path.join(layout, 'blobs/sha256', d.slice(7));
    const put = (b: Buffer) => {
      fs.writeFileSync(blob(sha256(b)), b);
      return { digest: sha256(b), size: b.length };
    };
    const entries = index.manifests.map((d) => {
      const arch = d.annotations['org.opencontainers.image.ref.name']!;
      if (arch === 'amd64') return { mediaType: d.mediaType, digest: d.digest, size: d.size, platform: { architecture: 'amd64', os: 'linux' } };
      const manifest = JSON.parse(fs.readFileSync(blob(d.digest), 'utf8'));
      const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
      manifest.config = { ...manifest.config, ...put(Buffer.from(JSON.stringify({ ...config, architecture: 'arm64', variant: 'v8' }))) };
      return { mediaType: d.mediaType, ...put(Buffer.from(JSON.stringify(manifest))), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } };
    });
    const indexBlob = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries })));
    fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
      schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...indexBlob, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }],
    }));
    const multiRef = `${registry.host}/multi/app:1`;
    execFileSync('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${multiRef}`], { stdio: 'pipe' });
    expect(sha256(rawManifest(multiRef))).toBe(indexBlob.digest);

    const host = process.arch === 'x64' ? 'amd64' : 'arm64';
    const pulled = async (...args: string[]) => {
      const fresh = tempDir('reg-multi-pull');
      cleanup.push(fresh);
      const run = await strata(['pull', '--root', fresh, '-q', ...args, multiRef]);
      expectOk(run);
      return lastLine(run.stdout);
    };
    expect(await pulled()).toBe(entries.find((e) => e.platform.architecture === host)!.digest);
    expect(await pulled('--platform', 'linux/arm64')).toBe(entries[1]!.digest);
    expect(await pulled('--platform', 'linux/amd64')).toBe(entries[0]!.digest);
    const fresh = tempDir('reg-multi-none');
    cleanup.push(fresh);
    const none = await strata(['pull', '--root', fresh, '--platform', 'linux/s390x', multiRef]);
    expect(lastLine(none.stderr)).toBe(`ERROR: ${multiRef}: no image for platform linux/s390x in the index (it has: linux/amd64, linux/arm64/v8)`);
    // FROM the index in a build: the host's image is the base.
    const child = makeContext(`FROM ${multiRef}\nRUN cat /which\n`);
    cleanup.push(child);
    const build = await strata(['build', '--root', fresh, '--progress', 'plain', child]);
    expectOk(build);
    expect(build.stderr).toMatch(new RegExp(`\\[1\\] ${host}\\n`));
  }, 180_000);
});

describe('podman', () => {
  it.skipIf(!tool('podman') || !tool('runc'))('runs the pushed image pulling it from the registry', () => {
    const pstore = tempDir('reg-podman');
    cleanup.push(pstore);
    const podman = ['--root', path.join(pstore, 'root'), '--runroot', path.join(pstore, 'run'), '--storage-driver', 'overlay', '--runtime', 'runc'];
    try {
      const out = execFileSync('podman', [...podman, 'run', '--rm', '--tls-verify=false', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
        baseRef, 'sh', '-c', 'cat /hello; ls /srv; test -e /bin/ls || echo no-ls'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      expect(out.trim().split('\n')).toEqual(['hi', 'only', 'no-ls']);
    } finally {
      execFileSync('podman', [...podman, 'rmi', '-a', '-f'], { stdio: 'ignore' });
    }
  }, 120_000);
});
