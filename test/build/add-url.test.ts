// ADD <url> against a local HTTP server started here (no internet): naming, mode 0600, mtime from
// Last-Modified, no extraction, redirects, --checksum, and errors on the ADD's line.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxTar, makeContext, imageShape, strata, tempDir } from '../helpers.js';

const root = tempDir('addurl-store');
const out = tempDir('addurl-out');
const contexts: string[] = [];
const archive = zlib.gzipSync(fs.readFileSync(busyboxTar).subarray(0, 4096 * 4));
const script = Buffer.from('#!/bin/sh\necho tool\n');
const LAST_MODIFIED = 'Sat, 03 Feb 2001 04:05:06 GMT';
const requests: string[] = [];
let server: http.Server;
let base = '';

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/files/tool.tar.gz') {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length, 'last-modified': LAST_MODIFIED });
      res.end(archive);
    } else if (req.url === '/files/tool.sh') {
      res.writeHead(200, { 'content-length': script.length });
      res.end(script);
    } else if (req.url === '/moved') {
      res.writeHead(302, { location: '/files/tool.sh' });
      res.end();
    } else {
      res.writeHead(404);
      res.end('missing');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  for (const dir of [root, out, ...contexts]) fs.rmSync(dir, { recursive: true, force: true });
});

let builds = 0;
async function build(dockerfile: string, env: Record<string, string> = {}) {
  const ctx = makeContext(dockerfile);
  contexts.push(ctx);
  const archivePath = path.join(out, `image-${++builds}.tar`);
  const run = await strata(['build', '--root', root, '--progress', 'plain', '--output', `type=oci,dest=${archivePath}`, ctx], { env });
  return { ...run, archive: archivePath };
}

const sha256 = (data: Buffer): string => `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;

describe('ADD <url>', () => {
  it('downloads without extracting: basename of the URL path, mode 0600, mtime from Last-Modified', async () => {
    const run = await build(`FROM scratch\nADD ${base}/files/tool.tar.gz /dl/\n`, { SOURCE_DATE_EPOCH: '4000000000' });
    expect(run.stderr).not.toContain('ERROR');
    expect(run.code).toBe(0);
    const [layer] = imageShape(run.archive).layers;
    const file = layer.entries.find((e) => e.name === 'dl/tool.tar.gz') as (typeof layer.entries)[number] & { mtime: number };
    expect(layer.entries.map((e) => e.name)).toEqual(['dl', 'dl/tool.tar.gz']);
    expect(Number(file.mode) & 0o7777).toBe(0o600);
    expect([file.uid, file.gid, file.size]).toEqual([0, 0, archive.length]);
    expect(file.mtime).toBe(Date.parse(LAST_MODIFIED) / 1000);
  });

  it('follows redirects, checks --checksum, names a destination without a slash as given, applies --chmod/--chown', async () => {
    const run = await build(`FROM scratch\nADD --checksum=${sha256(script)} --chmod=755 --chown=5:6 ${base}/moved /usr/bin/tool\n`);
    expect(run.stderr).not.toContain('ERROR');
    const [layer] = imageShape(run.archive).layers;
    const file = layer.entries.find((e) => e.name === 'usr/bin/tool');
    expect(file && [Number(file.mode) & 0o7777, file.uid, file.gid, file.size]).toEqual([0o755, 5, 6, script.length]);
    expect(requests).toContain('/moved');
  });

  it('a checksum mismatch, a missing file and a checksum on a local source fail on the ADD line', async () => {
    const wrong = sha256(Buffer.from('something else'));
    let run = await build(`FROM scratch\nADD --checksum=${wrong} ${base}/files/tool.sh /t\n`);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`>>>2 | ADD --checksum=${wrong}`);
    expect(run.stderr).toContain(`ERROR: ${base}/files/tool.sh: checksum mismatch: expected ${wrong}, got ${sha256(script)}`);

    run = await build(`FROM scratch\nADD ${base}/nothing-here /t\n`);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`>>>2 | ADD ${base}/nothing-here /t`);
    expect(run.stderr).toContain(`ERROR: ${base}/nothing-here: HTTP 404`);

    run = await build('FROM scratch\nADD --checksum=sha256:0123 busybox-rootfs.tar /\n');
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(">>>2 | ADD --checksum=sha256:0123 busybox-rootfs.tar /");
    expect(run.stderr).toContain("ERROR: checksum can't be specified for non-HTTP sources");

    run = await build(`FROM scratch\nADD --checksum=sha256:0123 ${base}/files/tool.sh /t\n`);
    expect(run.stderr).toContain('ERROR: invalid --checksum=sha256:0123: expected sha256:<64 hex digits>');
  });
});
