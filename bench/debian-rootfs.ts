// A build context shaped like `FROM scratch` + `ADD debian-rootfs.tar.gz /` + 3 RUNs, the rootfs being
// ~200 MB of this Debian host's own /usr (its shared libraries first, then programs and data files),
// archived in name order as Debian's own rootfs tarballs are.
// Taken from the host rather than debootstrap: no network, seconds instead of minutes, and the same
// machine's Debian 12 files that a bookworm base image holds. /etc gets only passwd and group (never
// the host's secrets).
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hasCommand, timePipeline } from './measure.js';

const ROOTFS_BYTES = 200e6;
/** Files bigger than this are left out so that the budget covers many packages, not one LLVM. */
const MAX_FILE_BYTES = 4e6;
/** The RUNs' programs: they and the libraries they load come first, whatever the budget. */
const ESSENTIAL_PROGRAMS = ['dash', 'sh', 'cp', 'ls', 'wc', 'mkdir', 'seq', 'sed', 'rm', 'echo'];
/** Then these trees, in this order, until the budget is spent. */
const HOST_TREES = ['usr/lib64', 'usr/bin', 'usr/sbin', 'usr/lib/x86_64-linux-gnu', 'usr/share', 'usr/lib'];

export const DEBIAN_DOCKERFILE = `FROM scratch
ADD debian-rootfs.tar.gz /
RUN mkdir -p /opt/app && cp -a /usr/sbin /opt/app/sbin && ls -R /opt/app | wc -l
RUN seq 1 200000 > /opt/app/numbers.txt && sed -i 's/^root:/admin:/' /etc/passwd
RUN rm -rf /usr/sbin/x* /opt/app/sbin/a* && mkdir -p /var/cache/app && echo done > /var/cache/app/state
`;

export interface RootfsContext {
  tarBytes: number;
  gzipBytes: number;
  files: number;
}

/** Writes `dir`/Dockerfile and `dir`/debian-rootfs.tar.gz (sorted, owners 0, mtimes 0, gzip -n). */
export async function makeDebianContext(dir: string): Promise<RootfsContext> {
  const staging = path.join(dir, '.staging');
  await mkdir(path.join(staging, 'etc'), { recursive: true });
  await mkdir(path.join(staging, 'tmp'), { recursive: true });
  await mkdir(path.join(staging, 'root'), { recursive: true });
  await writeFile(path.join(staging, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  await writeFile(path.join(staging, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  const selected = selectHostFiles();
  const listFile = path.join(dir, '.rootfs-files');
  await writeFile(listFile, sortedFileList([...selected.paths.map((p) => ({ p, from: '/.' })), ...STAGED.map((p) => ({ p, from: staging }))]));
  const tarGz = path.join(dir, 'debian-rootfs.tar.gz');
  const gzip = hasCommand('pigz') ? 'pigz' : 'gzip';
  await timePipeline(`tar -cf - --no-recursion --owner=0 --group=0 --numeric-owner --mtime=@0 -T "$1" | ${gzip} -n -6 > "$2"`, listFile, tarGz);
  await rm(staging, { recursive: true });
  await rm(listFile);
  await writeFile(path.join(dir, 'Dockerfile'), DEBIAN_DOCKERFILE);
  const gzipBytes = lstatSync(tarGz).size;
  return { tarBytes: selected.bytes, gzipBytes, files: selected.paths.length };
}

const STAGED = ['etc', 'etc/passwd', 'etc/group', 'tmp', 'root'];

/** A `tar -T` list in the order of `tar --sort=name` (debuerreotype makes Debian's rootfs tarballs
 * so): depth first, siblings in byte order. GNU tar reads `-C DIR` lines in the list, which switch
 * between the host's root and the staging directory (the root as `/.`: tar 1.34 refuses `-C /` there). */
function sortedFileList(files: { p: string; from: string }[]): string {
  const key = (p: string) => Buffer.from(p.replaceAll('/', '\0'));
  files.sort((a, b) => Buffer.compare(key(a.p), key(b.p)));
  const lines: string[] = [];
  let from = '';
  for (const file of files) {
    if (file.from !== from) lines.push(`-C ${(from = file.from)}`);
    lines.push(file.p);
  }
  return `${lines.join('\n')}\n`;
}

/** Host paths (relative to /) in tar order: every parent directory before its children, the
 * merged-/usr links (/bin -> usr/bin, ...), then files and symlinks up to the byte budget. */
function selectHostFiles(): { paths: string[]; bytes: number } {
  const paths: string[] = [];
  const dirsAdded = new Set<string>();
  let bytes = 0;
  const addParents = (rel: string) => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!dirsAdded.has(dir)) {
        dirsAdded.add(dir);
        paths.push(dir);
      }
    }
  };
  const included = new Set<string>();
  const add = (rel: string, size: number) => {
    if (included.has(rel)) return;
    included.add(rel);
    addParents(rel);
    paths.push(rel);
    bytes += size;
  };
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) {
    if (lstatSync(`/${link}`, { throwIfNoEntry: false })?.isSymbolicLink()) paths.push(link);
  }
  for (const file of essentialFiles()) {
    const st = lstatSync(file);
    add(file.slice(1), st.isFile() ? st.size : 0);
  }
  const walked = new Set<string>();
  const walk = (rel: string): boolean => {
    walked.add(rel);
    for (const name of readdirSync(`/${rel}`).sort()) {
      const child = `${rel}/${name}`;
      const st = lstatSync(`/${child}`);
      if (st.isDirectory()) {
        if (walked.has(child)) continue;
        if (!walk(child)) return false;
      } else if (st.isSymbolicLink() || (st.isFile() && st.size <= MAX_FILE_BYTES)) {
        if (st.isFile() && bytes + st.size > ROOTFS_BYTES) return false;
        add(child, st.isFile() ? st.size : 0);
      }
    }
    return true;
  };
  for (const tree of HOST_TREES) {
    if (!lstatSync(`/${tree}`, { throwIfNoEntry: false })?.isDirectory()) continue;
    if (!walk(tree)) break;
  }
  return { paths, bytes };
}

/** The essential programs and the shared libraries they load (ldd), as /usr paths: symlinks and
 * what they point to. */
function essentialFiles(): string[] {
  const programs = ESSENTIAL_PROGRAMS.map((name) => `/usr/bin/${name}`).filter((file) => existsSync(file));
  const ldd = spawnSync('ldd', programs.map((file) => realpathSync(file)), { encoding: 'utf8' }).stdout ?? '';
  const libraries = [...ldd.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
  const files = new Set<string>();
  for (const file of [...programs, ...libraries]) {
    const usrPath = path.join(realpathSync(path.dirname(file)), path.basename(file)); // /lib/x -> /usr/lib/x
    files.add(usrPath);
    files.add(realpathSync(usrPath));
  }
  return [...files];
}
