// The buildx-style flags of `strata build` and the small commands (tag, rm, version, completion),
// through the real CLI, each against what it must produce.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, strata, testScope } from '../helpers.js';

const { root, out, context, cleanup } = testScope('flags');
afterAll(cleanup);

const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';
const inspect = async (name: string): Promise<{ digest: string; manifest: { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] }; config: { config: { Labels?: Record<string, string> }; rootfs: { diff_ids: string[] } } }> => {
  const run = await strata(['inspect', '--root', root, name]);
  expectOk(run);
  return JSON.parse(run.stdout);
};

const BASE = 'FROM scratch\nADD busybox-rootfs.tar /\n';

describe('usage errors: exit 2, the command usage, then one line naming the problem', () => {
  const usageError = async (args: string[], error: string): Promise<void> => {
    const run = await strata(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`strata ${args[0]} `); // the command's usage line
    expect(run.stderr).toContain('Options:');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(lastLine(run.stderr)).toBe(`ERROR: ${error}`);
  };
  const ctx = context(BASE);

  it('an unknown flag before the context names the flag, not a missing context', async () => {
    await usageError(['build', '--frobnicate', ctx], 'unknown flag --frobnicate');
    await usageError(['build', ctx, '--frobnicate'], 'unknown flag --frobnicate');
    await usageError(['build', '--frobnicate=1', ctx], 'unknown flag --frobnicate');
    await usageError(['build', '-Z', ctx], 'unknown flag -Z');
    await usageError(['plan', '--frobnicate', ctx], 'unknown flag --frobnicate');
    await usageError(['tag', '--frobnicate', 'a', 'b'], 'unknown flag --frobnicate');
  });

  it('missing or extra positionals, unknown commands', async () => {
    await usageError(['build'], 'missing the CONTEXT argument');
    await usageError(['build', ctx, 'extra'], 'unexpected argument extra');
    await usageError(['tag', 'only-one'], 'missing the TARGET argument');
    const run = await strata(['frobnicate']);
    expect(run.code).toBe(2);
    expect(lastLine(run.stderr)).toBe('ERROR: unknown command frobnicate');
  });

  it('bad values: --progress, --output, --platform, --label', async () => {
    await usageError(['build', '--progress', 'fancy', ctx], '--progress fancy: expected one of auto, plain, tty, rawjson');
    await usageError(['build', '-o', 'type=bogus,dest=x.tar', ctx], '--output type=bogus,dest=x.tar: type must be one of oci, docker, tar, local, oci-dir');
    await usageError(['build', '-o', 'type=oci', ctx], '--output type=oci: dest= is required');
    await usageError(['build', '-o', 'type=oci,dest=x.tar,compression=zstd', ctx], '--output type=oci,dest=x.tar,compression=zstd: unsupported key compression (strata reads type= and dest=)');
    await usageError(['build', '-o', 'type=local,dest=-', ctx], '--output type=local,dest=-: a local output is a directory and cannot go to stdout');
    await usageError(['build', '-o', '-', '-o', 'type=oci,dest=-', ctx], '--output: only one output can go to stdout (dest=-)');
    await usageError(['build', '--platform', 'linux/arm64', ctx], '--platform linux/arm64: strata builds only for the host platform linux/amd64 (no emulation)');
    await usageError(['build', '--platform', 'linux/amd64,windows/amd64', ctx], '--platform windows/amd64: strata builds only for the host platform linux/amd64 (no emulation)');
    await usageError(['build', '--label', '=v', ctx], '--label =v: the label needs a key (KEY=VALUE)');
  });
});

describe('build flags', () => {
  const DOCKERFILE = `${BASE}LABEL from.dockerfile=yes shared=dockerfile\nRUN echo built > /built\n`;
  let plainDigest = '';

  beforeAll(async () => {
    const run = await strata(['build', '--root', root, '-q', '-t', 'flags/plain', context(DOCKERFILE)]);
    expectOk(run);
    plainDigest = run.stdout.trim();
  });

  it('--label adds to the config\'s labels (over the Dockerfile\'s), with no history entry', async () => {
    const run = await strata(['build', '--root', root, '-q', '-t', 'flags/labelled', '--label', 'org.example.ci=run 42', '--label', 'shared=flag', '--label', 'empty', context(DOCKERFILE)]);
    expectOk(run);
    expect(run.stdout.trim()).not.toBe(plainDigest);
    const labelled = await inspect('flags/labelled');
    const plain = await inspect('flags/plain');
    expect(labelled.digest).toBe(run.stdout.trim());
    expect(labelled.config.config.Labels).toEqual({ 'from.dockerfile': 'yes', shared: 'flag', 'org.example.ci': 'run 42', empty: '' });
    expect(plain.config.config.Labels).toEqual({ 'from.dockerfile': 'yes', shared: 'dockerfile' });
    expect(labelled.manifest.layers).toEqual(plain.manifest.layers);
    expect(labelled.config.rootfs).toEqual(plain.config.rootfs);
  });

  it('--platform linux/amd64 (the host) builds the same image as without it', async () => {
    const run = await strata(['build', '--root', root, '-q', '--platform', 'linux/amd64', context(DOCKERFILE)]);
    expectOk(run);
    expect(run.stdout.trim()).toBe(plainDigest);
  });

  it('--metadata-file: buildx\'s keys and the layer list, equal to what inspect says', async () => {
    const file = path.join(out, 'metadata.json');
    const run = await strata(['build', '--root', root, '-q', '-t', 'flags/meta:1', '-t', 'flags/meta:2', '--label', 'm=1', '--metadata-file', file, context(DOCKERFILE)]);
    expectOk(run);
    const metadata = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const inspected = await inspect('flags/meta:1');
    const manifestSize = Buffer.byteLength(execFileSync('cat', [path.join(root, 'blobs', 'sha256', inspected.digest.slice(7))]));
    expect(metadata).toEqual({
      'containerimage.digest': run.stdout.trim(),
      'containerimage.config.digest': inspected.manifest.config.digest,
      'containerimage.descriptor': { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: inspected.digest, size: manifestSize },
      'image.name': 'flags/meta:1,flags/meta:2',
      layers: inspected.manifest.layers.map((l, i) => ({ ...l, diffId: inspected.config.rootfs.diff_ids[i] })),
    });
    expect(inspected.digest).toBe(run.stdout.trim());
  });

  it('--no-cache runs every step again; --no-cache-filter only the named stage\'s', async () => {
    const ctx = context(`${BASE}RUN echo a > /a\n\nFROM scratch AS second\nCOPY --from=0 /a /a\nRUN ["/a-missing-is-fine"]\n`.replace('RUN ["/a-missing-is-fine"]\n', 'LABEL x=1\n'));
    const statuses = async (extra: string[]): Promise<string[]> => {
      const run = await strata(['build', '--root', root, '--progress', 'plain', ...extra, ctx]);
      expectOk(run);
      return run.stderr.split('\n').map((l) => l.replace(/^#\d+\.\d{3} /, '')).filter((l) => /^\[\d\] (CACHED|DONE)/.test(l)).map((l) => l.split(' ').slice(0, 2).join(' ')).sort();
    };
    await statuses([]);
    expect(await statuses([])).toEqual(['[1] CACHED', '[2] CACHED', '[3] CACHED', '[4] DONE']);
    expect(await statuses(['--no-cache'])).toEqual(['[1] DONE', '[2] DONE', '[3] DONE', '[4] DONE']);
    expect(await statuses(['--no-cache-filter', 'second'])).toEqual(['[1] CACHED', '[2] CACHED', '[3] DONE', '[4] DONE']);
  });
});

describe('tag, rm, version, completion', () => {
  it('tag gives a stored image another name; rm removes names and keeps the image for others', async () => {
    const built = await strata(['build', '--root', root, '-q', '-t', 'names/a:1', context(`${BASE}ENV N=1\n`)]);
    expectOk(built);
    const digest = built.stdout.trim();
    const tagged = await strata(['tag', '--root', root, 'names/a:1', 'registry.example/names/b']);
    expectOk(tagged);
    expect(tagged.stdout).toBe(`tagged registry.example/names/b:latest ${digest}\n`);
    expect((await inspect('registry.example/names/b:latest')).digest).toBe(digest);
    const byDigest = await strata(['tag', '--root', root, digest, 'names/c']);
    expectOk(byDigest);

    const removed = await strata(['rm', '--root', root, 'names/a:1', 'registry.example/names/b']);
    expectOk(removed);
    expect(removed.stdout).toBe(`untagged names/a:1 ${digest}\nuntagged registry.example/names/b:latest ${digest}\n`);
    const images = (await strata(['images', '--root', root])).stdout;
    expect(images).not.toContain('names/a:1');
    expect(images).toMatch(new RegExp(`names/c:latest +${digest}`));
    expect((await inspect(digest)).digest).toBe(digest); // blobs stay until prune

    const missing = await strata(['rm', '--root', root, 'names/c', 'names/never']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe(`untagged names/c:latest ${digest}\n`);
    expect(missing.stderr).toBe('ERROR: no such image in the local store: names/never\n');
    const unknown = await strata(['tag', '--root', root, 'names/never', 'x']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('ERROR: image not found in the local store: names/never\n');
  });

  it('rm by digest removes every tag of that image', async () => {
    const built = await strata(['build', '--root', root, '-q', '-t', 'bydigest/a', '-t', 'bydigest/b', context(`${BASE}ENV N=2\n`)]);
    expectOk(built);
    const removed = await strata(['rm', '--root', root, built.stdout.trim()]);
    expectOk(removed);
    expect(removed.stdout.trim().split('\n').map((l) => l.split(' ')[1])).toEqual(['bydigest/a:latest', 'bydigest/b:latest']);
  });

  it('version: strata, node, kernel, overlay', async () => {
    const run = await strata(['version', '--json']);
    expectOk(run);
    const pkg = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    const kernel = execFileSync('uname', ['-r']).toString().trim();
    const overlay = fs.readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n') ? 'yes' : expect.stringMatching(/^(no|not loaded)/);
    expect(JSON.parse(run.stdout)).toEqual({ strata: pkg.version, node: process.versions.node, kernel: `Linux ${kernel} x64`, overlay });
    const text = await strata(['version']);
    expect(text.stdout.split('\n')[0]).toBe(`strata ${pkg.version}`);
    expect((await strata(['--version'])).stdout).toBe(`${pkg.version}\n`);
  });

  it('completion prints a bash script that completes the commands', async () => {
    const run = await strata(['completion']);
    expectOk(run);
    expect(run.stdout).toContain('###-begin-strata-completions-###');
    const words = await strata(['--get-yargs-completions', 'strata', '']);
    expectOk(words);
    const offered = words.stdout.split('\n');
    for (const command of ['build', 'plan', 'images', 'inspect', 'layers', 'tag', 'rm', 'version']) expect(offered).toContain(command);
    const flags = (await strata(['--get-yargs-completions', 'strata', 'build', '--'])).stdout.split('\n');
    for (const flag of ['--tag', '--file', '--build-arg', '--output', '--metadata-file', '--no-cache']) expect(flags).toContain(flag);
  });
});

describe('errors people can act on', () => {
  it('a parse error shows the line and a caret under the bad word', async () => {
    const run = await strata(['build', '--root', root, context(`${BASE}  FROBNICATE foo\n`)]);
    expect(run.code).toBe(1);
    const lines = run.stderr.split('\n');
    const at = lines.indexOf('>>>3 |   FROBNICATE foo');
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toBe(`${' '.repeat(9)}^`); // under the F: 7 columns of '>>>3 | ', 2 of indentation
    expect(lastLine(run.stderr)).toBe('ERROR: unknown instruction: FROBNICATE');
  });

  it('a failing RUN: the frame, its last output (escapes removed) and its exit code, no stack', async () => {
    const run = await strata(['build', '--root', root, '--progress', 'plain', context(`${BASE}RUN echo one && printf '\\033[2Jcleared\\n' && exit 7\n`)]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Dockerfile:3\n');
    expect(run.stderr).toContain(">>>3 | RUN echo one && printf '\\033[2Jcleared\\n' && exit 7");
    expect(run.stderr).toContain('last output:\n  one\n  cleared\nexit code: 7\n');
    expect(run.stderr).not.toContain('\x1b');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    const debug = await strata(['build', '--root', root, '--debug', context(`${BASE}RUN exit 7\n`)]);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });
});
