// `npm run bench [-- --with-peers]`: strata's speed and memory as ratios against references measured
// in the same run on the same machine (see the README's Benchmark section).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../src/native/index.js';
import { coldBuild, mountsUnder, preparePeerCases } from './cold-build.js';
import { elapsedMs, hasCommand, percentile, timeCommand, timePipeline } from './measure.js';
import { describeMachine, formatTable, writeResults, type Figure, type Skipped } from './report.js';
import { makeLayerStore, timeRuns } from './run-overhead.js';
import { makeLargeUpperdir, makeSampleUpperdir } from './sample-upperdir.js';
import { makeLayersContext, makeManyFilesContext, makeTenStepContext, medianOfLast, strataBuild } from './build-figures.js';
import { makeDebianContext } from './debian-rootfs.js';

const MB = 1e6;
const COMMIT_REPEATS = 2;
const RUN_ITERATIONS = 30;
const MANY_LOWERS = 150;
const PEER_CASES = ['seed-shape', 'bigfile'];
const LARGE_LAYER_BYTES = 2e9;
const DEEP_LAYERS = 150;
const SHALLOW_LAYERS = 5;
const SMALL_FILES = 100_000;
const GROUPS = ['commit', 'large', 'run', 'layers', 'copy', 'cache', 'cold'] as const;
type Group = (typeof GROUPS)[number];

const args = process.argv.slice(2);
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = onlyArg ? onlyArg.slice('--only='.length).split(',') : [...GROUPS];
if (args.some((a) => a !== '--with-peers' && a !== onlyArg) || only.some((g) => !(GROUPS as readonly string[]).includes(g))) {
  console.error(`usage: node dist/bench/main.js [--with-peers] [--only=${GROUPS.join(',')}]
  --with-peers: apt-get install buildah if missing (cold-build figures)
  --only: run only these groups of figures (results then hold only those)`);
  process.exit(2);
}
const withPeers = args.includes('--with-peers');
const strataBin = path.join(packageRoot, 'bin', 'strata.js');
const busyboxTar = path.join(packageRoot, 'fixtures', 'busybox-rootfs.tar');
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
const benches: Record<Group, () => Promise<void>> = {
  commit: benchCommit,
  large: benchLargeCommit,
  run: benchRunOverhead,
  layers: benchLayerDepth,
  copy: benchCopyManyFiles,
  cache: benchCachedRebuild,
  cold: benchColdBuilds,
};
try {
  for (const group of GROUPS) if (only.includes(group)) await benches[group]();
} finally {
  cleanUp();
}
console.log(formatTable(machine, figures, skipped));
const written = await writeResults(path.join(packageRoot, 'bench', 'results'), machine, figures, skipped);
console.log(`\nwritten: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')} (${(elapsedMs(started) / 1000).toFixed(0)} s)`);

/** Committing a 200 MB upperdir, throughput against tar | gzip and tar | pigz, and
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
      target: { bound: 1, on: 'ratio' },
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

/** A RUN's fixed cost, over the base rootfs alone and under a 150-layer image. */
async function benchRunOverhead(): Promise<void> {
  if (!hasBusybox('RUN overhead')) return;
  const storeRoot = path.join(work, 'run-store');
  log(`RUN /bin/true over 1 and ${MANY_LOWERS} lowerdirs, ${RUN_ITERATIONS} times each`);
  const lowers = await makeLayerStore(storeRoot, busyboxTar, MANY_LOWERS - 1);
  const single = await timeRuns(storeRoot, lowers.slice(-1), RUN_ITERATIONS);
  const many = await timeRuns(storeRoot, lowers, RUN_ITERATIONS);
  const median = (samples: number[]) => percentile(samples, 50);
  const p90 = (samples: number[]) => `p90 ${percentile(samples, 90).toFixed(1)} ms, ${RUN_ITERATIONS} runs`;
  figures.push({
    name: 'RUN /bin/true, 1 lowerdir, median', unit: 'ms', strata: median(single.samplesMs), better: 'lower', detail: p90(single.samplesMs),
    target: { bound: 15, on: 'value' },
  });
  figures.push({
    name: `RUN /bin/true, ${MANY_LOWERS} lowerdirs, median`, unit: 'ms', strata: median(many.samplesMs), better: 'lower', detail: p90(many.samplesMs),
    reference: { name: '1 lowerdir', value: median(single.samplesMs) },
    target: { bound: 2, on: 'ratio' },
  });
  await rm(storeRoot, { recursive: true });
}

/** Cold builds: the peers' cases and a Debian rootfs, strata against buildah. */
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
  const cases = PEER_CASES.map((name) => ({ name, dir: path.join(peersDir, 'cases', name), detail: 'peers case' }));
  log('making a Debian rootfs context (~200 MB of this host\'s /usr)');
  const debianDir = path.join(work, 'debian-rootfs');
  await mkdir(debianDir);
  const rootfs = await makeDebianContext(debianDir);
  cases.push({
    name: 'debian-rootfs', dir: debianDir,
    detail: `ADD rootfs.tar.gz (${(rootfs.tarBytes / MB).toFixed(0)} MB, ${rootfs.files} files, gz ${(rootfs.gzipBytes / MB).toFixed(0)} MB) + 3 RUNs`,
  });
  for (const c of cases) {
    log(`cold build of ${c.name}: strata, then buildah`);
    const caseWork = path.join(work, `build-${c.name}`);
    const result = await coldBuild(strataBin, peersDir, c.dir, caseWork);
    figures.push({
      name: `cold build ${c.name} -> OCI tar`, unit: 's', strata: result.strataSeconds, better: 'lower',
      reference: { name: 'buildah', value: result.buildahSeconds },
      target: { bound: 0.7, on: 'ratio' },
      detail: `${c.detail}; fresh stores; buildah: build + push (--layers, overlay)`,
    });
    for (const target of mountsUnder(caseWork)) spawnSync('umount', ['-l', target], { stdio: 'ignore' });
    await rm(caseWork, { recursive: true, force: true });
  }
  await rm(debianDir, { recursive: true, force: true });
}

function hasBusybox(figure: string): boolean {
  if (existsSync(busyboxTar)) return true;
  skipped.push({ figure, reason: `${busyboxTar} is missing (fixtures/make-busybox-rootfs.sh makes it)` });
  return false;
}

/** Peak RSS while committing a 2 GB layer: memory must not grow with the layer. */
async function benchLargeCommit(): Promise<void> {
  const upper = path.join(work, 'upper-large');
  log(`making a ${(LARGE_LAYER_BYTES / 1e9).toFixed(0)} GB upperdir`);
  const sample = await makeLargeUpperdir(upper, LARGE_LAYER_BYTES);
  const blob = path.join(work, 'layer-large.tar.gz');
  log('committing it');
  const child = fileURLToPath(new URL('./commit-child.js', import.meta.url));
  const run = JSON.parse((await timeCommand(process.execPath, [child, upper, blob])).stdout) as { seconds: number; baselineRssBytes: number; peakRssBytes: number; blobBytes: number };
  figures.push({
    name: `peak RSS committing ${(sample.bytes / 1e9).toFixed(0)} GB`, unit: 'MB', better: 'lower',
    strata: run.peakRssBytes / MB,
    reference: { name: 'same process before', value: run.baselineRssBytes / MB },
    target: { bound: 200, on: 'value' },
    detail: `${sample.files} files, half random; ${(sample.bytes / MB / run.seconds).toFixed(0)} MB/s, gzip ${(run.blobBytes / MB).toFixed(0)} MB`,
  });
  await rm(upper, { recursive: true });
  await rm(blob, { force: true });
}

/** Per-step cost of a RUN step at the top of a 150-layer image against one over 5 layers. */
async function benchLayerDepth(): Promise<void> {
  if (!hasBusybox('layer depth')) return;
  const perStep: Record<number, number> = {};
  for (const runs of [SHALLOW_LAYERS, DEEP_LAYERS]) {
    log(`build of ${runs} RUN layers`);
    const context = path.join(work, `layers-${runs}`);
    await makeLayersContext(context, busyboxTar, runs);
    const build = await strataBuild(strataBin, path.join(work, `layers-store-${runs}`), context);
    // The last 5 steps: over 146-150 layers in the deep build, over 1-5 in the shallow one.
    perStep[runs] = medianOfLast(build.events, SHALLOW_LAYERS);
    await rm(context, { recursive: true });
    await rm(path.join(work, `layers-store-${runs}`), { recursive: true });
  }
  figures.push({
    name: `RUN step over ${DEEP_LAYERS} layers, median`, unit: 's', strata: perStep[DEEP_LAYERS], better: 'lower',
    reference: { name: `over ${SHALLOW_LAYERS} layers`, value: perStep[SHALLOW_LAYERS] },
    target: { bound: 2, on: 'ratio' },
    detail: 'strata build; a step: from its start to the next one\'s, commit included; last 5 steps',
  });
}

/** `COPY . /app` of 100,000 small files through a real build, against `cp -a` of the same tree. */
async function benchCopyManyFiles(): Promise<void> {
  const context = path.join(work, 'many-files');
  log(`making a context of ${SMALL_FILES} small files`);
  const bytes = await makeManyFilesContext(context, SMALL_FILES);
  log('cp -a, then strata build');
  // Both start with nothing dirty in the page cache (otherwise each pays for writing back the files
  // made before it), and neither right after a large delete: on this VM's ext4, file creation runs
  // up to 20 times slower for minutes after 100,000 files are deleted. So cp's copy is deleted only
  // once both have run.
  const settle = () => spawnSync('sync');
  const copied = path.join(work, 'many-files-copy');
  settle();
  const cp = await timeCommand('cp', ['-a', context, copied]);
  settle();
  const build = await strataBuild(strataBin, path.join(work, 'many-files-store'), context);
  await rm(copied, { recursive: true });
  figures.push({
    name: `COPY . /app, ${SMALL_FILES} files`, unit: 's', strata: build.seconds, better: 'lower',
    reference: { name: 'cp -a', value: cp.seconds },
    target: { bound: 1.5, on: 'ratio' },
    detail: `${(bytes / MB).toFixed(0)} MB; strata build: FROM scratch + COPY, layer commit included`,
  });
  await rm(context, { recursive: true });
  await rm(path.join(work, 'many-files-store'), { recursive: true });
}

/** A second identical build of a 10-instruction Dockerfile into the same store. */
async function benchCachedRebuild(): Promise<void> {
  if (!hasBusybox('cached rebuild')) return;
  const context = path.join(work, 'ten-steps');
  const store = path.join(work, 'ten-steps-store');
  await makeTenStepContext(context, busyboxTar);
  log('10-step build, then the same build again');
  await strataBuild(strataBin, store, context, ['-t', 'bench-cache:1']);
  const again = await strataBuild(strataBin, store, context, ['-t', 'bench-cache:1']);
  const steps = again.events.filter((e) => e.type === 'step-done');
  const cached = steps.filter((e) => e.cached).length;
  figures.push({
    name: 'fully cached rebuild, 10 steps', unit: 's', strata: again.seconds, better: 'lower',
    target: { bound: 0.3, on: 'value' },
    detail: cached === 0 ? 'cache not implemented: no step of the second build was cached' : `${cached} of ${steps.length} steps reported cached`,
  });
  // One file that step 6 copies changes: steps 6-10 should be the only ones that run.
  await writeFile(path.join(context, 'app.conf'), 'listen 9090\n');
  const changed = await strataBuild(strataBin, store, context, ['-t', 'bench-cache:1']);
  const fsSteps = new Set<number>();
  for (const e of changed.events) if (e.type === 'step-start' && /^(RUN|COPY|ADD|WORKDIR)\b/.test(e.instruction ?? '')) fsSteps.add(e.step!);
  const ran: number[] = [];
  for (const e of changed.events) if (e.type === 'step-done' && fsSteps.has(e.step!) && !e.cached) ran.push(e.step!);
  figures.push({
    name: 'rebuild after changing the file step 6 copies', unit: 's', strata: changed.seconds, better: 'lower',
    detail: `filesystem steps that ran: ${ran.join(', ')} (of ${[...fsSteps].join(', ')})`,
  });
  await rm(context, { recursive: true });
  await rm(store, { recursive: true });
}
