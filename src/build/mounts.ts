// RUN --mount, --network and --security, and the build's secrets (`strata build --secret`).
//
// parseRunFlags turns the flags of one RUN into typed mounts with the Dockerfile reference's defaults
// (BuildKit's key names and checks); planMounts resolves their sources for the sandbox (overlay/
// sandbox.ts, native/strata-run.c), and describeMountsForCache gives what a step cache must key on.
//
// Where things live:
// - bind from the context: the context directory itself (read-only), or an overlay over it whose
//   upperdir is in the step's temp dir (rw: writes are discarded with it);
// - bind from a stage or an image: an overlay of its layers, upperdir in the step's temp dir;
// - cache: `<store>/cache-mounts/<sha256 of id and base>/data`, next to a `lock` file that sandbox
//   users flock (shared: LOCK_SH, locked: LOCK_EX waits, private: LOCK_EX if free, else a fresh
//   directory in the step's temp dir);
// - tmpfs and secrets: memory only (a secret travels through a pipe into a private tmpfs).
// Mountpoints missing from the image go into the RUN's init layer, so none of them reaches the layer
// (BuildKit removes the mountpoints it created after the command for the same reason).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { components, LayeredTree } from '../overlay/tree.js';
import { overlayOptions } from '../overlay/mount.js';
import type { Mountpoint } from '../overlay/init-layer.js';
import type { SandboxMount } from '../overlay/sandbox.js';
import { UpperWriter } from '../overlay/upper.js';
import { copyInto } from './copy.js';

export class MountSpecError extends Error {}

export type CacheSharing = 'shared' | 'private' | 'locked';
export type NetworkMode = 'default' | 'none' | 'host';

export interface BindMount {
  type: 'bind';
  /** absolute path inside the image (relative targets are joined to WORKDIR) */
  target: string;
  /** path inside `from` ('' = its root) */
  source: string;
  /** stage or image name; undefined = the build context */
  from?: string;
  readonly: boolean;
}

export interface CacheMount {
  type: 'cache';
  target: string;
  id: string;
  sharing: CacheSharing;
  /** stage or image whose `source` seeds a new cache directory */
  from?: string;
  source: string;
  readonly: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  /** bytes; undefined = the kernel's default (half of RAM) */
  size?: number;
}

export interface SecretMount {
  type: 'secret';
  id: string;
  /** file path; undefined when only `env` is set */
  target?: string;
  env?: string;
  required: boolean;
  mode: number;
  uid: number;
  gid: number;
}

export type RunMount = BindMount | CacheMount | TmpfsMount | SecretMount;

export interface RunFlags {
  mounts: RunMount[];
  network: NetworkMode;
}

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const SHARING_MODES = ['shared', 'private', 'locked'];

/** One CSV record as Go's encoding/csv reads it (BuildKit parses --mount with it). */
function csvFields(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new MountSpecError('unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i++];
      }
      if (i < text.length && text[i] !== ',') throw new MountSpecError(`extraneous character after a quoted field: ${text[i]}`);
    } else {
      const comma = text.indexOf(',', i);
      const end = comma < 0 ? text.length : comma;
      field = text.slice(i, end);
      if (field.includes('"')) throw new MountSpecError(`bare " in non-quoted field: ${field}`);
      i = end;
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (['1', 't', 'true'].includes(v)) return true;
  if (['0', 'f', 'false'].includes(v)) return false;
  throw new MountSpecError(`invalid value for ${key}: ${value}`);
}

function parseUint(key: string, value: string, radix: 8 | 10): number {
  const re = radix === 8 ? /^[0-7]+$/ : /^\d+$/;
  const n = re.test(value) ? parseInt(value, radix) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new MountSpecError(`invalid value ${value} for ${key}`);
  return n;
}

/** `64m`, `1g`, `1024` as docker's RAMInBytes reads them (binary units, optional b / ib). */
function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new MountSpecError(`invalid value for size: ${value}`);
  const power = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  return Math.floor(Number(m[1]) * 1024 ** power);
}

/** Joins a relative target to WORKDIR, as BuildKit does; `/` itself cannot be a mountpoint. */
function absoluteTarget(target: string, workdir: string): string {
  const abs = path.posix.resolve('/', workdir, target);
  if (abs === '/') throw new MountSpecError(`invalid mount target "${abs}"`);
  return abs;
}

/** One `--mount=` value; `workdir` is the stage's WORKDIR at this RUN. */
export function parseMountSpec(spec: string, workdir: string): RunMount {
  const fields = csvFields(spec);
  const values = new Map<string, string | true>();
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0 && !['readonly', 'ro', 'readwrite', 'rw', 'required'].includes(key)) {
      throw new MountSpecError(`invalid field '${field}' must be a key=value pair`);
    }
    const canonical = ({ src: 'source', dst: 'target', destination: 'target', ro: 'readonly', rw: 'readwrite' } as Record<string, string>)[key] ?? key;
    if (!['type', 'from', 'source', 'target', 'readonly', 'readwrite', 'required', 'size', 'id', 'sharing', 'mode', 'uid', 'gid', 'env'].includes(canonical)) {
      throw new MountSpecError(`unexpected key '${key}' in '${field}'`);
    }
    values.set(canonical, eq < 0 ? true : field.slice(eq + 1));
  }
  const text = (key: string): string | undefined => {
    const v = values.get(key);
    return v === true ? undefined : v;
  };
  const type = (text('type') ?? 'bind').toLowerCase();
  if (!MOUNT_TYPES.includes(type)) throw new MountSpecError(`unsupported mount type "${text('type')}" (bind, cache, tmpfs, secret or ssh)`);
  if (type === 'ssh') throw new MountSpecError('RUN --mount=type=ssh is not supported');
  const keyNotFor = (key: string, allowed: string[]): void => {
    if (values.has(key) && !allowed.includes(type)) throw new MountSpecError(`unexpected key '${key}' for mount type '${type}'`);
  };
  keyNotFor('required', ['secret']);
  keyNotFor('size', ['tmpfs']);
  keyNotFor('env', ['secret']);
  for (const key of ['mode', 'uid', 'gid']) {
    if (values.has(key) && !['secret', 'cache'].includes(type)) throw new MountSpecError(`${key} not allowed for "${type}" type mounts`);
  }
  if (values.has('sharing') && type !== 'cache') throw new MountSpecError(`invalid cache sharing set for ${type} mount`);

  const flag = (key: string): boolean | undefined => {
    const v = values.get(key);
    return v === undefined ? undefined : v === true ? true : parseBool(key, v);
  };
  const ro = flag('readonly');
  const rw = flag('readwrite');
  const readonly = ro ?? (rw === undefined ? type === 'bind' || type === 'secret' : !rw);
  const numeric = (key: string, radix: 8 | 10, fallback: number): number => {
    const v = text(key);
    return v === undefined ? fallback : parseUint(key, v, radix);
  };
  const from = text('from');
  if (from !== undefined && from === '') throw new MountSpecError('from= needs a stage or image name');
  const source = text('source') ?? '';
  const target = text('target');

  switch (type) {
    case 'bind':
      if (!target) throw new MountSpecError('bind mount needs a target');
      return { type, target: absoluteTarget(target, workdir), source, from, readonly };
    case 'cache': {
      if (!target) throw new MountSpecError('cache mount needs a target');
      const sharing = (text('sharing') ?? 'shared').toLowerCase();
      if (!SHARING_MODES.includes(sharing)) throw new MountSpecError(`unsupported sharing value "${text('sharing')}" (shared, private or locked)`);
      return {
        type, target: absoluteTarget(target, workdir), id: text('id') || path.posix.normalize(target), sharing: sharing as CacheSharing,
        from, source, readonly, mode: numeric('mode', 8, 0o755), uid: numeric('uid', 10, 0), gid: numeric('gid', 10, 0),
      };
    }
    case 'tmpfs': {
      if (!target) throw new MountSpecError('tmpfs mount needs a target');
      const size = text('size');
      return { type, target: absoluteTarget(target, workdir), size: size === undefined ? undefined : parseSize(size) };
    }
    default: {
      if (from !== undefined) throw new MountSpecError('secret mount should not have a from');
      if (text('source') !== undefined && text('id') !== undefined) throw new MountSpecError("both source and id can't be set");
      const env = text('env');
      const id = text('id') ?? text('source') ?? (target ? path.posix.basename(target) : '');
      if (!id) throw new MountSpecError('invalid secret mount: one of id, source or target is required');
      if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) throw new MountSpecError(`invalid env name for the secret: ${env}`);
      const file = target ?? (env === undefined ? `/run/secrets/${id}` : undefined);
      return {
        type: 'secret', id, env, required: flag('required') ?? false,
        target: file === undefined ? undefined : absoluteTarget(file, workdir),
        mode: numeric('mode', 8, 0o400), uid: numeric('uid', 10, 0), gid: numeric('gid', 10, 0),
      };
    }
  }
}

/** The flags of one RUN (as the parser collected them: name -> values). */
export function parseRunFlags(flags: Record<string, string[]>, workdir: string): RunFlags {
  const mounts = (flags.mount ?? []).map((spec) => {
    try {
      return parseMountSpec(spec, workdir);
    } catch (err) {
      if (err instanceof MountSpecError) throw new MountSpecError(`--mount=${spec}: ${err.message}`);
      throw err;
    }
  });
  const seen = new Set<string>();
  for (const m of mounts) {
    if (m.target === undefined) continue;
    if (seen.has(m.target)) throw new MountSpecError(`two mounts on the same target ${m.target}`);
    seen.add(m.target);
  }
  const network = flags.network?.[0] ?? 'default';
  if (!['default', 'none', 'host'].includes(network)) throw new MountSpecError(`unsupported network mode "${network}" (default, none or host)`);
  const security = flags.security?.[0] ?? 'sandbox';
  if (security === 'insecure') throw new MountSpecError('RUN --security=insecure is not supported: every RUN runs in the sandbox');
  if (security !== 'sandbox') throw new MountSpecError(`unsupported security mode "${security}" (sandbox or insecure)`);
  return { mounts, network: network as NetworkMode };
}

// ---- secrets given to the build ----

export interface SecretSpec {
  id: string;
  /** a file to read, or an environment variable */
  file?: string;
  env?: string;
}

/** `id=NAME,src=PATH`, `id=NAME,env=VAR`, `id=NAME` (the variable NAME if set, else the file NAME), as buildx. */
export function parseSecretSpec(spec: string): SecretSpec {
  const fields = new Map<string, string>();
  for (const part of csvFields(spec)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new MountSpecError(`--secret ${spec}: expected key=value pairs such as id=NAME,src=PATH`);
    const key = part.slice(0, eq).toLowerCase();
    const canonical = key === 'source' ? 'src' : key;
    if (!['type', 'id', 'src', 'env'].includes(canonical)) throw new MountSpecError(`--secret ${spec}: unexpected key ${key} (type, id, src, env)`);
    fields.set(canonical, part.slice(eq + 1));
  }
  const id = fields.get('id');
  if (!id) throw new MountSpecError(`--secret ${spec}: id= is required`);
  const type = fields.get('type') ?? (fields.has('src') ? 'file' : fields.has('env') ? 'env' : process.env[id] !== undefined ? 'env' : 'file');
  if (type === 'env') return { id, env: fields.get('env') ?? id };
  if (type === 'file') return { id, file: fields.get('src') ?? id };
  throw new MountSpecError(`--secret ${spec}: type must be file or env`);
}

/** Reads every secret up front: a missing file or variable is an error before anything is built. */
export function loadSecrets(specs: SecretSpec[]): Map<string, Buffer> {
  const secrets = new Map<string, Buffer>();
  for (const spec of specs) {
    if (spec.env !== undefined) {
      const value = process.env[spec.env];
      if (value === undefined) throw new MountSpecError(`secret ${spec.id}: environment variable ${spec.env} is not set`);
      secrets.set(spec.id, Buffer.from(value));
    } else {
      try {
        secrets.set(spec.id, fs.readFileSync(spec.file!));
      } catch (err) {
        throw new MountSpecError(`secret ${spec.id}: cannot read ${spec.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
  }
  return secrets;
}

// ---- resolving mounts for one RUN ----

export interface SourceLayers {
  /** layer directories, top first (for reading with LayeredTree) */
  dirs: string[];
  /** the same as lowerdir links relative to the store root */
  links: string[];
  diffIds: string[];
}

export interface MountContext {
  storeRoot: string;
  /** the step's temp dir: upperdirs of rw binds, private cache copies, secret staging */
  stepDir: string;
  contextDir: string;
  /** the image as the RUN sees it (targets are resolved in it) */
  image: LayeredTree;
  /** layers of a stage or a stored image named by from= */
  fromLayers: (from: string) => Promise<SourceLayers>;
  secrets: Map<string, Buffer>;
}

export interface MountPlan {
  /** mountpoints to create in the init layer (targets missing from the image, not inside another mount) */
  mountpoints: Mountpoint[];
  mounts: SandboxMount[];
  /** NAME=value entries added to the command's environment (secrets with env=) */
  env: string[];
}

const CACHE_DIR = 'cache-mounts';

/** The directory of a cache mount in the store: keyed by id and by what a new one starts from. */
export function cacheMountDir(storeRoot: string, m: CacheMount): string {
  const key = JSON.stringify([m.id, m.from ?? null, m.source, m.mode, m.uid, m.gid]);
  return path.join(storeRoot, CACHE_DIR, createHash('sha256').update(key).digest('hex'));
}

const isUnder = (child: string, parent: string): boolean => child.startsWith(parent === '/' ? '/' : `${parent}/`);

function resolveSource(tree: LayeredTree, source: string, label: string): { rel: string; isDir: boolean } {
  const rel = tree.resolve(source);
  const node = tree.lookup(rel);
  if (!node) throw new MountSpecError(`mount source ${source || '/'} not found in ${label}`);
  return { rel, isDir: node.type === 'dir' };
}

/** Makes a new cache directory (once, atomically): mode and owner from the mount, seeded from `from`. */
async function ensureCacheDir(dir: string, m: CacheMount, ctx: MountContext): Promise<string> {
  const data = path.join(dir, 'data');
  if (fs.existsSync(data)) return data;
  fs.mkdirSync(dir, { recursive: true });
  const fresh = path.join(dir, `new-${process.pid}-${Date.now()}`);
  fs.mkdirSync(fresh);
  try {
    if (m.from !== undefined) {
      const layers = await ctx.fromLayers(m.from);
      const tree = new LayeredTree(layers.dirs);
      resolveSource(tree, m.source, `${m.from}`);
      await copyInto(new UpperWriter(fresh, []), {
        sources: [m.source || '/'], dest: '/', workdir: '/', from: tree, fromLabel: m.from, extractArchives: false,
      });
    }
    fs.chmodSync(fresh, m.mode & 0o7777);
    fs.chownSync(fresh, m.uid, m.gid);
    fs.renameSync(fresh, data);
  } catch (err) {
    fs.rmSync(fresh, { recursive: true, force: true });
    // another build made it first: use theirs
    if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
  return data;
}

/** Resolves the mounts of one RUN: sources, cache directories, secrets, mountpoints. */
export async function planMounts(mounts: RunMount[], ctx: MountContext): Promise<MountPlan> {
  const plan: MountPlan = { mountpoints: [], mounts: [], env: [] };
  if (mounts.length === 0) return plan;
  const work = path.join(ctx.stepDir, 'mounts');
  fs.mkdirSync(work, { recursive: true });
  const rel = (p: string): string => path.relative(ctx.storeRoot, p);
  const locks: SandboxMount[] = [];
  const lockOf = new Map<string, { file: string; mode: 'sh' | 'ex' | 'try' }>();
  const targets: { target: string; isDir: boolean; mount: SandboxMount }[] = [];

  for (const [n, m] of mounts.entries()) {
    const scratch = path.join(work, String(n));
    fs.mkdirSync(scratch);
    if (m.type === 'bind') {
      if (m.from === undefined && !m.readonly) {
        // rw over the context: an overlay whose upperdir vanishes with the step
        const link = path.join(scratch, 'context');
        fs.symlinkSync(path.resolve(ctx.contextDir), link);
        const src = resolveSource(new LayeredTree([path.resolve(ctx.contextDir)]), m.source, 'the build context');
        targets.push({ target: m.target, isDir: src.isDir, mount: stagedBind(scratch, [rel(link)], src.rel, m) });
      } else if (m.from === undefined) {
        const src = resolveSource(new LayeredTree([path.resolve(ctx.contextDir)]), m.source, 'the build context');
        targets.push({ target: m.target, isDir: src.isDir, mount: { kind: 'bind', root: path.resolve(ctx.contextDir), sub: src.rel, target: m.target, readonly: true } });
      } else {
        const layers = await ctx.fromLayers(m.from);
        const src = resolveSource(new LayeredTree(layers.dirs), m.source, m.from);
        let lowers = layers.links;
        if (lowers.length === 0) {
          fs.mkdirSync(path.join(scratch, 'empty'));
          lowers = [rel(path.join(scratch, 'empty'))];
        }
        targets.push({ target: m.target, isDir: src.isDir, mount: stagedBind(scratch, lowers, src.rel, m) });
      }
    } else if (m.type === 'cache') {
      const dir = cacheMountDir(ctx.storeRoot, m);
      const data = await ensureCacheDir(dir, m, ctx);
      const lockFile = path.join(dir, 'lock');
      const mode = m.sharing === 'locked' ? 'ex' : m.sharing === 'private' ? 'try' : 'sh';
      const held = lockOf.get(dir);
      if (!held) lockOf.set(dir, { file: lockFile, mode });
      else if (held.mode === 'sh' && mode !== 'sh') held.mode = mode;
      let busy: { lock: string; alt: string } | undefined;
      if (m.sharing === 'private') {
        const alt = path.join(scratch, 'private');
        fs.mkdirSync(alt, { mode: m.mode & 0o7777 });
        fs.chmodSync(alt, m.mode & 0o7777);
        fs.chownSync(alt, m.uid, m.gid);
        busy = { lock: lockFile, alt: rel(alt) };
      }
      targets.push({ target: m.target, isDir: true, mount: { kind: 'bind', root: data, sub: '', target: m.target, readonly: m.readonly, busy } });
    } else if (m.type === 'tmpfs') {
      targets.push({ target: m.target, isDir: true, mount: { kind: 'tmpfs', target: m.target, size: m.size ?? 0 } });
    } else {
      const value = ctx.secrets.get(m.id);
      if (value === undefined) {
        if (m.required) throw new MountSpecError(`secret ${m.id} is required but was not provided (strata build --secret id=${m.id},src=FILE)`);
        continue; // as BuildKit: an optional secret that is not there is simply not mounted
      }
      if (m.env !== undefined) plan.env.push(`${m.env}=${value.toString('utf8')}`);
      if (m.target !== undefined) {
        targets.push({ target: m.target, isDir: false, mount: { kind: 'secret', data: value, target: m.target, mode: m.mode, uid: m.uid, gid: m.gid } });
      }
    }
  }
  // Locks in one global order (the cache directory), so that two builds never wait crosswise.
  for (const [, lock] of [...lockOf.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    locks.push({ kind: 'lock', file: lock.file, mode: lock.mode });
  }

  // Targets resolved in the image (symlinks followed inside it); a mount inside another mount comes
  // after it and gets its mountpoint created there, not in the init layer.
  const resolved = targets.map((t) => ({ ...t, path: `/${ctx.image.resolve(t.target)}` }));
  const depth = (p: string): number => components(p).length;
  resolved.sort((a, b) => depth(a.path) - depth(b.path));
  for (const [i, t] of resolved.entries()) {
    if (t.path === '/') throw new MountSpecError(`invalid mount target ${t.target}: it resolves to / in the image`);
    const inside = resolved.slice(0, i).some((o) => o.path !== t.path && o.isDir && isUnder(t.path, o.path));
    if (resolved.slice(0, i).some((o) => o.path === t.path)) throw new MountSpecError(`two mounts on the same target ${t.path}`);
    if (!inside && !ctx.image.lookup(t.path.slice(1))) plan.mountpoints.push({ path: t.path.slice(1), file: !t.isDir });
    plan.mounts.push({ ...t.mount, target: t.path } as SandboxMount);
  }
  plan.mounts = [...locks, ...plan.mounts];
  return plan;
}

/** A bind through an overlay of `lowers` mounted in the step's temp dir (its upperdir is discarded). */
function stagedBind(scratch: string, lowers: string[], sub: string, m: BindMount): SandboxMount {
  const merged = path.join(scratch, 'merged');
  for (const d of ['merged', 'upper', 'work']) fs.mkdirSync(path.join(scratch, d));
  return {
    kind: 'bind', root: merged, sub, target: m.target, readonly: m.readonly,
    overlay: overlayOptions(lowers, path.join(scratch, 'upper'), path.join(scratch, 'work')),
  };
}

// ---- what a step cache keys on ----

/** Digest of a context path's content (names, types, modes, link targets, file bytes), in name order. */
function contentDigest(root: string): string {
  const hash = createHash('sha256');
  const walk = (abs: string, name: string): void => {
    const st = fs.lstatSync(abs);
    hash.update(`${name}\0${st.mode.toString(8)}\0`);
    if (st.isSymbolicLink()) hash.update(`${fs.readlinkSync(abs)}\0`);
    else if (st.isFile()) hash.update(fs.readFileSync(abs)).update('\0');
    else if (st.isDirectory()) for (const child of fs.readdirSync(abs).sort()) walk(path.join(abs, child), `${name}/${child}`);
  };
  walk(root, '');
  return hash.digest('hex');
}

/**
 * A stable description of a RUN's mounts and network for the step cache: the mount options, the
 * content of context paths a bind mount reads, the layers of a stage or image it reads; never a
 * secret's value, never a cache mount's content (BuildKit keeps those out of the cache key too).
 */
export async function describeMountsForCache(flags: RunFlags, ctx: Pick<MountContext, 'contextDir' | 'fromLayers'>): Promise<string> {
  const parts: unknown[] = [`network=${flags.network === 'host' ? 'default' : flags.network}`];
  for (const m of flags.mounts) {
    if (m.type === 'bind' && m.from === undefined) {
      const tree = new LayeredTree([path.resolve(ctx.contextDir)]);
      const src = resolveSource(tree, m.source, 'the build context');
      parts.push({ ...m, content: contentDigest(path.join(path.resolve(ctx.contextDir), src.rel)) });
    } else if (m.type === 'bind' && m.from !== undefined) {
      parts.push({ ...m, layers: (await ctx.fromLayers(m.from)).diffIds });
    } else if (m.type === 'cache' && m.from !== undefined) {
      parts.push({ ...m, layers: (await ctx.fromLayers(m.from)).diffIds });
    } else {
      parts.push(m);
    }
  }
  return JSON.stringify(parts);
}
