// Cold builds, Dockerfile to OCI archive, by strata and by buildah: fresh stores, no cache.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { timeCommand } from './measure.js';

export interface ColdBuild {
  strataSeconds: number;
  buildahSeconds: number;
}

/** Builds the context `caseDir` (its Dockerfile) with each builder into a fresh store under `workDir`. */
export async function coldBuild(strataBin: string, peersDir: string, caseDir: string, workDir: string): Promise<ColdBuild> {
  await mkdir(workDir, { recursive: true });
  const strata = await timeCommand(process.execPath, [
    strataBin, 'build', '--root', path.join(workDir, 'strata-store'), '--progress', 'plain',
    '-t', `bench-${path.basename(caseDir)}:1`, '--output', `type=oci,dest=${path.join(workDir, 'strata.tar')}`, caseDir,
  ]);
  const buildah = await timeCommand(path.join(peersDir, 'buildah-build.sh'), [caseDir, path.join(workDir, 'buildah.tar')], {
    ...process.env,
    STORE: path.join(workDir, 'buildah-store'),
  });
  return { strataSeconds: strata.seconds, buildahSeconds: buildahBuildAndPush(buildah.stderr) ?? buildah.seconds };
}

/** buildah's time to the OCI archive as the script reports it (build + push), without the script's
 * own cleanup (rmi, prune) and layer count, which strata's figure does not include either. */
function buildahBuildAndPush(log: string): number | undefined {
  const build = [...log.matchAll(/^build\[\w+\] wall=([\d.]+)s$/gm)].pop();
  const push = /^push oci-archive wall=([\d.]+)s/m.exec(log);
  return build && push ? Number(build[1]) + Number(push[1]) : undefined;
}

/** The peers' cases need the busybox rootfs tar in their build context; prepare-cases.sh puts it there. */
export async function preparePeerCases(peersDir: string, cases: string[]): Promise<void> {
  if (cases.every((c) => existsSync(path.join(peersDir, 'cases', c, 'busybox-rootfs.tar')))) return;
  await timeCommand(path.join(peersDir, 'prepare-cases.sh'), []);
}

/** Mount points under `dir` (deepest first), e.g. what an interrupted buildah left behind. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((target): target is string => target !== undefined && (target === dir || target.startsWith(`${dir}/`)))
    .reverse();
}
