// A client for one registry speaking the OCI distribution API (/v2/): it finds the scheme, answers
// Basic and Bearer challenges, follows redirects and retries 5xx answers and dropped connections
// with backoff. Endpoint helpers below it are what pull.ts and push.ts use.

import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { registryHost } from '../../image/reference.js';
import type { Digest } from '../../image/types.js';
import { basicAuthorization, findCredentials, parseChallenge, type Challenge, type Credentials } from './auth.js';
import { header, isPlainHttpServer, readBody, send, type TlsSettings } from './http.js';

export interface RegistryOptions {
  /** USERNAME:PASSWORD; otherwise the auth files (auth.ts) */
  creds?: string;
  /** registries spoken to over plain HTTP, or HTTPS without certificate checks */
  insecureRegistries?: string[];
  /** CA certificates (*.crt) and a client pair (*.cert, *.key) for every registry; default
   * /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST */
  certDir?: string;
}

export class RegistryError extends Error {
  constructor(message: string, readonly status?: number, readonly code?: string) {
    super(message);
  }
}

const MaxAttempts = 5;
const MaxRedirects = 5;
const backoffMs = (attempt: number): number => 250 * 2 ** attempt;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const pullScope = (repository: string) => `repository:${repository}:pull`;
export const pushScope = (repository: string) => `repository:${repository}:pull,push`;

interface Call {
  headers?: Record<string, string>;
  body?: () => Buffer | Readable;
  /** token scopes this call needs ("repository:team/app:pull") */
  scopes: string[];
  /** statuses returned to the caller; anything else is an error */
  expect: number[];
}

export class RegistryClient {
  readonly host: string;
  private base?: URL;
  private challenge?: Challenge;
  private readonly tokens = new Map<string, string>();
  private readonly tls: TlsSettings;
  private readonly insecure: boolean;
  private readonly credentials?: Credentials;

  constructor(readonly registry: string, opts: RegistryOptions = {}) {
    this.host = registryHost(registry);
    this.insecure = (opts.insecureRegistries ?? []).some((r) => r === registry || r === this.host);
    this.tls = { verify: !this.insecure, ...certificates(this.host, opts.certDir) };
    this.credentials = findCredentials(registry, opts.creds);
  }

  /** Loopback registries may speak plain HTTP without being named insecure, as in Docker. */
  private get mayBePlainHttp(): boolean {
    const hostname = this.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return this.insecure || hostname === 'localhost' || (isIP(hostname) === 4 && hostname.startsWith('127.')) || hostname === '::1';
  }

  /** GET /v2/ over HTTPS (then HTTP when allowed) to learn the scheme and the auth challenge. */
  private async connect(): Promise<URL> {
    if (this.base) return this.base;
    const attempt = async (scheme: 'https' | 'http'): Promise<URL> => {
      const base = new URL(`${scheme}://${this.host}`);
      const res = await this.retrying(() => send({ method: 'GET', url: new URL('/v2/', base) }, this.tls));
      res.resume();
      if (res.statusCode === 401) this.challenge = parseChallenge(header(res.headers, 'www-authenticate'));
      else if ((res.statusCode ?? 0) >= 400) throw new RegistryError(`${this.host} does not answer the registry API (/v2/: HTTP ${res.statusCode})`, res.statusCode);
      return base;
    };
    try {
      this.base = await attempt('https');
    } catch (err) {
      if (!this.mayBePlainHttp || !(isPlainHttpServer(err) || this.insecure)) {
        const hint = isPlainHttpServer(err) ? ` (it speaks plain HTTP: use --insecure-registry ${this.registry})` : '';
        throw new RegistryError(`cannot reach registry ${this.host} over HTTPS: ${(err as Error).message}${hint}`);
      }
      this.base = await attempt('http');
    }
    return this.base;
  }

  /** Calls `op` again after a dropped connection or a 5xx/429 answer, waiting longer each time. */
  private async retrying(op: () => Promise<IncomingMessage>): Promise<IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt === MaxAttempts - 1;
      let res: IncomingMessage;
      try {
        res = await op();
      } catch (err) {
        if (!(err as { retryable?: boolean }).retryable || last) throw err;
        await sleep(backoffMs(attempt));
        continue;
      }
      const status = res.statusCode ?? 0;
      if ((status >= 500 || status === 429) && !last) {
        res.resume();
        await sleep(backoffMs(attempt));
        continue;
      }
      return res;
    }
  }

  async request(method: string, target: string | URL, call: Call): Promise<IncomingMessage> {
    const base = await this.connect();
    const url = new URL(target, base);
    let res = await this.retrying(() => this.follow(method, url, call));
    if (res.statusCode === 401) {
      // A new or wider challenge (a token for another scope): answer it once.
      const challenge = parseChallenge(header(res.headers, 'www-authenticate'));
      res.resume();
      if (challenge) {
        this.challenge = challenge;
        this.tokens.clear();
        const extra = challenge.params.get('scope');
        res = await this.retrying(() => this.follow(method, url, { ...call, scopes: extra ? [...new Set([...call.scopes, ...extra.split(' ')])] : call.scopes }));
      }
    }
    if (!call.expect.includes(res.statusCode ?? 0)) throw await this.errorOf(res, method, url);
    return res;
  }

  private async follow(method: string, url: URL, call: Call): Promise<IncomingMessage> {
    let current = url;
    let currentMethod = method;
    for (let hop = 0; ; hop++) {
      const sameOrigin = current.origin === this.base!.origin;
      const headers = { ...call.headers };
      // Credentials never travel to a redirect target elsewhere (blob storage with signed URLs).
      if (sameOrigin) {
        const authorization = await this.authorization(call.scopes);
        if (authorization) headers.Authorization = authorization;
      }
      const res = await send({ method: currentMethod, url: current, headers, body: currentMethod === method ? call.body : undefined }, this.tls);
      const status = res.statusCode ?? 0;
      const location = header(res.headers, 'location');
      if (![301, 302, 303, 307, 308].includes(status) || !location || !['GET', 'HEAD'].includes(method)) return res;
      res.resume();
      if (hop >= MaxRedirects) throw new RegistryError(`${method} ${url}: more than ${MaxRedirects} redirects`);
      current = new URL(location, current);
      if (status === 303) currentMethod = 'GET';
    }
  }

  private async authorization(scopes: string[]): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return this.credentials && basicAuthorization(this.credentials);
    const key = [...scopes].sort().join(' ');
    let token = this.tokens.get(key);
    if (!token) {
      token = await this.fetchToken(challenge, scopes);
      this.tokens.set(key, token);
    }
    return `Bearer ${token}`;
  }

  /** GET realm?service=...&scope=... with Basic credentials when there are any (token spec). */
  private async fetchToken(challenge: Challenge, scopes: string[]): Promise<string> {
    const realm = challenge.params.get('realm');
    if (!realm) throw new RegistryError(`${this.host}: Bearer challenge without a realm`);
    const url = new URL(realm);
    const service = challenge.params.get('service');
    if (service) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.Authorization = basicAuthorization(this.credentials);
    const res = await this.retrying(() => send({ method: 'GET', url, headers }, this.tls));
    const body = await readBody(res, 1 << 20);
    if (res.statusCode !== 200) {
      const who = this.credentials ? `credentials from ${this.credentials.origin}` : 'no credentials';
      throw new RegistryError(`token server ${url.origin} refused a token for ${scopes.join(' ')} (${who}): HTTP ${res.statusCode}`, res.statusCode);
    }
    const parsed = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string };
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new RegistryError(`token server ${url.origin} answered without a token`);
    return token;
  }

  /** A one-line error from the distribution error body ({"errors":[{"code","message"}]}). */
  private async errorOf(res: IncomingMessage, method: string, url: URL): Promise<RegistryError> {
    const status = res.statusCode ?? 0;
    const body = method === 'HEAD' ? Buffer.alloc(0) : await readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
    let code: string | undefined;
    let detail = '';
    try {
      const errors = (JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
      code = errors[0]?.code;
      detail = errors.map((e) => `${e.code}: ${e.message}`).join('; ');
    } catch {
      detail = body.toString('utf8').trim().slice(0, 200);
    }
    let hint = '';
    if (status === 401) hint = this.credentials ? ` (credentials from ${this.credentials.origin} were not accepted)` : ' (no credentials: use --creds or log in)';
    return new RegistryError(`${this.host}: ${method} ${url.pathname}: HTTP ${status}${detail ? ` ${detail}` : ''}${hint}`, status, code);
  }

  // ---- endpoints

  async getManifest(repository: string, reference: string, accept: string[]): Promise<{ bytes: Buffer; mediaType?: string; digest?: string }> {
    const res = await this.request('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { Accept: accept.join(', ') }, scopes: [pullScope(repository)], expect: [200],
    });
    const bytes = await readBody(res, 4 << 20);
    return { bytes, mediaType: header(res.headers, 'content-type')?.split(';')[0]?.trim(), digest: header(res.headers, 'docker-content-digest') };
  }

  async hasBlob(repository: string, digest: Digest, scopes = [pullScope(repository)]): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, { scopes, expect: [200, 404] });
    res.resume();
    return res.statusCode === 200;
  }

  async getBlob(repository: string, digest: Digest): Promise<IncomingMessage> {
    return this.request('GET', `/v2/${repository}/blobs/${digest}`, { scopes: [pullScope(repository)], expect: [200] });
  }

  /** POST an upload session; with `mountFrom` the registry may link the blob from that repository instead (201). */
  async startUpload(repository: string, mount?: { digest: Digest; from: string }): Promise<{ mounted: true } | { mounted: false; location: URL }> {
    const query = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
    const scopes = mount ? [pushScope(repository), pullScope(mount.from)] : [pushScope(repository)];
    const res = await this.request('POST', `/v2/${repository}/blobs/uploads/${query}`, { scopes, expect: [201, 202], body: () => Buffer.alloc(0) });
    res.resume();
    if (res.statusCode === 201) return { mounted: true };
    return { mounted: false, location: this.uploadLocation(res) };
  }

  private uploadLocation(res: IncomingMessage): URL {
    const location = header(res.headers, 'location');
    if (!location) throw new RegistryError(`${this.host}: upload answer without a Location`);
    return new URL(location, this.base);
  }

  /** The whole blob in one PUT ...?digest= (monolithic upload). */
  async putBlob(repository: string, location: URL, digest: Digest, file: string, size: number, onBytes: (n: number) => void): Promise<void> {
    const url = withDigest(location, digest);
    const res = await this.request('PUT', url, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body: () => counted(createReadStream(file), onBytes),
      scopes: [pushScope(repository)],
      expect: [201],
    });
    res.resume();
  }

  /** PATCH chunks in order with Content-Range, then PUT ...?digest= with no body (chunked upload). */
  async patchBlob(repository: string, location: URL, digest: Digest, file: string, size: number, chunkSize: number, onBytes: (n: number) => void): Promise<void> {
    let url = location;
    for (let start = 0; start < size; start += chunkSize) {
      const end = Math.min(size, start + chunkSize) - 1;
      let sent = 0;
      const res = await this.request('PATCH', url, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start + 1), 'Content-Range': `${start}-${end}` },
        body: () => {
          // A retried chunk counts from its start again.
          onBytes(-sent);
          sent = 0;
          return counted(createReadStream(file, { start, end }), (n) => { sent += n; onBytes(n); });
        },
        scopes: [pushScope(repository)],
        expect: [202],
      });
      res.resume();
      url = this.uploadLocation(res);
    }
    const res = await this.request('PUT', withDigest(url, digest), { scopes: [pushScope(repository)], expect: [201], body: () => Buffer.alloc(0) });
    res.resume();
  }

  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
    const res = await this.request('PUT', `/v2/${repository}/manifests/${reference}`, {
      headers: { 'Content-Type': mediaType },
      body: () => bytes,
      scopes: [pushScope(repository)],
      expect: [201],
    });
    res.resume();
    return header(res.headers, 'docker-content-digest');
  }
}

function withDigest(location: URL, digest: Digest): URL {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url;
}

function counted(stream: Readable, onBytes: (n: number) => void): Readable {
  return stream.pipe(new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  }));
}

/** CA and client certificates in the certs.d convention: *.crt are CAs, NAME.cert + NAME.key a client pair. */
function certificates(host: string, certDir?: string): Pick<TlsSettings, 'ca' | 'cert' | 'key'> {
  const dirs = certDir ? [certDir] : [path.join('/etc/containers/certs.d', host), path.join('/etc/docker/certs.d', host)];
  const ca: Buffer[] = [];
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  for (const dir of dirs) {
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) continue;
    for (const name of readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      if (name.endsWith('.crt')) ca.push(readFileSync(file));
      else if (name.endsWith('.cert')) {
        cert = readFileSync(file);
        key = readFileSync(file.replace(/\.cert$/, '.key'));
      }
    }
  }
  return { ca, cert, key };
}
