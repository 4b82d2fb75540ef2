// Timing and process helpers shared by the benchmark figures.
import { spawn, spawnSync } from 'node:child_process';

export interface CommandResult {
  seconds: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and times it (wall clock); rejects on a non-zero exit. */
export function timeCommand(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result = { seconds, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() };
      if (code === 0) return resolve(result);
      const tail = result.stderr.trim().split('\n').slice(-5).join('\n');
      reject(new Error(`${command} ${args.join(' ')} ${signal ? `was killed by ${signal}` : `exited with ${code}`}\n${tail}`));
    });
  });
}

/** Times a bash pipeline; pipefail so that a failing tar is not hidden by the compressor. */
export function timePipeline(script: string, ...args: string[]): Promise<CommandResult> {
  return timeCommand('bash', ['-o', 'pipefail', '-c', script, 'bench', ...args]);
}

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Milliseconds since `started` (a process.hrtime.bigint() reading). */
export function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}
