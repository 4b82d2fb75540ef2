// `npm run bench [-- --with-peers]`: strata's speed and memory as ratios against references measured
// in the same run on the same machine (see the README's Benchmark section).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../src/native/index.js';
import { coldBuild, mountsUnder, preparePeerCases } from './cold-build.js';
import { elapsedMs, hasCommand, percentile, timeCommand, timePipeline } from './measure.js';
import { describeMachine, formatTable, writeResults, type Figure, type Skipped } from './report.js';
import { makeLayerStore, timeRuns } from './run-overhead.js';
import { makeSampleUpperdir } from './sample-upperdir.js';

const MB = 1e6;
const COMMIT_REPEATS = 2;
const RUN_ITERATIONS = 30;
const MANY_LOWERS = 150;
const PEER_CASES = ['seed-shape', 'bigfile'];

const args = process.argv.slice(2);
if (args.some((a) => a !== '--with-peers')) {
  console.error('usage: node dist/bench/main.js [--with-peers]   (--with-peers: apt-get install buildah if missing)');
  process.exit(2);
}
const withPeers = args.includes('--with-peers');
const peersDir = path.resolve(process.env.STRATA_PEERS_DIR ?? path.join(packageRoot, '..', 'shared', 'peers'));

const figures: Figure[] = [];
const skipped: Skipped[] = [];
const log = (message: string) => console.error(`[bench] ${message}`);

const work = mkdtempSync(path.join(os.tmpdir(), 'strata-bench-'));
/** Synchronous so that it also runs from a signal handler: buildah's mounts first, then the files. */
function cleanUp(): void {
  for (const target of mountsUnder(work)) spawnSync('umount', ['-l', target], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.exit(128 + os.constants.signals[signal]);
  });
}

const started = process.hrtime.bigint();
const machine = describeMachine();
try {
  await benchCommit();
  await benchRunOverhead();
  await benchColdBuilds();
} finally {
  cleanUp();
}
console.log(formatTable(machine, figures, skipped));
const written = await writeResults(path.join(packageRoot, 'bench', 'results'), machine, figures, skipped);
console.log(`\nwritten: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')} (${(elapsedMs(started) / 1000).toFixed(0)} s)`);

/** Figures 1 and 2: committing a 200 MB upperdir, throughput against tar | gzip and tar | pigz, and
 * the committing process's peak RSS against its RSS before the commit. */
async function benchCommit(): Promise<void> {
  const upper = path.join(work, 'upper');
  log('making a 200 MB upperdir');
  const sample = await makeSampleUpperdir(upper);
  await timePipeline('tar -cf - -C "$1" . | cat > /dev/null', upper); // warm the page cache for everyone
  const mbPerSecond = (seconds: number) => sample.bytes / MB / seconds;
  const best = async (what: string, measure: () => Promise<number>): Promise<number> => {
    const seconds: number[] = [];
    for (let i = 1; i <= COMMIT_REPEATS; i++) {
      log(`${what} (${i}/${COMMIT_REPEATS})`);
      seconds.push(await measure());
    }
    return Math.min(...seconds);
  };

  const child = fileURLToPath(new URL('./commit-child.js', import.meta.url));
  const blob = path.join(work, 'layer.tar.gz');
  const runs: { seconds: number; baselineRssBytes: number; peakRssBytes: number; tarBytes: number; blobBytes: number }[] = [];
  const strataSeconds = await best('strata commitLayer', async () => {
    const { stdout } = await timeCommand(process.execPath, [child, upper, blob]);
    runs.push(JSON.parse(stdout));
    return runs[runs.length - 1].seconds;
  });
  const { tarBytes, blobBytes } = runs[0];
  const detail = `${sample.files} files, tar ${(tarBytes / MB).toFixed(0)} MB -> gzip ${(blobBytes / MB).toFixed(0)} MB, best of ${COMMIT_REPEATS}`;
  const pipeline = (compressor: string) => best(`tar | ${compressor}`, async () =>
    (await timePipeline(`tar -cf - -C "$1" . | ${compressor} > /dev/null`, upper)).seconds);
  const gzipSeconds = await pipeline('gzip -6');
  figures.push({
    name: 'layer commit, 200 MB', unit: 'MB/s', strata: mbPerSecond(strataSeconds), better: 'higher', detail,
    reference: { name: 'tar | gzip -6', value: mbPerSecond(gzipSeconds) },
  });
  if (hasCommand('pigz')) {
    figures.push({
      name: 'layer commit, 200 MB', unit: 'MB/s', strata: mbPerSecond(strataSeconds), better: 'higher',
      reference: { name: `tar | pigz -6 (${os.cpus().length} threads)`, value: mbPerSecond(await pipeline('pigz -6')) },
    });
  } else {
    skipped.push({ figure: 'layer commit vs tar | pigz -6', reason: 'pigz is not installed (apt-get install -y pigz)' });
  }
  figures.push({
    name: 'peak RSS while committing', unit: 'MB', better: 'lower',
    strata: Math.max(...runs.map((r) => r.peakRssBytes)) / MB,
    reference: { name: 'same process before', value: Math.min(...runs.map((r) => r.baselineRssBytes)) / MB },
    detail: 'child process: node + strata loaded',
  });
  await rm(upper, { recursive: true });
  await rm(blob, { force: true });
}

/** Figure 3: a RUN's fixed cost, over the base rootfs alone and under a 150-layer image. */
async function benchRunOverhead(): Promise<void> {
  const rootfsTar = path.join(packageRoot, 'fixtures', 'busybox-rootfs.tar');
  if (!existsSync(rootfsTar)) {
    skipped.push({ figure: 'RUN overhead', reason: `${rootfsTar} is missing (fixtures/make-busybox-rootfs.sh makes it)` });
    return;
  }
  const storeRoot = path.join(work, 'run-store');
  log(`RUN /bin/true over 1 and ${MANY_LOWERS} lowerdirs, ${RUN_ITERATIONS} times each`);
  const lowers = await makeLayerStore(storeRoot, rootfsTar, MANY_LOWERS - 1);
  const single = await timeRuns(storeRoot, lowers.slice(-1), RUN_ITERATIONS);
  const many = await timeRuns(storeRoot, lowers, RUN_ITERATIONS);
  const median = (samples: number[]) => percentile(samples, 50);
  const p90 = (samples: number[]) => `p90 ${percentile(samples, 90).toFixed(1)} ms, ${RUN_ITERATIONS} runs`;
  figures.push({ name: 'RUN /bin/true, 1 lowerdir, median', unit: 'ms', strata: median(single.samplesMs), better: 'lower', detail: p90(single.samplesMs) });
  figures.push({
    name: `RUN /bin/true, ${MANY_LOWERS} lowerdirs, median`, unit: 'ms', strata: median(many.samplesMs), better: 'lower', detail: p90(many.samplesMs),
    reference: { name: '1 lowerdir', value: median(single.samplesMs) },
  });
  await rm(storeRoot, { recursive: true });
}

/** Figure 4: cold builds of the peers' cases, strata against buildah. */
async function benchColdBuilds(): Promise<void> {
  const figure = 'cold build vs buildah';
  if (!existsSync(path.join(peersDir, 'buildah-build.sh'))) {
    skipped.push({ figure, reason: `no peer scripts in ${peersDir} (set STRATA_PEERS_DIR)` });
    return;
  }
  if (withPeers && !hasCommand('buildah')) {
    log('installing buildah');
    const apt = spawnSync('apt-get', ['install', '-y', '-qq', 'buildah'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (apt.status !== 0) log('apt-get install buildah failed');
  }
  if (!hasCommand('buildah')) {
    skipped.push({ figure, reason: `buildah is not installed${withPeers ? ' (apt-get install failed)' : ' (run with --with-peers to install it)'}` });
    return;
  }
  await preparePeerCases(peersDir, PEER_CASES);
  const strataBin = path.join(packageRoot, 'bin', 'strata.js');
  for (const caseName of PEER_CASES) {
    log(`cold build of ${caseName}: strata, then buildah`);
    const caseWork = path.join(work, `build-${caseName}`);
    const result = await coldBuild(strataBin, peersDir, caseName, caseWork);
    figures.push({
      name: `cold build ${caseName} -> OCI tar`, unit: 's', strata: result.strataSeconds, better: 'lower',
      reference: { name: 'buildah', value: result.buildahSeconds },
      detail: 'fresh stores; buildah: build + push (--layers, overlay)',
    });
    for (const target of mountsUnder(caseWork)) spawnSync('umount', ['-l', target], { stdio: 'ignore' });
    await rm(caseWork, { recursive: true, force: true });
  }
}
