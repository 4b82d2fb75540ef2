// Bearer token auth (the Docker registry token spec): distribution 2.8 checks tokens, so the token
// server is a small one in this test that signs RS256 JWTs with a key whose certificate the registry
// trusts. strata answers the registry's `WWW-Authenticate: Bearer realm=...` challenge by asking
// the realm for a token with its credentials, per scope (pull, then pull+push).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeContext, strata, tempDir } from '../helpers.js';
import { startRegistry, type Registry } from '../registry-server.js';

const USER = 'ci';
const PASSWORD = 'token-pass';
const SERVICE = 'strata-test-registry';
const ISSUER = 'strata-test-issuer';

const dir = tempDir('token');
let registry: Registry;
let tokenServer: http.Server;
/** every scope the token server was asked for, as "user scope" */
const requests: string[] = [];

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

function signToken(key: crypto.KeyObject, certDer: Buffer, subject: string, access: unknown[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
  const claims = { iss: ISSUER, sub: subject, aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
  const signed = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(crypto.sign('sha256', Buffer.from(signed), key))}`;
}

beforeAll(async () => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=strata test token signer',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'pipe' });
  const key = crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'key.pem')));
  const certDer = new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'cert.pem'))).raw;
  tokenServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const auth = req.headers.authorization ?? '';
    const [user, password] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':') : [];
    if (user !== USER || password !== PASSWORD || url.searchParams.get('service') !== SERVICE) {
      res.writeHead(401).end();
      return;
    }
    const access = url.searchParams.getAll('scope').map((scope) => {
      requests.push(`${user} ${scope}`);
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: actions.split(',') };
    });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: signToken(key, certDer, user, access), expires_in: 300 }));
  });
  await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
  registry = await startRegistry({ token: { realm, service: SERVICE, issuer: ISSUER, rootCertBundle: path.join(dir, 'cert.pem') } });
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await new Promise((resolve) => tokenServer?.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

it('pushes and pulls with tokens from the realm; without credentials the realm refuses and the error says so', async () => {
  const root = tempDir('token-root');
  const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nRUN echo tokened > /marker\n');
  try {
    const ref = `${registry.host}/team/app:1`;
    const built = await strata(['build', '--root', root, '-q', '-t', ref, '--push', '--creds', `${USER}:${PASSWORD}`, ctx]);
    expect(built.code, built.stderr).toBe(0);
    const digest = built.stdout.trim().split('\n').pop();
    // the registry stored what strata pushed, and a token with push rights was asked for the repository
    expect(requests).toContain(`${USER} repository:team/app:pull,push`);

    const fresh = tempDir('token-pull');
    const pulled = await strata(['pull', '--root', fresh, '-q', '--creds', `${USER}:${PASSWORD}`, ref]);
    fs.rmSync(fresh, { recursive: true, force: true });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout.trim().split('\n').pop()).toBe(digest);
    expect(requests).toContain(`${USER} repository:team/app:pull`);

    const anonRoot = tempDir('token-anon');
    const anonymous = await strata(['pull', '--root', anonRoot, ref], { env: { DOCKER_CONFIG: dir, REGISTRY_AUTH_FILE: path.join(dir, 'none.json') } });
    fs.rmSync(anonRoot, { recursive: true, force: true });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr.trim().split('\n').pop()).toMatch(/^ERROR: .*(401|token)/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(ctx, { recursive: true, force: true });
  }
}, 120_000);
