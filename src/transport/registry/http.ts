// One HTTP(S) exchange with a registry over node:http/https, plus what retries need to know about
// failures. Redirects, authentication and retries are the client's business (client.ts).

import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';

export interface TlsSettings {
  /** Extra trusted CAs, added to node's bundled roots. */
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  /** false only for registries named with --insecure-registry */
  verify: boolean;
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A body is produced anew for every attempt, so a retried upload sends the whole chunk again. */
  body?: () => Buffer | Readable;
}

/** A network failure worth another attempt (the connection dropped, timed out or was refused mid-way). */
export class TransientNetworkError extends Error {
  readonly retryable = true;
}

const RetryableCodes = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);
/** Idle time after which a connection counts as dead (a stalled blob download is retried). */
const SocketTimeoutMs = 60_000;

const agents = { http: new http.Agent({ keepAlive: true }), https: new Map<string, https.Agent>() };

function httpsAgent(tls: TlsSettings): https.Agent {
  const key = JSON.stringify([tls.verify, tls.ca?.map((c) => c.toString('base64')), tls.cert?.length, tls.key?.length]);
  let agent = agents.https.get(key);
  if (!agent) {
    agent = new https.Agent({
      keepAlive: true,
      // Passing `ca` replaces node's bundled roots, so they are added back.
      ca: tls.ca?.length ? [...rootCertificates, ...tls.ca] : undefined,
      cert: tls.cert,
      key: tls.key,
      rejectUnauthorized: tls.verify,
    });
    agents.https.set(key, agent);
  }
  return agent;
}

/** Sends the request and resolves with the response head; the body is for the caller to read or discard. */
export function send(req: HttpRequest, tls: TlsSettings): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const isHttps = req.url.protocol === 'https:';
    const body = req.body?.();
    const headers: Record<string, string> = { 'User-Agent': 'strata', ...req.headers };
    if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
    const options = { method: req.method, headers, agent: isHttps ? httpsAgent(tls) : agents.http };
    const request = (isHttps ? https : http).request(req.url, options, resolve);
    request.setTimeout(SocketTimeoutMs, () => {
      request.destroy(Object.assign(new Error(`no data for ${SocketTimeoutMs / 1000}s`), { code: 'ETIMEDOUT' }));
    });
    request.on('error', (err: NodeJS.ErrnoException) => {
      if (body instanceof Readable) body.destroy();
      reject(classify(err, req));
    });
    if (body instanceof Readable) {
      body.on('error', (err) => request.destroy(err));
      body.pipe(request);
    } else {
      request.end(body);
    }
  });
}

function classify(err: NodeJS.ErrnoException, req: HttpRequest): Error {
  const what = `${req.method} ${req.url.origin}${req.url.pathname}`;
  if (err.code && RetryableCodes.has(err.code)) return new TransientNetworkError(`${what}: ${err.code} ${err.message}`, { cause: err });
  return Object.assign(new Error(`${what}: ${err.message}`, { cause: err }), { code: err.code });
}

/** Whether an HTTPS attempt met a server that speaks plain HTTP (a TLS record it cannot parse). */
export function isPlainHttpServer(err: unknown): boolean {
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code === 'EPROTO' || cause?.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(cause?.message ?? '');
}

export async function readBody(res: IncomingMessage, limit = 8 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res) {
    length += (chunk as Buffer).length;
    if (length > limit) {
      res.destroy();
      throw new Error(`response from ${res.url ?? 'the registry'} is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
