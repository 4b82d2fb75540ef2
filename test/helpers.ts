// Shared test helpers: run the real CLI, make build contexts over the busybox base, read images
// back with an independent reader (the peers' oci-layers.py, Python's tarfile).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '..');
export const peersDir = path.resolve(repoRoot, '..', 'shared', 'peers');
export const strataBin = path.join(repoRoot, 'bin', 'strata.js');
export const busyboxTar = path.join(repoRoot, 'fixtures', 'busybox-rootfs.tar');

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `strata-test-${label}-`));
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function strata(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [strataBin, ...args], { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A build context with the busybox base tarball and the given Dockerfile (and extra files). */
export function makeContext(dockerfile: string, files: Record<string, string> = {}): string {
  const dir = tempDir('ctx');
  fs.linkSync(busyboxTar, path.join(dir, 'busybox-rootfs.tar'));
  fs.writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

export interface ImageShape {
  config: { config: Record<string, unknown>; architecture: string; os: string };
  history: { empty_layer?: boolean; created_by?: string }[];
  diff_ids: string[];
  layers: { ref: string; diff_id: string; whiteouts: string[]; entries: { name: string; type: string; mode: string; uid: number; gid: number; size: number; link: string; xattrs: Record<string, string> }[] }[];
}

/** Reads an OCI archive with the peers' independent Python reader. */
export function imageShape(archive: string): ImageShape {
  const out = execFileSync('python3', [path.join(peersDir, 'oci-layers.py'), archive, '--entries', 'all', '--json'], { maxBuffer: 1 << 28 });
  return JSON.parse(out.toString()) as ImageShape;
}

/** Entries of one layer as "type mode uid:gid size name[ -> link]" lines, sorted, base applets skipped. */
export function entryLines(layer: ImageShape['layers'][number]): string[] {
  return layer.entries
    .map((e) => `${e.type} ${(Number(e.mode) & 0o7777).toString(8)} ${e.uid}:${e.gid} ${e.type === 'f' ? e.size : 0} ${e.name.replace(/\/$/, '')}${e.link ? ` -> ${e.link}` : ''}`)
    .sort();
}

export function overlayMountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(' overlay ') && l.includes(dir));
}

export function tool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** A store, an output dir and build contexts for one test file, removed after its tests
 * (call `cleanup` from afterAll). */
export function testScope(label: string): {
  root: string;
  out: string;
  context: (dockerfile: string, files?: Record<string, string>) => string;
  /** removes `dir` with the rest */
  track: (dir: string) => string;
  cleanup: () => void;
} {
  const dirs = [tempDir(`${label}-store`), tempDir(`${label}-out`)];
  return {
    root: dirs[0],
    out: dirs[1],
    track(dir) {
      dirs.push(dir);
      return dir;
    },
    context(dockerfile, files = {}) {
      const dir = makeContext(dockerfile, files);
      dirs.push(dir);
      return dir;
    },
    cleanup() {
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function expectOk(run: Run): void {
  if (run.code !== 0) throw new Error(`strata exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
}

/** A member of a hand-made (possibly hostile) tar. */
export type TarMember = { name: string; type?: 'file' | 'dir' | 'symlink' | 'hardlink'; linkname?: string; data?: string; mtime?: number };

/** Writes `members` to a tar with Python's tarfile: an independent writer that keeps hostile names
 * (`..`, absolute paths, links out) exactly as given. */
export function writeMemberTar(file: string, members: TarMember[]): void {
  const script = `
import tarfile, io, sys, json
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tf:
    for m in json.loads(sys.argv[2]):
        t = tarfile.TarInfo(m['name'])
        t.type = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE}[m.get('type', 'file')]
        t.linkname = m.get('linkname', '')
        t.mtime = m.get('mtime', 0)
        data = m.get('data', '').encode()
        t.size = len(data) if t.type == tarfile.REGTYPE else 0
        tf.addfile(t, io.BytesIO(data))
`;
  execFileSync('python3', ['-c', script, file, JSON.stringify(members)]);
}

