// examples/: the hello image the README builds, the multi-stage example run with podman, and the
// CI examples' command line (a `docker buildx build` line with only the command name changed)
// against a throwaway registry.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxTar, imageShape, peersDir, repoRoot, strata, tempDir, tool, type Run } from '../helpers.js';
import { startRegistry, type Registry } from '../registry-server.js';

const root = tempDir('examples-store');
const out = tempDir('examples-out');
const podmanStore = tempDir('examples-podman');
const cleanup: string[] = [root, out, podmanStore];
afterAll(() => {
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
});

function expectOk(run: Run): void {
  if (run.code !== 0) throw new Error(`strata exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
}

/** A copy of an example with the busybox base next to its Dockerfile (the repository keeps no tars). */
function exampleContext(name: string): string {
  const dir = path.join(tempDir(`example-${name}`), name);
  cleanup.push(path.dirname(dir));
  fs.cpSync(path.join(repoRoot, 'examples', name), dir, { recursive: true, filter: (src) => !src.endsWith('.tar') });
  fs.copyFileSync(busyboxTar, path.join(dir, 'busybox-rootfs.tar'));
  return dir;
}

const podmanRun = (archive: string, ...args: string[]): string =>
  execFileSync('sh', [path.join(peersDir, 'podman-run.sh'), archive, ...args], { env: { ...process.env, PSTORE: podmanStore }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

describe('examples/hello', () => {
  it('builds as scripts/setup.sh builds it, with the README\'s labels and command', async () => {
    const archive = path.join(out, 'hello.oci.tar');
    expectOk(await strata(['build', '--root', root, '-q', '-t', 'strata-example/hello:latest', '--output', `type=oci,dest=${archive}`, exampleContext('hello')]));
    const shape = imageShape(archive);
    expect(shape.config.config).toMatchObject({ Cmd: ['httpd', '-f', '-v', '-p', '8080', '-h', '/srv/www'], WorkingDir: '/srv/www', Labels: { 'org.opencontainers.image.title': 'strata hello example' } });
  });
});

describe('examples/multistage', () => {
  const archive = path.join(out, 'greet.docker.tar');
  let run: Run;
  beforeAll(async () => {
    run = await strata(['build', '--root', root, '--progress', 'plain', '-t', 'strata-example/greet:1', '--build-arg', 'VERSION=1.2.3', '-o', `type=docker,dest=${archive}`, exampleContext('multistage')]);
  });

  it('the build stage runs its tests; the final image holds only the result over the base', () => {
    expectOk(run);
    expect(run.stderr).toMatch(/\[\d\] ok - greets by name\n/);
    expect(run.stderr).toMatch(/\[\d\] built \/out\/greet version 1\.2\.3\n/);
    const ociArchive = path.join(out, 'greet.oci.tar');
    execFileSync('skopeo', ['copy', '-q', `docker-archive:${archive}`, `oci-archive:${ociArchive}`]);
    const shape = imageShape(ociArchive);
    expect(shape.layers).toHaveLength(2);
    expect(shape.layers[1].entries.map((e) => `${e.name} ${Number(e.mode).toString(8).slice(-3)}`)).toEqual(['usr 755', 'usr/local 755', 'usr/local/bin 755', 'usr/local/bin/greet 755']);
    expect(shape.config.config).toMatchObject({ Entrypoint: ['greet'], Cmd: ['world'], User: '65534:65534' });
  });

  it.skipIf(!tool('podman'))('runs with podman: the default CMD and arguments', () => {
    expect(podmanRun(`docker-archive:${archive}`)).toBe('hello, world (greet 1.2.3)\n');
    expect(podmanRun(`docker-archive:${archive}`, 'alice', 'bob')).toBe('hello, alice (greet 1.2.3)\nhello, bob (greet 1.2.3)\n');
  });
});

describe('a docker buildx build command line with the command name changed', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('-t X -f F --build-arg A=1 --push . builds and pushes; skopeo reads the pushed image', async () => {
    const ctx = exampleContext('multistage');
    const image = `${registry.host}/examples/greet:ci`;
    const buildx = ['build', '-t', image, '-f', 'Dockerfile', '--build-arg', 'VERSION=ci-1', '--push', '.'];
    const run = await strata([...buildx.slice(0, 1), '--root', root, '-q', ...buildx.slice(1)], { cwd: ctx });
    expectOk(run);
    const digest = run.stdout.trim();
    const pushed = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${image}`]).toString()) as { Digest: string; Labels: unknown; Layers: string[] };
    expect(pushed.Digest).toBe(digest);
    expect(pushed.Layers).toHaveLength(2);
  });
});
