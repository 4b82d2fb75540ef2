// RUN --mount (bind, cache, tmpfs), --network and --security through the CLI on real overlay mounts:
// what the command sees, and that nothing of a mount reaches a layer or stays mounted.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entryLines, imageShape, makeContext, overlayMountsUnder, strata, tempDir, type Run } from '../helpers.js';

const root = tempDir('mount-store');
const out = tempDir('mount-out');
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

const BASE = 'FROM scratch\nADD busybox-rootfs.tar /\n';
let builds = 0;

interface Built extends Run {
  archive: string;
  /** the RUN output lines (plain progress: "#t [n] text") */
  output: string[];
}

async function build(dockerfile: string, files: Record<string, string> = {}, opts: { ctx?: string; args?: string[] } = {}): Promise<Built> {
  const ctx = opts.ctx ?? makeContext(BASE + dockerfile, files);
  const archive = path.join(out, `b${++builds}.tar`);
  const run = await strata(['build', '--root', root, '--no-cache', '--progress', 'plain', '--output', `type=oci,dest=${archive}`, ...(opts.args ?? []), ctx]);
  if (!opts.ctx) fs.rmSync(ctx, { recursive: true, force: true });
  const output = run.stderr.split('\n').map((l) => /^#[\d.]+ \[\d+\] (.*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined && !/^(DONE|ERROR) /.test(l));
  return { ...run, archive, output };
}

/** Entry lines of every layer after the busybox base. */
const addedLayers = (archive: string): string[][] => imageShape(archive).layers.slice(1).map(entryLines);

describe('RUN --mount=type=bind', () => {
  it('reads a context directory read-only at a new mountpoint, and neither the files nor the mountpoint reach the layer', async () => {
    const b = await build(
      'RUN --mount=type=bind,source=sub,target=/opt/ctx/src sh -c \'cat /opt/ctx/src/data.txt; touch /opt/ctx/src/new 2>/dev/null || echo read-only; echo made > /made\'\n',
      { 'sub/data.txt': 'hello from the context\n' },
    );
    expect(b.code).toBe(0);
    expect(b.output).toContain('hello from the context');
    expect(b.output).toContain('read-only');
    expect(addedLayers(b.archive)).toEqual([['f 644 0:0 5 made']]);
  });

  it('binds the whole context by default and a single file onto a file mountpoint under an existing /etc without copying /etc up', async () => {
    const b = await build(
      'RUN --mount=target=/ctx --mount=source=conf/app.conf,target=/etc/app/app.conf sh -c \'cat /ctx/conf/app.conf /etc/app/app.conf; test -f /ctx/Dockerfile && echo has-dockerfile\'\n',
      { 'conf/app.conf': 'key=value\n' },
    );
    expect(b.code).toBe(0);
    expect(b.output.filter((l) => l === 'key=value')).toHaveLength(2);
    expect(b.output).toContain('has-dockerfile');
    // nothing changed: no layer at all (the mountpoints live in the init layer)
    expect(addedLayers(b.archive)).toEqual([]);
    expect(imageShape(b.archive).history.at(-1)).toMatchObject({ empty_layer: true });
  });

  it('rw: writes are seen during the RUN and then discarded (context untouched, nothing in the layer)', async () => {
    const ctx = makeContext(`${BASE}RUN --mount=type=bind,source=sub,target=/work,rw sh -c 'echo changed > /work/data.txt; echo extra > /work/extra; cat /work/data.txt; ls /work'\nRUN --mount=type=bind,source=sub,target=/work cat /work/data.txt\n`, { 'sub/data.txt': 'original\n' });
    const b = await build('', {}, { ctx });
    expect(b.code).toBe(0);
    expect(b.output.slice(0, 3)).toEqual(['changed', 'data.txt', 'extra']);
    expect(b.output).toContain('original');
    expect(fs.readFileSync(path.join(ctx, 'sub/data.txt'), 'utf8')).toBe('original\n');
    expect(fs.readdirSync(path.join(ctx, 'sub'))).toEqual(['data.txt']);
    expect(addedLayers(b.archive)).toEqual([]);
    fs.rmSync(ctx, { recursive: true, force: true });
  });

  it('from=stage reads the stage\'s merged layers (whiteouts applied), rw writes discarded', async () => {
    const b = await build(
      'RUN mkdir /data && echo one > /data/one && echo two > /data/two\nRUN rm /data/two\n' +
      'FROM scratch\nADD busybox-rootfs.tar /\n' +
      'RUN --mount=type=bind,from=0,source=/data,target=/src,rw sh -c \'ls /src; cat /src/one; echo x > /src/one; echo new > /mine\'\n' +
      'RUN --mount=from=0,source=data/one,target=/one.txt cat /one.txt\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(expect.arrayContaining(['one']));
    expect(b.output).not.toContain('two');
    // the second RUN still sees the stage's content: the first one's write went nowhere
    expect(b.output.filter((l) => l === 'one')).toHaveLength(3);
    expect(addedLayers(b.archive)).toEqual([['f 644 0:0 4 mine']]);
  });

  it('a source cannot leave its root: .. and absolute symlinks resolve inside the context', async () => {
    const ctx = makeContext(`${BASE}RUN --mount=source=escape,target=/x cat /x\n`);
    fs.symlinkSync('/etc/hostname', path.join(ctx, 'escape'));
    const viaLink = await build('', {}, { ctx });
    expect(viaLink.code).toBe(1);
    expect(viaLink.stderr).toMatch(/Dockerfile:3/);
    expect(viaLink.stderr).toContain('mount source escape not found in the build context');
    fs.rmSync(ctx, { recursive: true, force: true });

    const dotdot = await build('RUN --mount=source=../../../etc/hostname,target=/x cat /x\n');
    expect(dotdot.code).toBe(1);
    expect(dotdot.stderr).toContain('mount source ../../../etc/hostname not found in the build context');
  });
});

describe('RUN --mount=type=cache', () => {
  it('keeps its content between builds, in the store and never in a layer; mode/uid/gid set the new directory', async () => {
    const dockerfile = 'RUN --mount=type=cache,target=/var/cache/app,mode=0750,uid=1000,gid=100 sh -c \'stat -c "%a %u %g" /var/cache/app; cat /var/cache/app/count 2>/dev/null || echo none; echo $(( $(cat /var/cache/app/count 2>/dev/null || echo 0) + 1 )) > /var/cache/app/count\'\n';
    const first = await build(dockerfile);
    const second = await build(dockerfile);
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(first.output).toEqual(['750 1000 100', 'none']);
    expect(second.output).toEqual(['750 1000 100', '1']);
    expect(addedLayers(first.archive)).toEqual([]);
    expect(addedLayers(second.archive)).toEqual([]);
    const caches = fs.readdirSync(path.join(root, 'cache-mounts'));
    const dir = caches.map((c) => path.join(root, 'cache-mounts', c, 'data')).find((d) => fs.existsSync(path.join(d, 'count')));
    expect(fs.readFileSync(path.join(dir!, 'count'), 'utf8')).toBe('2\n');
  });

  it('an id shares one cache between targets; a cache inside a tmpfs gets its mountpoint there', async () => {
    const b = await build(
      'RUN --mount=type=cache,id=shared-x,target=/a echo from-a > /a/f\n' +
      'RUN --mount=type=tmpfs,target=/w --mount=type=cache,id=shared-x,target=/w/cache,readonly sh -c \'cat /w/cache/f; touch /w/cache/g 2>/dev/null || echo ro\'\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['from-a', 'ro']);
    expect(addedLayers(b.archive)).toEqual([]);
  });

  it('from= and source= seed a new cache directory from a stage', async () => {
    const b = await build(
      'RUN mkdir /data && echo seeded > /data/s\n' +
      'FROM scratch\nADD busybox-rootfs.tar /\n' +
      'RUN --mount=type=cache,id=seeded,target=/c,from=0,source=/data sh -c \'ls /c; cat /c/s\'\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['s', 'seeded']);
    expect(addedLayers(b.archive)).toEqual([]);
  });

  /** Runs `sh -c script` while holding flock(1) on the only cache's lock file of this test's store. */
  function holdCacheLock(lockFile: string, seconds: number, script: string): Promise<number | null> {
    return new Promise((resolve) => {
      const child = spawn('flock', ['-x', lockFile, 'sh', '-c', `sleep ${seconds}; ${script}`], { stdio: 'ignore' });
      child.on('close', resolve);
    });
  }

  it('sharing=locked waits for the holder of the cache; sharing=private uses a fresh directory meanwhile', async () => {
    const dockerfile = (sharing: string, line: string): string => `RUN --mount=type=cache,id=lockme,target=/c,sharing=${sharing} sh -c 'ls /c; ${line}'\n`;
    const seed = await build(dockerfile('shared', 'echo seed >> /c/log'));
    expect(seed.code, seed.stderr).toBe(0);
    const lockFiles = fs.readdirSync(path.join(root, 'cache-mounts'))
      .map((c) => path.join(root, 'cache-mounts', c))
      .filter((d) => fs.existsSync(path.join(d, 'data', 'log')));
    expect(lockFiles).toHaveLength(1);
    const cache = lockFiles[0];

    const holder = holdCacheLock(path.join(cache, 'lock'), 3, `echo holder >> ${path.join(cache, 'data', 'log')}`);
    const locked = await build(dockerfile('locked', 'echo locked >> /c/log'));
    expect(await holder).toBe(0);
    expect(locked.code, locked.stderr).toBe(0);
    expect(fs.readFileSync(path.join(cache, 'data', 'log'), 'utf8')).toBe('seed\nholder\nlocked\n');

    // held until the private build is over, however slow the machine
    const release = path.join(out, 'release');
    const holder2 = holdCacheLock(path.join(cache, 'lock'), 0, `while [ ! -e ${release} ]; do sleep 0.1; done`);
    const priv = await build(dockerfile('private', 'echo private >> /c/log'));
    fs.writeFileSync(release, '');
    expect(await holder2).toBe(0);
    expect(priv.code, priv.stderr).toBe(0);
    expect(priv.output).toEqual([]); // ls of an empty, private directory
    expect(fs.readFileSync(path.join(cache, 'data', 'log'), 'utf8')).toBe('seed\nholder\nlocked\n');

    const free = await build(dockerfile('private', 'true'));
    expect(free.output).toEqual(['log']); // nobody holds it: the cache itself
  });
});

describe('RUN --mount=type=tmpfs', () => {
  it('is empty each time, takes size=, and leaves nothing in the layer', async () => {
    const b = await build(
      'RUN --mount=type=tmpfs,target=/scratch,size=2m sh -c \'ls -A /scratch; echo t > /scratch/t; df -k /scratch | tail -1 | awk "{print \\$2}"; echo done > /done\'\n' +
      'RUN --mount=type=tmpfs,target=/scratch ls -A /scratch\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['2048']);
    expect(addedLayers(b.archive)).toEqual([['f 644 0:0 5 done']]);
  });

  it('a target through a symlink of the image is mounted where the link points, inside the image', async () => {
    const b = await build(
      'RUN mkdir -p /opt/real && ln -s /opt/real /link\n' +
      'RUN --mount=type=tmpfs,target=/link/t sh -c \'grep -c " /opt/real/t " /proc/self/mountinfo\'\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['1']);
    // only the first RUN's layer: the mountpoint /opt/real/t went into the init layer
    expect(addedLayers(b.archive)).toEqual([['d 755 0:0 0 opt', 'd 755 0:0 0 opt/real', 'l 777 0:0 0 link -> /opt/real']]);
  });
});

describe('RUN --network and --security', () => {
  it('--network=none has only a working loopback; default and host see the host network', async () => {
    const hostInterfaces = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).filter(Boolean).length;
    const b = await build(
      'RUN --network=none sh -c \'ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo lo-works\'\n' +
      'RUN --network=host sh -c \'tail -n +3 /proc/net/dev | wc -l\'\n' +
      'RUN --network=default --security=sandbox sh -c \'tail -n +3 /proc/net/dev | wc -l\'\n',
    );
    expect(b.code).toBe(0);
    expect(b.output).toEqual(['lo', '0x9', 'lo-works', String(hostInterfaces), String(hostInterfaces)]);
    expect(hostInterfaces).toBeGreaterThan(1);
  });
});

describe('bad RUN flags name the line', () => {
  const cases: [string, string][] = [
    ['--mount=type=foo,target=/x', 'unsupported mount type "foo"'],
    ['--mount=type=bind', 'bind mount needs a target'],
    ['--mount=type=ssh', 'RUN --mount=type=ssh is not supported'],
    ['--mount=type=tmpfs,target=/x,mode=0700', 'mode not allowed for "tmpfs" type mounts'],
    ['--mount=type=cache,target=/c,sharing=nope', 'unsupported sharing value "nope"'],
    ['--mount=type=bind,target=/x,bogus=1', "unexpected key 'bogus' in 'bogus=1'"],
    ['--mount=type=bind,target=/x,readonly=maybe', 'invalid value for readonly: maybe'],
    ['--mount=type=cache,target=/', 'invalid mount target "/"'],
    ['--mount=type=tmpfs,target=/a --mount=type=cache,target=/a', 'two mounts on the same target /a'],
    ['--network=bridge', 'unsupported network mode "bridge"'],
    ['--security=insecure', 'RUN --security=insecure is not supported'],
  ];
  it.each(cases)('RUN %s', async (flags, message) => {
    const b = await build(`RUN echo before\nRUN ${flags} true\n`);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(message);
    expect(b.stderr).toMatch(/Dockerfile:4: /);
    expect(b.stderr).toContain(`>>>4 | RUN ${flags} true`);
  });

  it('leaves no mount behind after all these builds', () => {
    expect(overlayMountsUnder(root)).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
  });
});
