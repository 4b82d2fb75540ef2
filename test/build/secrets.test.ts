// `strata build --secret` and RUN --mount=type=secret: the RUN reads the secret (file or env), and its
// value is nowhere in the result: not in a layer, the config, the history, the store or a mount.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageShape, makeContext, overlayMountsUnder, strata, tempDir, type Run } from '../helpers.js';

const root = tempDir('secret-store');
const out = tempDir('secret-out');
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

const SECRET = `s3cr3t-${randomBytes(12).toString('hex')}`;
const secretFile = path.join(out, 'token.txt');
fs.writeFileSync(secretFile, SECRET);

const BASE = 'FROM scratch\nADD busybox-rootfs.tar /\n';
let builds = 0;

async function build(dockerfile: string, args: string[], env: Record<string, string> = {}): Promise<Run & { archive: string; output: string[] }> {
  const ctx = makeContext(BASE + dockerfile);
  const archive = path.join(out, `s${++builds}.tar`);
  const run = await strata(['build', '--root', root, '--no-cache', '--progress', 'plain', '--output', `type=oci,dest=${archive}`, ...args, ctx], { env });
  fs.rmSync(ctx, { recursive: true, force: true });
  const output = run.stderr.split('\n').map((l) => /^#[\d.]+ \[\d+\] (.*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined && !/^(DONE|ERROR) /.test(l));
  return { ...run, archive, output };
}

/** Archive members (gzip layers decompressed) whose bytes contain the value. */
function membersContaining(archive: string, value: string): string[] {
  const script = [
    'import sys, tarfile, gzip',
    'value = sys.argv[2].encode()',
    'with tarfile.open(sys.argv[1]) as t:',
    '    for m in t.getmembers():',
    '        if not m.isfile(): continue',
    '        data = t.extractfile(m).read()',
    "        if data[:2] == b'\\x1f\\x8b': data = gzip.decompress(data)",
    '        if value in data: print(m.name)',
  ].join('\n');
  return execFileSync('python3', ['-c', script, archive, value]).toString().split('\n').filter(Boolean);
}

/** Files under the store (layer diffs uncompressed, blobs as stored) that contain the value. */
function storeFilesContaining(value: string): string[] {
  const found = execFileSync('sh', ['-c', `grep -rlF -- "$1" "$2" || true`, 'sh', value, root]).toString();
  return found.split('\n').filter(Boolean);
}

describe('RUN --mount=type=secret', () => {
  it('mounts a file secret read-only at /run/secrets/<id> with mode 0400, and leaves no trace of it', async () => {
    const b = await build(
      'RUN --mount=type=secret,id=tok sh -c \'stat -c "%a %u:%g %s" /run/secrets/tok; cat /run/secrets/tok; echo; echo x 2>/dev/null >> /run/secrets/tok || echo read-only\'\n' +
      'RUN sh -c \'test -e /run/secrets/tok && echo still-there || echo gone; ls /run 2>/dev/null || echo no-run; echo kept > /kept\'\n',
      ['--secret', `id=tok,src=${secretFile}`],
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual([`400 0:0 ${SECRET.length}`, SECRET, 'read-only', 'gone', 'no-run']);
    const shape = imageShape(b.archive);
    // only the second RUN made a layer, and it holds just /kept (no /run/secrets mountpoint)
    expect(shape.layers.slice(1).map((l) => l.entries.map((e) => e.name))).toEqual([['kept']]);
    expect(shape.history.map((h) => h.created_by ?? '').join('\n')).toContain('--mount=type=secret,id=tok');
    expect(membersContaining(b.archive, SECRET)).toEqual([]);
    expect(fs.readFileSync(b.archive).includes(SECRET)).toBe(false);
    expect(storeFilesContaining(SECRET)).toEqual([]);
  });

  it('env= exposes the secret as a variable only for that RUN; id alone reads the variable of that name', async () => {
    const b = await build(
      'RUN --mount=type=secret,id=tok,env=TOKEN sh -c \'printf %s "$TOKEN" | sha256sum | cut -d" " -f1; test -e /run/secrets/tok || echo no-file\'\n' +
      'RUN sh -c \'echo "token:${TOKEN:-unset}"\'\n' +
      'RUN --mount=type=secret,id=STRATA_TEST_SECRET,target=/root/creds,mode=0440,uid=1000,gid=100 stat -c "%a %u:%g" /root/creds\n',
      ['--secret', 'id=tok,env=STRATA_TEST_SECRET', '--secret', 'id=STRATA_TEST_SECRET'],
      { STRATA_TEST_SECRET: SECRET },
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual([createHash('sha256').update(SECRET).digest('hex'), 'no-file', 'token:unset', '440 1000:100']);
    expect(membersContaining(b.archive, SECRET)).toEqual([]);
    expect(storeFilesContaining(SECRET)).toEqual([]);
  });

  it('the comparison above can fail: a RUN that copies the secret into the image is caught', async () => {
    const b = await build('RUN --mount=type=secret,id=tok cp /run/secrets/tok /leaked\n', ['--secret', `id=tok,src=${secretFile}`]);
    expect(b.code).toBe(0);
    expect(membersContaining(b.archive, SECRET)).toHaveLength(1);
  });

  it('a non-root USER cannot read a default secret, and can with uid=', async () => {
    const b = await build(
      'USER 1000\n' +
      'RUN --mount=type=secret,id=tok sh -c \'cat /run/secrets/tok 2>/dev/null || echo denied\'\n' +
      'RUN --mount=type=secret,id=tok,uid=1000 cat /run/secrets/tok\n',
      ['--secret', `id=tok,src=${secretFile}`],
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['denied', SECRET]);
  });

  it('a missing optional secret is not mounted; a missing required one fails on its line', async () => {
    const optional = await build('RUN --mount=type=secret,id=nope sh -c \'test -e /run/secrets/nope && echo present || echo absent\'\n', []);
    expect(optional.code).toBe(0);
    expect(optional.output).toEqual(['absent']);

    const required = await build('RUN echo before\nRUN --mount=type=secret,id=nope,required=true true\n', []);
    expect(required.code).toBe(1);
    expect(required.stderr).toMatch(/Dockerfile:4\n/);
    expect(required.stderr).toContain('ERROR: secret nope is required but was not provided (strata build --secret id=nope,src=FILE)');
    expect(required.stderr).toContain('>>>4 | RUN --mount=type=secret,id=nope,required=true true');
  });
});

describe('strata build --secret errors', () => {
  it.each([
    [['--secret', 'id=x,src=/nonexistent/token'], 'ERROR: secret x: cannot read /nonexistent/token: ENOENT'],
    [['--secret', 'src=/etc/hostname'], 'ERROR: --secret src=/etc/hostname: id= is required'],
    [['--secret', 'id=x,env=STRATA_NO_SUCH_VARIABLE'], 'ERROR: secret x: environment variable STRATA_NO_SUCH_VARIABLE is not set'],
    [['--secret', 'id=x,type=ssh'], 'ERROR: --secret id=x,type=ssh: type must be file or env'],
  ])('%j', async (args, message) => {
    const b = await build('RUN true\n', args);
    expect(b.code).toBe(1);
    expect(b.stderr.trim().split('\n').at(-1)).toBe(message);
  });

  it('leaves no mount behind', () => {
    expect(overlayMountsUnder(root)).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
  });
});
