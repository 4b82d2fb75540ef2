// Pure edits on an image config, one per Dockerfile instruction effect. Every function returns a new
// config and leaves its input untouched (unchanged parts are shared, so treat configs as immutable).

import { posix } from 'node:path';
import { sortedMap, toJson } from './manifest.js';
import type { ContainerConfig, Digest, HealthConfig, HistoryEntry, ImageConfig, Platform } from './types.js';

/** Docker's default PATH for Linux containers (what the classic builder puts into a FROM scratch image). */
export const DefaultLinuxPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function emptyConfig(platform: Platform): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    variant: platform.variant,
    // Windows containers get their PATH from the host, so Docker sets none there.
    config: platform.os === 'windows' ? {} : { Env: [`PATH=${DefaultLinuxPath}`] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

function withContainerConfig(cfg: ImageConfig, patch: Partial<ContainerConfig>): ImageConfig {
  return { ...cfg, config: { ...cfg.config, ...patch } };
}

/** Sets KEY=value, keeping the variable's position when it is already set (as Docker's ENV does). */
export function withEnv(cfg: ImageConfig, key: string, value: string): ImageConfig {
  if (key === '' || key.includes('=')) throw new Error(`invalid environment variable name: ${JSON.stringify(key)}`);
  const entry = `${key}=${value}`;
  const env = cfg.config.Env ?? [];
  const at = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
  const next = at < 0 ? [...env, entry] : env.map((e, i) => (i === at ? entry : e));
  return withContainerConfig(cfg, { Env: next });
}

/** Adds labels; a label that is already set takes the new value. */
export function withLabels(cfg: ImageConfig, labels: Record<string, string>): ImageConfig {
  return withContainerConfig(cfg, { Labels: { ...cfg.config.Labels, ...labels } });
}

/** Adds exposed ports: "80" -> "80/tcp", "53/UDP" -> "53/udp", "8000-8002" -> three ports, as Docker expands. */
export function withExposedPorts(cfg: ImageConfig, ports: string[]): ImageConfig {
  const exposed = { ...cfg.config.ExposedPorts };
  for (const spec of ports) for (const port of expandPortSpec(spec)) exposed[port] = {};
  return withContainerConfig(cfg, { ExposedPorts: exposed });
}

function expandPortSpec(spec: string): string[] {
  const match = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(spec);
  const first = Number(match?.[1]);
  const last = match?.[2] === undefined ? first : Number(match[2]);
  const proto = (match?.[3] ?? 'tcp').toLowerCase();
  if (!match || last < first || last > 65535 || !['tcp', 'udp', 'sctp'].includes(proto)) {
    throw new Error(`invalid port specification: ${JSON.stringify(spec)}`);
  }
  const out: string[] = [];
  for (let p = first; p <= last; p++) out.push(`${p}/${proto}`);
  return out;
}

export function withVolumes(cfg: ImageConfig, paths: string[]): ImageConfig {
  const volumes = { ...cfg.config.Volumes };
  for (const p of paths) volumes[p] = {};
  return withContainerConfig(cfg, { Volumes: volumes });
}

/** WORKDIR: a relative path is resolved against the current one (Docker's normalizeWorkdir); absolute paths are kept as written. */
export function withWorkingDir(cfg: ImageConfig, dir: string): ImageConfig {
  if (dir === '') throw new Error('WORKDIR needs a path');
  const resolved = posix.isAbsolute(dir) ? dir : posix.join('/', cfg.config.WorkingDir ?? '', dir);
  return withContainerConfig(cfg, { WorkingDir: resolved });
}

export function withUser(cfg: ImageConfig, user: string): ImageConfig {
  return withContainerConfig(cfg, { User: user });
}

export function withCmd(cfg: ImageConfig, cmd: string[] | null): ImageConfig {
  return withContainerConfig(cfg, { Cmd: cmd });
}

/**
 * Docker drops a Cmd inherited from the base image when a stage sets ENTRYPOINT without setting CMD itself;
 * only the builder knows whether this stage set CMD, so it passes `resetCmd`.
 */
export function withEntrypoint(
  cfg: ImageConfig,
  entrypoint: string[] | null,
  options: { resetCmd: boolean },
): ImageConfig {
  const patch: Partial<ContainerConfig> = { Entrypoint: entrypoint };
  if (options.resetCmd) patch.Cmd = null;
  return withContainerConfig(cfg, patch);
}

export function withStopSignal(cfg: ImageConfig, signal: string): ImageConfig {
  return withContainerConfig(cfg, { StopSignal: signal });
}

/** HEALTHCHECK; `HEALTHCHECK NONE` is `{ Test: ['NONE'] }` as in Docker. */
export function withHealthcheck(cfg: ImageConfig, healthcheck: HealthConfig): ImageConfig {
  return withContainerConfig(cfg, { Healthcheck: healthcheck });
}

/** Replaces the ONBUILD triggers: ONBUILD passes the old list plus one, a FROM that ran them passes null. */
export function withOnBuild(cfg: ImageConfig, triggers: string[] | null): ImageConfig {
  return withContainerConfig(cfg, { OnBuild: triggers });
}

export function withShell(cfg: ImageConfig, shell: string[]): ImageConfig {
  return withContainerConfig(cfg, { Shell: shell });
}

/** Records a filesystem layer: its diff_id and the history entry of the step that made it. */
export function appendLayer(cfg: ImageConfig, diffId: Digest, history: HistoryEntry): ImageConfig {
  return {
    ...cfg,
    rootfs: { type: 'layers', diff_ids: [...cfg.rootfs.diff_ids, diffId] },
    history: [...cfg.history, { ...history, empty_layer: undefined }],
  };
}

/** Records a step that changed only the config (ENV, CMD, ...): a history entry with empty_layer true. */
export function appendHistory(cfg: ImageConfig, entry: HistoryEntry): ImageConfig {
  return { ...cfg, history: [...cfg.history, { ...entry, empty_layer: true }] };
}

export function withCreated(cfg: ImageConfig, iso: string): ImageConfig {
  return { ...cfg, created: iso };
}

/** The config's canonical bytes: fields in a fixed order, map keys sorted, undefined fields left out. */
export function serializeConfig(cfg: ImageConfig): Buffer {
  const c = cfg.config;
  const hc = c.Healthcheck;
  return toJson({
    created: cfg.created,
    author: cfg.author,
    architecture: cfg.architecture,
    variant: cfg.variant,
    os: cfg.os,
    config: {
      User: c.User,
      ExposedPorts: sortedMap(c.ExposedPorts),
      Env: c.Env,
      Entrypoint: c.Entrypoint,
      Cmd: c.Cmd,
      Volumes: sortedMap(c.Volumes),
      WorkingDir: c.WorkingDir,
      Labels: sortedMap(c.Labels),
      StopSignal: c.StopSignal,
      ArgsEscaped: c.ArgsEscaped,
      Healthcheck: hc && {
        Test: hc.Test,
        Interval: hc.Interval,
        Timeout: hc.Timeout,
        StartPeriod: hc.StartPeriod,
        StartInterval: hc.StartInterval,
        Retries: hc.Retries,
      },
      OnBuild: c.OnBuild,
      Shell: c.Shell,
    },
    rootfs: { type: cfg.rootfs.type, diff_ids: cfg.rootfs.diff_ids },
    history: cfg.history.map((h) => ({
      created: h.created,
      created_by: h.created_by,
      author: h.author,
      comment: h.comment,
      empty_layer: h.empty_layer,
    })),
  });
}
