// ADD <url>: the file is downloaded with node's http/https clients (redirects followed, a timeout
// on silence), streamed to a temp file in the step's directory and hashed on the way; a
// `--checksum=sha256:<hex>` (or sha384/sha512) must match. As in Docker, the file gets mode 0600
// (unless --chmod), its mtime from Last-Modified (then clamped like every file), and it is never
// extracted, even when it is an archive.
//
// Caching: a step's cache key needs what ADD <url> will write. With --checksum the content is
// pinned, so the key is urlCacheInput(url, checksum) and a hit needs no request (as BuildKit: the
// Last-Modified mtime of a later download is then not seen, which matters only when
// SOURCE_DATE_EPOCH is later than it). Without --checksum nothing is known before downloading:
// fetchUrl() first, key on urlCacheInput(url, undefined, download), then hand the download to the
// COPY (CopyRequest.downloads) so the file is fetched once.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export class FetchError extends Error {}

export interface Download {
  url: string;
  /** the downloaded file (in the step's temp dir) */
  file: string;
  /** the name Docker gives it: the last component of the URL path, or `__unnamed__` */
  name: string;
  /** `sha256:<hex>` of the bytes */
  digest: string;
  /** seconds since the epoch from Last-Modified, when the server sent one */
  mtime?: number;
  size: number;
}

export interface FetchOptions {
  /** `algorithm:hex` the content must have */
  checksum?: string;
  /** milliseconds without any response data before giving up (default 60 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 10;
const ALGORITHMS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

export const isUrl = (source: string): boolean => /^https?:\/\//i.test(source);

/** A git source (`git@host:repo`, `git://`, `https://host/repo.git`, `...#ref`), which ADD would clone. */
export const isGitSource = (source: string): boolean =>
  /^git@[^:]+:/.test(source) || /^git:\/\//i.test(source) || (isUrl(source) && /\.git(#.*)?$/i.test(source));

/** The file name of a URL source, as BuildKit names it. */
export function urlFileName(url: string): string {
  try {
    const base = path.posix.basename(new URL(url).pathname);
    return base === '' || base === '.' || base === '/' ? '__unnamed__' : decodeURIComponent(base);
  } catch {
    return '__unnamed__';
  }
}

/** Validates `--checksum`: `sha256:<64 hex>` (sha384, sha512 too), lower-cased. */
export function parseChecksum(value: string): string {
  const match = /^(sha256|sha384|sha512):([0-9a-fA-F]+)$/.exec(value);
  if (!match || match[2].length !== ALGORITHMS[match[1]]) {
    throw new FetchError(`invalid --checksum=${value}: expected sha256:<64 hex digits> (or sha384, sha512)`);
  }
  return `${match[1]}:${match[2].toLowerCase()}`;
}

/** What a cache key of ADD <url> must cover (see the comment at the top). */
export function urlCacheInput(url: string, checksum?: string, download?: Download): string {
  if (checksum) return `url\0${url}\0${urlFileName(url)}\0checksum\0${parseChecksum(checksum)}`;
  if (!download) throw new FetchError(`${url}: without --checksum the cache key needs the download`);
  return `url\0${url}\0${download.name}\0${download.digest}\0${download.mtime ?? ''}`;
}

/** Downloads a URL into `dir` and checks its checksum. */
export async function fetchUrl(url: string, dir: string, opts: FetchOptions = {}): Promise<Download> {
  const checksum = opts.checksum ? parseChecksum(opts.checksum) : undefined;
  const algorithm = checksum?.split(':')[0] ?? 'sha256';
  const file = path.join(dir, `download-${crypto.randomBytes(6).toString('hex')}`);
  const response = await request(url, opts, 0);
  const sha256 = crypto.createHash('sha256');
  const verify = algorithm === 'sha256' ? sha256 : crypto.createHash(algorithm);
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sha256.update(chunk);
      if (verify !== sha256) verify.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(response, hasher, fs.createWriteStream(file, { mode: 0o600 }), { signal: opts.signal });
  } catch (err) {
    await fs.promises.rm(file, { force: true });
    throw err instanceof FetchError ? err : new FetchError(`${url}: download failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const expected = response.headers['content-length'];
  if (expected !== undefined && Number(expected) !== size) {
    await fs.promises.rm(file, { force: true });
    throw new FetchError(`${url}: download incomplete: ${size} of ${expected} bytes`);
  }
  const digest = `sha256:${sha256.digest('hex')}`;
  if (checksum) {
    const actual = verify === sha256 ? digest : `${algorithm}:${verify.digest('hex')}`;
    if (actual !== checksum) {
      await fs.promises.rm(file, { force: true });
      throw new FetchError(`${url}: checksum mismatch: expected ${checksum}, got ${actual}`);
    }
  }
  const lastModified = response.headers['last-modified'];
  const parsed = lastModified ? Date.parse(lastModified) : NaN;
  return {
    url,
    file,
    name: urlFileName(url),
    digest,
    mtime: Number.isNaN(parsed) ? undefined : Math.floor(parsed / 1000),
    size,
  };
}

function request(url: string, opts: FetchOptions, redirects: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new FetchError(`${url}: not a valid URL`));
      return;
    }
    const client = parsed.protocol === 'https:' ? https : http;
    const req = client.get(parsed, { signal: opts.signal, headers: { 'user-agent': 'strata' } }, (res) => {
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) {
          reject(new FetchError(`${url}: too many redirects`));
          return;
        }
        resolve(request(new URL(res.headers.location, parsed).toString(), opts, redirects + 1));
        return;
      }
      if (status < 200 || status >= 300) {
        res.resume();
        reject(new FetchError(`${url}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`));
        return;
      }
      res.setTimeout(opts.timeoutMs ?? 60_000, () => res.destroy(new FetchError(`${url}: no data for ${(opts.timeoutMs ?? 60_000) / 1000} s`)));
      resolve(res);
    });
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new FetchError(`${url}: no response for ${(opts.timeoutMs ?? 60_000) / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof FetchError ? err : new FetchError(`${url}: ${err.code ?? err.message}`)));
  });
}
