/**
 * Build-argument scoping, as Docker applies it.
 *
 *   new ArgScope(buildArgs?, predefined?)
 *     declareGlobal(name, default?)   an ARG before the first FROM
 *     forFrom(): Map                  what FROM lines may use: predefined args and global ARGs
 *     enterStage(inherited?)          start a stage; `inherited` = parent stage's values for FROM <stage>
 *     declare(name, default?)         an ARG inside the current stage
 *     values(): Map                   the stage's declared ARGs that have a value
 *     expansionEnv(env): Map          values() overlaid with ENV (ENV wins over ARG)
 *     runEnv(env): Map                expansionEnv(env) plus undeclared proxy build args, for RUN
 *     unusedBuildArgs(): string[]     --build-arg names no ARG declared (Docker warns about these)
 *   platformArgs(target, build)       values of the predefined TARGET and BUILD platform args
 *   PLATFORM_ARGS, PROXY_ARGS
 *
 * Rules: global ARGs are visible in FROM lines only; inside a stage an ARG is
 * visible once declared, and `ARG NAME` without a default takes the global
 * value. A --build-arg sets only declared ARGs, except the proxy args, which
 * reach RUN without a declaration. The platform args are automatic in the
 * global scope and need `ARG TARGETARCH` (etc.) inside a stage. Defaults must
 * be expanded by the caller (expandInstruction) before they are declared.
 */
import type { Env } from './expand.js';

export const PLATFORM_ARGS = [
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
] as const;

export const PROXY_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
] as const;

const PROXY_ARG_SET: ReadonlySet<string> = new Set(PROXY_ARGS);

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** TARGETPLATFORM=linux/arm64/v8, TARGETOS=linux, ... for the target and build platforms. */
export function platformArgs(target: PlatformSpec, build: PlatformSpec): Record<string, string> {
  const describe = (prefix: 'TARGET' | 'BUILD', platform: PlatformSpec) => ({
    [`${prefix}PLATFORM`]: [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/'),
    [`${prefix}OS`]: platform.os,
    [`${prefix}ARCH`]: platform.architecture,
    [`${prefix}VARIANT`]: platform.variant ?? '',
  });
  return { ...describe('TARGET', target), ...describe('BUILD', build) };
}

function toMap(env: Env): Map<string, string> {
  return env instanceof Map ? new Map(env) : new Map(Object.entries(env));
}

export class ArgScope {
  private readonly buildArgs: Map<string, string>;
  private readonly predefined: Map<string, string>;
  /** Global ARG values after --build-arg overrides; undefined when declared without any value. */
  private readonly globals = new Map<string, string | undefined>();
  private stage = new Map<string, string | undefined>();
  private readonly declared = new Set<string>();

  constructor(buildArgs: Env = {}, predefined: Env = {}) {
    this.buildArgs = toMap(buildArgs);
    this.predefined = toMap(predefined);
  }

  declareGlobal(name: string, defaultValue?: string): void {
    this.declared.add(name);
    this.globals.set(name, this.buildArgs.get(name) ?? defaultValue);
  }

  forFrom(): Map<string, string> {
    const env = new Map(this.predefined);
    for (const [name, value] of this.globals) if (value !== undefined) env.set(name, value);
    return env;
  }

  enterStage(inherited: Env = {}): void {
    this.stage = toMap(inherited);
  }

  declare(name: string, defaultValue?: string): void {
    this.declared.add(name);
    this.stage.set(name, this.buildArgs.get(name) ?? defaultValue ?? this.globals.get(name) ?? this.predefined.get(name));
  }

  values(): Map<string, string> {
    const values = new Map<string, string>();
    for (const [name, value] of this.stage) if (value !== undefined) values.set(name, value);
    return values;
  }

  expansionEnv(env: Env): Map<string, string> {
    const merged = this.values();
    for (const [name, value] of toMap(env)) merged.set(name, value);
    return merged;
  }

  runEnv(env: Env): Map<string, string> {
    const merged = new Map<string, string>();
    for (const [name, value] of this.buildArgs) {
      if (PROXY_ARG_SET.has(name) && !this.stage.has(name)) merged.set(name, value);
    }
    for (const [name, value] of this.expansionEnv(env)) merged.set(name, value);
    return merged;
  }

  unusedBuildArgs(): string[] {
    return [...this.buildArgs.keys()].filter((name) => !this.declared.has(name) && !PROXY_ARG_SET.has(name));
  }
}
