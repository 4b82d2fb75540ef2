// Runs a command in the RUN sandbox: private mount, pid, ipc and uts namespaces over an overlay of
// the image, host network. `setpriv --pdeathsig KILL` makes the sandbox die with the builder and
// `unshare --kill-child` takes the namespace's processes with it, so the overlay mount (which exists
// only in the private mount namespace) vanishes even when the builder is SIGKILLed.
// The inside (mounts, pivot_root, user switch, exec) is native/strata-run.c.
import { spawn } from 'node:child_process';
import { runHelperPath } from '../native/index.js';
import { overlayOptions } from './mount.js';

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
  onOutput: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
}

export function runInSandbox(spec: SandboxSpec): Promise<{ exitCode: number; signal?: NodeJS.Signals }> {
  const args = [
    '--pdeathsig', 'KILL', '--',
    '/usr/bin/unshare', '--mount', '--pid', '--ipc', '--uts', '--fork', '--kill-child', '--propagation', 'private', '--',
    runHelperPath,
    '--rootfs', spec.mountpoint,
    '--overlay', overlayOptions(spec.lowers, spec.upper, spec.work),
    '--user', spec.user || '0',
    '--cwd', spec.cwd || '/',
  ];
  for (const dir of spec.mkdirs) args.push('--mkdir', dir);
  for (const bind of spec.binds) args.push('--bind', `${bind.source}:${bind.target}`);
  args.push('--', ...spec.argv);
  const env: Record<string, string> = {};
  for (const entry of spec.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/setpriv', args, {
      cwd: spec.storeRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: spec.signal,
      killSignal: 'SIGKILL',
    });
    child.stdout.on('data', (chunk: Buffer) => spec.onOutput(chunk, 'stdout'));
    child.stderr.on('data', (chunk: Buffer) => spec.onOutput(chunk, 'stderr'));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ exitCode: code ?? 128, signal: signal ?? undefined }));
  });
}
