// A registry with htpasswd (Basic) auth over TLS, its certificate signed by a CA this test makes:
// credentials from --creds, $REGISTRY_AUTH_FILE and $DOCKER_CONFIG, the CA from --cert-dir, and the
// errors when any of them is missing or wrong.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeContext, strata, tempDir, type Run } from '../helpers.js';
import { startRegistry, type Registry } from '../registry-server.js';

const expectOk = (run: Run) => expect(run.code, run.stderr).toBe(0);
const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';
const USER = 'builder';
const PASSWORD = 'pa:ss wörd';

let registry: Registry;
let root: string;
let ctx: string;
let ref: string;
let digest: string;
const cleanup: string[] = [];

beforeAll(async () => {
  registry = await startRegistry({ tls: true, users: { [USER]: PASSWORD } });
  root = tempDir('auth-root');
  ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo secret-base > /marker\n');
  cleanup.push(root, ctx);
  ref = `${registry.host}/private/base:1`;
  const built = await strata(['build', '--root', root, '-q', '-t', ref, ctx]);
  expectOk(built);
  digest = lastLine(built.stdout);
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  for (const dir of cleanup) fs.rmSync(dir, { recursive: true, force: true });
});

const authArgs = () => ['--cert-dir', registry.certDir!, '--creds', `${USER}:${PASSWORD}`];

it('pushes with --creds and the test CA; skopeo with the same CA and credentials reads the same digest', async () => {
  const run = await strata(['push', '--root', root, '-q', ...authArgs(), ref]);
  expectOk(run);
  expect(lastLine(run.stdout)).toBe(digest);
  const raw = execFileSync('skopeo', ['inspect', '--raw', '--cert-dir', registry.certDir!, '--creds', `${USER}:${PASSWORD}`, `docker://${ref}`]);
  expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(digest);
}, 60_000);

it('without the CA the certificate is refused, and plain HTTP is not tried behind its back', async () => {
  const run = await strata(['pull', '--root', tempDir('auth-noca'), '--creds', `${USER}:${PASSWORD}`, ref]);
  expect(run.code).toBe(1);
  expect(lastLine(run.stderr)).toMatch(new RegExp(`^ERROR: cannot reach registry ${registry.host} over HTTPS: GET https://${registry.host}/v2/: (self[- ]signed certificate in certificate chain|unable to verify the first certificate)`));
}, 60_000);

it('--insecure-registry accepts the unverified certificate', async () => {
  const fresh = tempDir('auth-insecure');
  cleanup.push(fresh);
  const run = await strata(['pull', '--root', fresh, '-q', '--insecure-registry', registry.host, '--creds', `${USER}:${PASSWORD}`, ref]);
  expectOk(run);
  expect(lastLine(run.stdout)).toBe(digest);
}, 60_000);

it('no credentials, or wrong ones: a 401 that says which', async () => {
  const none = await strata(['pull', '--root', tempDir('auth-none'), '--cert-dir', registry.certDir!, ref], { env: { HOME: tempDir('auth-home'), DOCKER_CONFIG: '', REGISTRY_AUTH_FILE: '' } });
  expect(none.code).toBe(1);
  expect(lastLine(none.stderr)).toBe(`ERROR: ${registry.host}: GET /v2/private/base/manifests/1: HTTP 401 UNAUTHORIZED: authentication required (no credentials: use --creds or log in)`);
  const wrong = await strata(['pull', '--root', tempDir('auth-wrong'), '--cert-dir', registry.certDir!, '--creds', `${USER}:nope`, ref]);
  expect(wrong.code).toBe(1);
  expect(lastLine(wrong.stderr)).toBe(`ERROR: ${registry.host}: GET /v2/private/base/manifests/1: HTTP 401 UNAUTHORIZED: authentication required (credentials from --creds were not accepted)`);
}, 60_000);

it('credentials from $REGISTRY_AUTH_FILE (pull) and $DOCKER_CONFIG/config.json (FROM in a build)', async () => {
  const authDir = tempDir('auth-files');
  cleanup.push(authDir);
  const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
  const authFile = path.join(authDir, 'auth.json');
  fs.writeFileSync(authFile, JSON.stringify({ auths: { [registry.host]: { auth } } }));
  const fresh = tempDir('auth-file-pull');
  cleanup.push(fresh);
  const pulled = await strata(['pull', '--root', fresh, '-q', '--cert-dir', registry.certDir!, ref], { env: { REGISTRY_AUTH_FILE: authFile } });
  expectOk(pulled);
  expect(lastLine(pulled.stdout)).toBe(digest);

  const dockerConfig = path.join(authDir, 'docker');
  fs.mkdirSync(dockerConfig);
  fs.writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [`https://${registry.host}`]: { auth } } }));
  const child = makeContext(`FROM ${ref}\nRUN cat /marker\n`);
  const built = tempDir('auth-file-build');
  cleanup.push(child, built);
  const run = await strata(['build', '--root', built, '--progress', 'plain', '--cert-dir', registry.certDir!, child], { env: { DOCKER_CONFIG: dockerConfig, REGISTRY_AUTH_FILE: '' } });
  expectOk(run);
  expect(run.stderr).toMatch(/\[1\] secret-base\n/);
}, 120_000);
