// The fixed cost of a RUN: mounting the overlay in fresh namespaces, starting the command and tearing
// it all down, measured with `/bin/true` so that the command itself costs nothing.
import { createHash } from 'node:crypto';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runInSandbox } from '../src/overlay/sandbox.js';
import { elapsedMs, timeCommand } from './measure.js';

export interface RunTimings {
  lowers: number;
  samplesMs: number[];
}

/** A store-like root holding the busybox rootfs and `extraLayers` tiny layers, each reachable as l/<id>. */
export async function makeLayerStore(storeRoot: string, rootfsTar: string, extraLayers: number): Promise<string[]> {
  await mkdir(path.join(storeRoot, 'l'), { recursive: true });
  const addLayer = async (name: string, fill: (diff: string) => Promise<void>): Promise<string> => {
    const id = createHash('sha256').update(name).digest('hex');
    const diff = path.join(storeRoot, 'layers', id, 'diff');
    await mkdir(diff, { recursive: true });
    await fill(diff);
    // Same shape as Store.shortLink: 20 hex digits, relative to the store root.
    const link = path.join('l', id.slice(0, 20));
    await symlink(path.join('..', 'layers', id, 'diff'), path.join(storeRoot, link));
    return link;
  };
  const base = await addLayer('rootfs', (diff) => timeCommand('tar', ['-xf', rootfsTar, '-C', diff]).then(() => undefined));
  const extras: string[] = [];
  for (let i = 0; i < extraLayers; i++) {
    extras.push(await addLayer(`layer-${i}`, async (diff) => {
      await mkdir(path.join(diff, 'opt'));
      await writeFile(path.join(diff, 'opt', `layer-${i}`), `${i}\n`);
    }));
  }
  return [...extras.reverse(), base]; // top first, as overlay's lowerdir wants
}

/** Times `iterations` RUNs of /bin/true over `lowers`, each with a fresh upper and work dir. */
export async function timeRuns(storeRoot: string, lowers: string[], iterations: number): Promise<RunTimings> {
  const samplesMs: number[] = [];
  // One untimed run first: it pulls the helper binary and the lower layers into the caches.
  for (let i = -1; i < iterations; i++) {
    const runDir = path.join(storeRoot, 'runs', String(i + 1));
    const dirs = { upper: path.join(runDir, 'upper'), work: path.join(runDir, 'work'), mountpoint: path.join(runDir, 'mnt') };
    for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true });
    let output = '';
    const started = process.hrtime.bigint();
    const result = await runInSandbox({
      storeRoot,
      lowers,
      ...dirs,
      argv: ['/bin/true'],
      env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
      user: '0',
      cwd: '/',
      mkdirs: [],
      binds: [],
      onOutput: (chunk) => { output += chunk.toString(); },
    });
    const ms = elapsedMs(started);
    if (result.exitCode !== 0) throw new Error(`RUN /bin/true over ${lowers.length} lowerdirs exited with ${result.exitCode}: ${output.trim()}`);
    if (i >= 0) samplesMs.push(ms);
    await rm(runDir, { recursive: true, force: true });
  }
  return { lowers: lowers.length, samplesMs };
}
