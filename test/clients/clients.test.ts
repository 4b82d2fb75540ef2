// The built image checked by real clients from Debian: skopeo, oci-image-tool, umoci and podman read
// (and run) what strata wrote, in all three output formats.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageShape, makeContext, strata, tempDir, tool } from '../helpers.js';

// The README example shape over the busybox base: a RUN filling /srv, then a RUN deleting a base file
// (whiteout) and replacing /srv (opaque dir), then metadata.
const DOCKERFILE = [
  'FROM scratch',
  'ADD busybox-rootfs.tar /',
  'RUN mkdir -p /srv && echo old > /srv/old-content && echo keep > /srv/keep',
  'RUN rm /bin/ls && echo hi > /hello && rm -rf /srv && mkdir /srv && echo x > /srv/new',
  'ENV VAR=value-from-env',
  'WORKDIR /app',
  'CMD ["cat","/srv/new"]',
  '',
].join('\n');

const TAG = 'test/clients:1';
const work = tempDir('clients');
const A = path.join(work, 'A.tar'); // OCI archive
const B = path.join(work, 'B.tar'); // docker-archive
const DIR = path.join(work, 'DIR'); // OCI layout directory
let digest = '';

/** Runs a tool, failing the test with its output when it exits non-zero. */
function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const sha256File = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function buildTo(root: string, outputs: string[], tags: string[] = []): Promise<string> {
  const ctx = makeContext(DOCKERFILE);
  try {
    const r = await strata(['build', '--root', root, '--progress', 'plain', ...outputs.flatMap((o) => ['--output', o]), ...tags.flatMap((t) => ['-t', t]), ctx]);
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    const printed = r.stdout.trim();
    expect(printed).toMatch(/^sha256:[0-9a-f]{64}$/);
    return printed;
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  const root = path.join(work, 'store');
  digest = await buildTo(root, [`type=oci,dest=${A}`, `type=docker,dest=${B}`, `type=oci-dir,dest=${DIR}`], [TAG]);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('skopeo', () => {
  it.skipIf(!tool('skopeo'))('inspect reads the OCI archive: the digest strata printed, one layer per diff_id', () => {
    const inspected = JSON.parse(run('skopeo', ['inspect', `oci-archive:${A}`])) as { Digest: string; Layers: string[]; Env: string[]; Os: string };
    const config = JSON.parse(run('skopeo', ['inspect', '--config', `oci-archive:${A}`])) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[]; WorkingDir: string } };
    expect(inspected.Digest).toBe(digest);
    expect(inspected.Os).toBe('linux');
    expect(inspected.Env).toContain('VAR=value-from-env');
    // ADD, two RUNs and WORKDIR's directory: four layers, each a diff_id
    expect(config.rootfs.diff_ids).toHaveLength(4);
    expect(inspected.Layers).toHaveLength(config.rootfs.diff_ids.length);
    expect(config.config.Cmd).toEqual(['cat', '/srv/new']);
    expect(config.config.WorkingDir).toBe('/app');
    // the independent Python reader agrees on the diff_ids (it hashes the uncompressed layers)
    expect(imageShape(A).layers.map((l) => l.diff_id)).toEqual(config.rootfs.diff_ids);
  });

  it.skipIf(!tool('skopeo'))('inspect reads the docker-archive and the layout dir as the same image config', () => {
    const fromOci = run('skopeo', ['inspect', '--config', `oci-archive:${A}`]);
    const fromDocker = JSON.parse(run('skopeo', ['inspect', '--config', `docker-archive:${B}`])) as { rootfs: { diff_ids: string[] }; config: { Env: string[] } };
    const fromDir = run('skopeo', ['inspect', '--config', `oci:${DIR}:1`]);
    expect(fromDir).toBe(fromOci);
    expect(fromDocker.rootfs.diff_ids).toEqual((JSON.parse(fromOci) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids);
    expect(fromDocker.config.Env).toContain('VAR=value-from-env');
  });

  it.skipIf(!tool('skopeo') || !tool('oci-image-tool'))('copy verifies every blob digest; oci-image-tool validates both layouts', () => {
    const layout = path.join(work, 'LAYOUT');
    run('skopeo', ['copy', '-q', `oci-archive:${A}`, `oci:${layout}:1`]);
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    // skopeo keeps the manifest bytes, so the digest survives the copy
    expect(index.manifests.map((m) => m.digest)).toEqual([digest]);
    for (const dir of [DIR, layout]) {
      const out = run('oci-image-tool', ['validate', '--type', 'image', dir]);
      expect(out).toContain('Validation succeeded');
    }
    // every blob in strata's layout is named by its content's digest
    const blobs = fs.readdirSync(path.join(DIR, 'blobs', 'sha256'));
    expect(blobs.length).toBe(6); // manifest, config, 4 layers
    for (const blob of blobs) expect(sha256File(path.join(DIR, 'blobs', 'sha256', blob))).toBe(blob);
  });
});

describe('umoci', () => {
  it.skipIf(!tool('umoci'))('unpacks the oci-dir output by its tag: the tree, whiteout and opaque dir applied, runtime config', () => {
    const bundle = path.join(work, 'BUNDLE');
    run('umoci', ['unpack', '--image', `${DIR}:1`, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    expect(fs.readFileSync(path.join(rootfs, 'srv/new'), 'utf8')).toBe('x\n');
    expect(fs.readFileSync(path.join(rootfs, 'hello'), 'utf8')).toBe('hi\n');
    expect(fs.readdirSync(path.join(rootfs, 'srv'))).toEqual(['new']); // opaque: old-content and keep hidden
    expect(fs.existsSync(path.join(rootfs, 'srv/old-content'))).toBe(false);
    expect(fs.lstatSync(path.join(rootfs, 'bin/cat')).isSymbolicLink()).toBe(true);
    expect(fs.existsSync(path.join(rootfs, 'bin/ls'))).toBe(false); // whiteout
    expect(fs.lstatSync(path.join(rootfs, 'app')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(rootfs, 'bin/busybox')).equals(fs.readFileSync('/bin/busybox'))).toBe(true);
    expect(fs.statSync(path.join(rootfs, 'tmp')).mode & 0o7777).toBe(0o1777);
    const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { process: { env: string[]; cwd: string; args: string[] } };
    expect(config.process.env).toContain('VAR=value-from-env');
    expect(config.process.env).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(config.process.cwd).toBe('/app');
    expect(config.process.args).toEqual(['cat', '/srv/new']);
  });
});

describe('podman', () => {
  const podman = (store: string, args: string[]): string =>
    run('podman', ['--root', path.join(store, 'root'), '--runroot', path.join(store, 'run'), '--storage-driver', 'overlay', '--runtime', 'runc', ...args]);
  const runFlags = ['run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

  for (const [kind, archive] of [['docker-archive', B], ['OCI archive', A]] as const) {
    it.skipIf(!tool('podman') || !tool('runc'))(`loads the ${kind} and runs it: CMD, WORKDIR and ENV`, () => {
      const store = tempDir('podman');
      try {
        const loaded = podman(store, ['load', '-q', '-i', archive]);
        expect(loaded).toContain(`localhost/${TAG}`);
        const images = podman(store, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).trim();
        // podman's image ID is the config digest
        const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { config: { digest: string } };
        expect(images).toBe(`localhost/${TAG} ${manifest.config.digest.slice(7, 19)}`);
        expect(podman(store, [...runFlags, `localhost/${TAG}`])).toBe('x\n');
        expect(podman(store, [...runFlags, `localhost/${TAG}`, 'sh', '-c', 'pwd; echo $VAR; ls /srv; test -e /bin/ls || echo no-ls'])).toBe('/app\nvalue-from-env\nnew\nno-ls\n');
        expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(store); // --rm unmounted the container
      } finally {
        fs.rmSync(store, { recursive: true, force: true });
      }
    });
  }
});

describe('reproducible output', () => {
  it('two builds with fresh stores write byte-identical OCI archives (same manifest digest)', async () => {
    const again: string[] = [];
    for (const n of [1, 2]) {
      const archive = path.join(work, `again-${n}.tar`);
      const d = await buildTo(path.join(work, `store-${n}`), [`type=oci,dest=${archive}`], [TAG]);
      expect(d).toBe(digest);
      again.push(archive);
    }
    expect(sha256File(again[0])).toBe(sha256File(again[1]));
    expect(fs.readFileSync(again[0]).equals(fs.readFileSync(A))).toBe(true);
    // and the archive names the manifest strata printed
    const index = execFileSync('tar', ['-xOf', again[0], 'index.json']).toString();
    expect((JSON.parse(index) as { manifests: { digest: string }[] }).manifests[0].digest).toBe(digest);
  });
});
