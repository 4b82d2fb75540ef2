// What a store's builds leave running or mounted, seen from every process on the machine.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { strataBin, type Run } from '../helpers.js';

const pids = (): string[] => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));

/** Overlay mounts of a store in any mount namespace (a RUN sandbox's is private). */
export function overlayMountsAnywhere(storeRoot: string): string[] {
  const found: string[] = [];
  for (const pid of pids()) {
    try {
      for (const line of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
        if (line.includes(' overlay ') && line.includes(storeRoot)) found.push(`${pid}: ${line}`);
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Processes whose command line names the store (builders, sandboxes). */
export function processesOf(storeRoot: string): string[] {
  return pids().filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(storeRoot);
    } catch {
      return false;
    }
  });
}

/** Polls until neither a process nor a mount of the store is left (the kernel tears the sandbox
 * down after the builder's death asynchronously), up to `ms`. */
export async function waitForNothingLeft(storeRoot: string, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (processesOf(storeRoot).length === 0 && overlayMountsAnywhere(storeRoot).length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `strata args...`; the child and a promise of its result. */
export function startStrata(args: string[]): { pid: number; kill: (s: NodeJS.Signals) => void; done: Promise<Run> } {
  const child = spawn(process.execPath, [strataBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { pid: child.pid!, kill: (s) => child.kill(s), done };
}
