// Runs a command in the RUN sandbox: private mount, pid, ipc and uts namespaces over an overlay of
// the image; the host network, or (RUN --network=none) a new network namespace with only `lo`. `setpriv --pdeathsig KILL` makes the sandbox die with the builder and
// `unshare --kill-child` takes the namespace's processes with it, so the overlay mount (which exists
// only in the private mount namespace) vanishes even when the builder is SIGKILLed.
// The inside (mounts, pivot_root, user switch, exec) is native/strata-run.c.
import { spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import { runHelperPath } from '../native/index.js';
import { overlayOptions } from './mount.js';

/** RUN --mount pieces, in the order strata-run applies them (targets are paths inside the root). */
export type SandboxMount =
  /** a lock file flocked before anything is mounted: sh, ex (waits) or try (see busy) */
  | { kind: 'lock'; file: string; mode: 'sh' | 'ex' | 'try' }
  | {
    kind: 'bind';
    /** the directory the source is resolved in (symlinks cannot leave it) and the path inside it */
    root: string;
    sub: string;
    target: string;
    readonly: boolean;
    /** when the try-lock on `lock` finds it taken, `alt` (relative to the store root) is bound
     * instead of root (sharing=private) */
    busy?: { lock: string; alt: string };
    /** an overlay mounted on `root` first (an image's layers, or a writable view discarded after) */
    overlay?: string;
  }
  | { kind: 'tmpfs'; target: string; size: number }
  /** the bytes go through a pipe onto a private tmpfs, never to disk */
  | { kind: 'secret'; data: Buffer; target: string; mode: number; uid: number; gid: number };

export interface SandboxSpec {
  /** store root: the working directory, so that short lowerdir links resolve */
  storeRoot: string;
  /** lowerdir links relative to storeRoot, top first (the init layer included) */
  lowers: string[];
  upper: string;
  work: string;
  /** empty directory used as the mountpoint of the merged view */
  mountpoint: string;
  argv: string[];
  env: string[];
  user: string;
  cwd: string;
  /** directories created inside the root before the command (WORKDIR, VOLUMEs), as Docker does */
  mkdirs: string[];
  binds: { source: string; target: string }[];
  mounts?: SandboxMount[];
  /** an empty directory of the step: strata-run mounts the secrets' tmpfs on it (needed with secrets) */
  secretsDir?: string;
  /** none: a new network namespace with only loopback; otherwise (the default) the host's */
  network?: 'host' | 'none';
  onOutput: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
}

export function runInSandbox(spec: SandboxSpec): Promise<{ exitCode: number; signal?: NodeJS.Signals }> {
  const namespaces = ['--mount', '--pid', '--ipc', '--uts', ...(spec.network === 'none' ? ['--net'] : [])];
  const args = [
    '--pdeathsig', 'KILL', '--',
    '/usr/bin/unshare', ...namespaces, '--fork', '--kill-child', '--propagation', 'private', '--',
    runHelperPath,
    '--rootfs', spec.mountpoint,
    '--overlay', overlayOptions(spec.lowers, spec.upper, spec.work),
    '--user', spec.user || '0',
    '--cwd', spec.cwd || '/',
  ];
  if (spec.network === 'none') args.push('--loopback-up');
  for (const dir of spec.mkdirs) args.push('--mkdir', dir);
  for (const bind of spec.binds) args.push('--bind', `${bind.source}:${bind.target}`);
  // Extra descriptors from 3 on: lock files (the flock lives on this process's open file, so it holds
  // until the descriptor is closed here) and one pipe per secret.
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
  const lockFds = new Map<string, number>();
  const opened: number[] = [];
  const secrets: { fd: number; data: Buffer }[] = [];
  try {
    for (const m of spec.mounts ?? []) {
      if (m.kind === 'lock') {
        const fd = fs.openSync(m.file, 'a', 0o600);
        opened.push(fd);
        lockFds.set(m.file, stdio.length);
        args.push('--lock', String(stdio.length), m.mode);
        stdio.push(fd);
      } else if (m.kind === 'bind') {
        if (m.overlay) args.push('--stage-overlay', m.root, m.overlay);
        let flags = m.readonly ? 'ro' : 'rw';
        const lockFd = m.busy && lockFds.get(m.busy.lock);
        if (m.busy && lockFd !== undefined) flags += `,busy=${lockFd}:${m.busy.alt}`;
        args.push('--mount-bind', m.root, m.sub, m.target, flags);
      } else if (m.kind === 'tmpfs') {
        args.push('--mount-tmpfs', m.target, String(m.size));
      } else {
        secrets.push({ fd: stdio.length, data: m.data });
        args.push('--mount-secret', String(stdio.length), m.target, `${m.mode.toString(8)}:${m.uid}:${m.gid}`);
        stdio.push('pipe');
      }
    }
    if (secrets.length > 0) {
      if (!spec.secretsDir) throw new Error('a secret mount needs SandboxSpec.secretsDir');
      args.push('--secrets-dir', spec.secretsDir);
    }
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    throw err;
  }
  args.push('--', ...spec.argv);
  const env: Record<string, string> = {};
  for (const entry of spec.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return new Promise<{ exitCode: number; signal?: NodeJS.Signals }>((resolve, reject) => {
    const child = spawn('/usr/bin/setpriv', args, {
      cwd: spec.storeRoot,
      env,
      stdio,
      signal: spec.signal,
      killSignal: 'SIGKILL',
    });
    child.stdout!.on('data', (chunk: Buffer) => spec.onOutput(chunk, 'stdout'));
    child.stderr!.on('data', (chunk: Buffer) => spec.onOutput(chunk, 'stderr'));
    for (const secret of secrets) {
      const pipe = child.stdio[secret.fd] as NodeJS.WritableStream & { on(event: 'error', cb: () => void): void };
      pipe.on('error', () => {}); // the helper failed before reading it: its own error is reported
      pipe.end(secret.data);
    }
    // Aborted (SIGINT/SIGTERM): report why the build stopped, not node's generic AbortError.
    child.on('error', (err) => reject(err.name === 'AbortError' && spec.signal?.reason instanceof Error ? spec.signal.reason : err));
    child.on('close', (code, signal) => resolve({ exitCode: code ?? 128, signal: signal ?? undefined }));
  }).finally(() => {
    for (const fd of opened) fs.closeSync(fd);
  });
}
