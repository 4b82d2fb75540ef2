// Figures measured through real `strata build` runs: COPY of many small files against `cp -a`, the
// per-step cost of a deep image against a shallow one, and a rebuild with nothing changed.
import { mkdir, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { seededRandom } from '../src/util/seeded-random.js';
import { percentile, timeCommand } from './measure.js';

interface BuildEvent {
  type: string;
  time: string;
  cached?: boolean;
  step?: number;
  instruction?: string;
}

export interface TimedBuild {
  seconds: number;
  events: BuildEvent[];
}

/** `strata build` of `context` into the store `root`, timed, with its progress events (rawjson). */
export async function strataBuild(strataBin: string, root: string, context: string, extra: string[] = []): Promise<TimedBuild> {
  const result = await timeCommand(process.execPath, [strataBin, 'build', '--root', root, '--progress', 'rawjson', ...extra, context]);
  const events = result.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as BuildEvent);
  return { seconds: result.seconds, events };
}

/** Wall time from each step's start to the next step's start (the last one: to the end of the build):
 * everything a step costs, the builder's own bookkeeping included. */
export function stepSeconds(events: BuildEvent[]): number[] {
  const marks = events.filter((e) => e.type === 'step-start' || e.type === 'build-done').map((e) => Date.parse(e.time));
  return marks.slice(1).map((t, i) => (t - marks[i]) / 1000);
}

/** A context of `files` small files (64 B to 4 KiB of text, 1000 per directory) and a Dockerfile
 * `FROM scratch` + `COPY . /app`. Returns the bytes of file content. */
export async function makeManyFilesContext(dir: string, files: number): Promise<number> {
  const random = seededRandom(0xc0b1);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz \n';
  const text = Buffer.from(Array.from({ length: 8192 }, () => alphabet[Math.floor(random() * alphabet.length)]).join(''));
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const sub = path.join(dir, 'src', `d${String(Math.floor(i / 1000)).padStart(3, '0')}`);
    if (i % 1000 === 0) await mkdir(sub, { recursive: true });
    const size = 64 + Math.floor(random() * 4032);
    const start = Math.floor(random() * (text.length - size));
    await writeFile(path.join(sub, `f${i}.txt`), text.subarray(start, start + size));
    bytes += size;
  }
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY . /app\n');
  return bytes;
}

/** A context whose Dockerfile is the busybox base plus `runs` RUN steps, each adding a small layer. */
export async function makeLayersContext(dir: string, rootfsTar: string, runs: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await copyFile(rootfsTar, path.join(dir, 'busybox-rootfs.tar'));
  const steps = Array.from({ length: runs }, (_, i) => `RUN echo ${i} > /opt/layer-${String(i).padStart(3, '0')}`);
  await writeFile(path.join(dir, 'Dockerfile'), ['FROM scratch', 'ADD busybox-rootfs.tar /', 'RUN mkdir -p /opt', ...steps, ''].join('\n'));
}

/** The median full cost of the last `count` steps of a build (the deepest ones). */
export function medianOfLast(events: BuildEvent[], count: number): number {
  return percentile(stepSeconds(events).slice(-count), 50);
}

/** A 10-instruction Dockerfile over the busybox base: RUN, COPY, WORKDIR, ENV, CMD and LABEL steps;
 * step 6 copies app.conf (the file the one-file-change figure edits). */
export async function makeTenStepContext(dir: string, rootfsTar: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await copyFile(rootfsTar, path.join(dir, 'busybox-rootfs.tar'));
  await writeFile(path.join(dir, 'app.conf'), 'listen 8080\n');
  await writeFile(path.join(dir, 'Dockerfile'), [
    'FROM scratch',
    'ADD busybox-rootfs.tar /',
    'RUN mkdir -p /etc/app && echo one > /etc/app/one',
    'ENV APP_MODE=bench',
    'WORKDIR /srv/app',
    'RUN echo "$APP_MODE" > mode',
    'COPY app.conf /etc/app/',
    'RUN ls -l /etc/app > listing',
    `RUN echo 'app:x:1000:1000::/srv/app:/bin/sh' >> /etc/passwd`,
    'LABEL org.example.bench=cached-rebuild',
    'CMD ["cat", "/srv/app/mode"]',
    '',
  ].join('\n'));
}
