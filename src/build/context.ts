// The build context as COPY and ADD see it: the context directory minus what `.dockerignore`
// excludes, with source paths that can never lead out of it.
//
// - Ignore rules come from `<Dockerfile>.dockerignore` next to the Dockerfile when it exists, else from
//   `<context>/.dockerignore`; they are read once, when the context is opened. Matching is Docker's
//   (moby/patternmatcher, MatchesOrParentMatches): a pattern excludes a path when it matches the path
//   or one of its parent directories, later `!` exceptions re-include, patterns are cleaned like
//   filepath.Clean with a leading `/` dropped. The Dockerfile and the ignore file are read by the
//   builder from disk whatever the rules say, but COPY sees them only when they are not excluded.
// - Source paths are resolved inside the context root: `..` above the root, and symlinks whose
//   target leaves the root, are errors (Docker's classic builder refused `..`; BuildKit silently
//   clamps, which hides mistakes). An absolute source is relative to the root, as in Docker.
//   Symlinks inside copied directories are copied as symlinks, never followed.
// - hashSources() digests exactly what a COPY of the same sources reads (the same walk, the same
//   rules): relative paths, types, modes, owners, link targets and file bytes, never mtimes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import dockerignore from '@balena/dockerignore';
import { components, nodeType, type NodeType } from '../overlay/tree.js';

export class ContextError extends Error {}

/** The attributes COPY uses (fs.Stats has them; the context keeps only these, no Date objects). */
export type SourceStat = Pick<fs.Stats, 'mode' | 'uid' | 'gid' | 'size' | 'mtimeMs' | 'rdev' | 'nlink' | 'dev' | 'ino'>;

export interface SourceNode {
  type: NodeType;
  abs: string;
  stat: SourceStat;
}

/** A compact copy of the stat: a listing of 100,000 entries keeps these, not Stats objects. */
const sourceStat = (st: fs.Stats): SourceStat => ({
  mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, mtimeMs: st.mtimeMs, rdev: st.rdev, nlink: st.nlink, dev: st.dev, ino: st.ino,
});

/** A tree COPY can read from: the build context, or the layers of a stage or image (LayeredTree). */
export interface SourceTree {
  lookup(rel: string): SourceNode | null;
  /** names of a directory, sorted, without what the tree hides */
  readdir(rel: string): string[];
  /** a path with its symlinks followed inside the tree ('' = the root) */
  resolve(p: string, followLast?: boolean): string;
}

/** Docker's pattern matcher over slash-separated paths relative to a root. */
export class PatternSet {
  private readonly matcher = dockerignore.default({ ignorecase: false });
  readonly exceptions: boolean;
  readonly empty: boolean;

  /** @param patterns lines of an ignore file or --exclude values; `where` names them in errors */
  constructor(patterns: string[], where: string) {
    const cleaned: string[] = [];
    patterns.forEach((line, index) => {
      const pattern = normalizePattern(line);
      if (pattern === undefined) return;
      if (pattern === '!') throw new ContextError(`${where}:${index + 1}: illegal exclusion pattern "!"`);
      cleaned.push(pattern);
    });
    this.empty = cleaned.length === 0;
    this.exceptions = cleaned.some((p) => p.startsWith('!'));
    for (const [index, pattern] of cleaned.entries()) {
      this.matcher.add(pattern);
      try {
        this.matcher.ignores('probe');
      } catch {
        throw new ContextError(`${where}: bad pattern ${JSON.stringify(patterns[index])}`);
      }
    }
  }

  /** Whether a path (relative, no leading `/`) is excluded. */
  matches(rel: string): boolean {
    return !this.empty && rel !== '' && this.matcher.ignores(rel);
  }
}

/**
 * One ignore-file line as moby's ignorefile.ReadAll leaves it, adapted to the library: comments and
 * blank lines dropped, `!` split off, path cleaned, a leading `/` removed. Two gaps of the library
 * against moby/patternmatcher are closed here: it leaves `+(){}|` unescaped in its regular
 * expression (Docker matches them literally), and moby matches a pattern that starts with `**`
 * followed by plain text as a suffix (`**.txt` matches `a/b.txt`), which `**\/*` expresses.
 */
function normalizePattern(line: string): string | undefined {
  if (line.startsWith('#')) return undefined;
  let pattern = line.trim();
  if (pattern === '') return undefined;
  const exception = pattern.startsWith('!');
  if (exception) pattern = pattern.slice(1).trim();
  if (pattern !== '') {
    pattern = path.posix.normalize(pattern).replace(/(.)\/$/, '$1');
    if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    if (/^\*\*[^/]/.test(pattern) && !/[*?[\]\\]/.test(pattern.slice(2))) pattern = `**/*${pattern.slice(2)}`;
    pattern = pattern.replace(/[+(){}|]/g, '\\$&');
  }
  return exception ? `!${pattern}` : pattern;
}

export interface BuildContext extends SourceTree {
  /** the context directory, absolute, symlinks resolved */
  readonly root: string;
  /** the ignore file in effect, if any */
  readonly ignoreFile?: string;
  readonly ignore: PatternSet;
}

/** Opens the context once per build: the ignore rules are read here. */
export async function openContext(contextDir: string, dockerfilePath: string): Promise<BuildContext> {
  const root = await fs.promises.realpath(contextDir).catch(() => {
    throw new ContextError(`build context ${contextDir} is not a directory`);
  });
  if (!(await fs.promises.stat(root)).isDirectory()) throw new ContextError(`build context ${contextDir} is not a directory`);
  const candidates = [`${path.resolve(dockerfilePath)}.dockerignore`, path.join(root, '.dockerignore')];
  for (const file of candidates) {
    let text: string;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ContextError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
    return new ContextTree(root, new PatternSet(lines, path.basename(file)), file);
  }
  return new ContextTree(root, new PatternSet([], '.dockerignore'));
}

const MAX_SYMLINKS = 255;

class ContextTree implements BuildContext {
  /** excluded directories that hold re-included entries (they exist, as parents, in Docker's context) */
  private readonly keptDirs = new Map<string, boolean>();
  /** what the last hashSources() read, kept for the COPY that usually follows it (see readSources) */
  remembered?: SourceRead;

  constructor(readonly root: string, readonly ignore: PatternSet, readonly ignoreFile?: string) {}

  lookup(rel: string): SourceNode | null {
    const key = components(rel).join('/');
    if (key !== '' && this.ignore.matches(key) && !this.holdsIncluded(key)) return null;
    const abs = key === '' ? this.root : path.join(this.root, key);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw err;
    }
    return { type: nodeType(stat), abs, stat: sourceStat(stat) };
  }

  readdir(rel: string): string[] {
    return this.children(rel).map((c) => c.name);
  }

  /** The entries of a directory, sorted by name, excluded ones left out; one lstat each. */
  children(rel: string): { name: string; node: SourceNode }[] {
    const key = components(rel).join('/');
    const dir = key === '' ? this.root : path.join(this.root, key);
    const names = fs.readdirSync(dir).sort();
    const out: { name: string; node: SourceNode }[] = [];
    for (const name of names) {
      const childKey = key === '' ? name : `${key}/${name}`;
      if (this.ignore.matches(childKey) && !this.holdsIncluded(childKey)) continue;
      const abs = path.join(dir, name);
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while listing
        throw err;
      }
      out.push({ name, node: { type: nodeType(stat), abs, stat: sourceStat(stat) } });
    }
    return out;
  }

  /** Whether an excluded path is a directory under which an exception re-includes something. */
  private holdsIncluded(key: string): boolean {
    if (!this.ignore.exceptions) return false;
    const cached = this.keptDirs.get(key);
    if (cached !== undefined) return cached;
    let holds = false;
    const abs = path.join(this.root, key);
    if (fs.lstatSync(abs, { throwIfNoEntry: false })?.isDirectory()) {
      for (const name of fs.readdirSync(abs)) {
        const child = `${key}/${name}`;
        if (!this.ignore.matches(child) || this.holdsIncluded(child)) {
          holds = true;
          break;
        }
      }
    }
    this.keptDirs.set(key, holds);
    return holds;
  }

  /**
   * Follows symlinks inside the root. A `..` above the root or a link whose target leaves it is an
   * error; an absolute link target is accepted only when it points into the context directory.
   */
  resolve(p: string, followLast = true): string {
    let pending = components(p);
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        if (done.length === 0) throw new ContextError(`${p}: forbidden path outside the build context`);
        done.pop();
        continue;
      }
      const candidate = [...done, name].join('/');
      const node = this.lookup(candidate);
      if (node?.type === 'symlink' && (pending.length > 0 || followLast)) {
        if (++links > MAX_SYMLINKS) throw new ContextError(`${p}: too many levels of symbolic links`);
        const target = fs.readlinkSync(node.abs);
        if (target.startsWith('/')) {
          const inside = path.relative(this.root, path.resolve(target));
          if (inside === '..' || inside.startsWith('../') || path.isAbsolute(inside)) {
            throw new ContextError(`${p}: symlink ${candidate} -> ${target} points outside the build context`);
          }
          done.length = 0;
          pending = [...components(inside), ...pending];
          continue;
        }
        const targetParts = components(target);
        let depth = done.length;
        for (const part of targetParts) {
          depth += part === '..' ? -1 : 1;
          if (depth < 0) throw new ContextError(`${p}: symlink ${candidate} -> ${target} points outside the build context`);
        }
        pending = [...targetParts, ...pending];
        continue;
      }
      done.push(name);
    }
    return done.join('/');
  }
}

// -- What a COPY reads ------------------------------------------------------------------------------

/** One source match: the name it has in the source (for the destination name) and where it resolves. */
export interface SourceMatch {
  /** the last path component as written or matched, before symlinks are followed */
  name: string;
  rel: string;
  node: SourceNode;
}

const hasGlob = (s: string): boolean => /[*?[]/.test(s);

/** Glob of one path component: *, ? and [...] as in Go's filepath.Match (Docker's rules). */
function componentMatcher(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new ContextError(`bad pattern: ${pattern}`);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('^')) set = `!${set.slice(1)}`;
      re += `[${set.startsWith('!') ? `^${set.slice(1)}` : set}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The entries a COPY source names: one path, or every match of a wildcard, in name order. */
export function expandSource(tree: SourceTree, source: string, label: string): SourceMatch[] {
  const normalized = path.posix.normalize(source.replace(/^\/+/, '') || '.');
  if (normalized === '..' || normalized.startsWith('../')) throw new ContextError(`${source}: forbidden path outside the ${label}`);
  const nameOf = (rel: string): string => path.posix.basename(rel);
  if (!hasGlob(source)) {
    const rel = tree.resolve(normalized);
    const node = tree.lookup(rel);
    if (!node) throw new ContextError(`${source}: not found in the ${label}`);
    return [{ name: normalized === '.' ? '' : nameOf(normalized), rel, node }];
  }
  let matches: { name: string; rel: string }[] = [{ name: '', rel: '' }];
  for (const part of components(normalized)) {
    const next: { name: string; rel: string }[] = [];
    for (const dir of matches) {
      if (!hasGlob(part)) {
        const rel = tree.resolve(dir.rel ? `${dir.rel}/${part}` : part);
        if (tree.lookup(rel)) next.push({ name: part, rel });
        continue;
      }
      if (tree.lookup(dir.rel)?.type !== 'dir') continue;
      const re = componentMatcher(part);
      for (const name of tree.readdir(dir.rel)) {
        if (re.test(name)) next.push({ name, rel: tree.resolve(dir.rel ? `${dir.rel}/${name}` : name) });
      }
    }
    matches = next;
  }
  const found = matches.flatMap((m) => {
    const node = tree.lookup(m.rel);
    return node ? [{ ...m, node }] : [];
  });
  if (found.length === 0) throw new ContextError(`${source}: no source files were specified (no match in the ${label})`);
  return found;
}

/** An entry below a copied directory, path relative to that directory. */
export interface WalkEntry {
  rel: string;
  node: SourceNode;
}

/**
 * The entries of a directory tree, depth first in name order (a directory before its content).
 * An excluded directory is still entered when exceptions may re-include something below it, and
 * is yielded (as the parent it is) only once something below it is.
 */
export function* walkTree(tree: SourceTree, dirRel: string, exclude?: PatternSet): Generator<WalkEntry> {
  const listing = (rel: string): { name: string; node: SourceNode }[] =>
    tree instanceof ContextTree
      ? tree.children(rel)
      : tree.readdir(rel).flatMap((name) => {
          const node = tree.lookup(rel ? `${rel}/${name}` : name);
          return node ? [{ name, node }] : [];
        });
  interface Frame { rel: string; sub: string; entries: { name: string; node: SourceNode }[]; index: number; pending?: WalkEntry }
  const stack: Frame[] = [{ rel: dirRel, sub: '', entries: listing(dirRel), index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.index >= top.entries.length) {
      stack.pop();
      continue;
    }
    const { name, node } = top.entries[top.index++];
    const sub = top.sub ? `${top.sub}/${name}` : name;
    const excluded = exclude?.matches(sub) ?? false;
    if (excluded && !(node.type === 'dir' && exclude!.exceptions)) continue;
    if (!excluded) {
      for (const frame of stack) {
        if (frame.pending) yield frame.pending;
        frame.pending = undefined;
      }
      yield { rel: sub, node };
    }
    if (node.type === 'dir') {
      const rel = top.rel ? `${top.rel}/${name}` : name;
      stack.push({ rel, sub, entries: listing(rel), index: 0, pending: excluded ? { rel: sub, node } : undefined });
    }
  }
}

// -- Reading and hashing ---------------------------------------------------------------------------

/** A matched source and, for a directory, everything below it that COPY writes. */
export interface ListedSource {
  match: SourceMatch;
  entries: WalkEntry[];
}

/** What a COPY reads: the listing, plus the bytes of small files when hashing already read them. */
export interface SourceRead {
  key: string;
  listed: ListedSource[];
  /** file bytes by absolute path (small files only, within a budget) */
  contents: Map<string, Buffer>;
}

export interface HashOptions {
  /** COPY/ADD --exclude patterns */
  excludes?: string[];
}

const SMALL_FILE = 64 << 10;
const KEPT_BYTES = 64 << 20;
const KEPT_ENTRIES = 250_000;



/** Path sources (URLs are downloaded by ADD, never read from a tree). */
const pathSources = (sources: string[]): string[] => sources.filter((s) => !/^https?:\/\//i.test(s));

const readKey = (sources: string[], excludes: string[] = []): string => JSON.stringify([pathSources(sources), excludes]);

function listSources(tree: SourceTree, sources: string[], label: string, exclude?: PatternSet): ListedSource[] {
  const listed: ListedSource[] = [];
  for (const source of pathSources(sources)) {
    for (const match of expandSource(tree, source, label)) {
      if (match.node.type !== 'dir' && exclude?.matches(match.name)) continue;
      listed.push({ match, entries: match.node.type === 'dir' ? [...walkTree(tree, match.rel, exclude)] : [] });
    }
  }
  return listed;
}

/**
 * The sources a COPY reads. When hashSources() just read the same sources of the same context, its
 * listing (and the small files' bytes) is handed over once instead of walking and reading again:
 * the step cache hashes before it copies, and what is hashed is then exactly what is copied.
 */
export function readSources(tree: SourceTree, sources: string[], label: string, excludes: string[] = []): SourceRead {
  const key = readKey(sources, excludes);
  if (tree instanceof ContextTree && tree.remembered?.key === key) {
    const read = tree.remembered;
    tree.remembered = undefined;
    return read;
  }
  const exclude = excludes.length ? new PatternSet(excludes, '--exclude') : undefined;
  return { key, listed: listSources(tree, sources, label, exclude), contents: new Map() };
}

/**
 * sha256 (hex) of exactly what `COPY <sources>` reads from the context after .dockerignore: for
 * each match, its name, then every entry below it in name order as path, type, mode, uid, gid,
 * size, device, link target and content. Mtimes, inode numbers and listing order play no part.
 * URL sources are not fetched here: see fetch.ts (urlCacheInput). Small files are read with one
 * synchronous read each (a promise per tiny file costs more than the read) and kept for the copy;
 * large ones are streamed.
 */
export async function hashSources(ctx: BuildContext, sources: string[], opts: HashOptions = {}): Promise<string> {
  const exclude = opts.excludes?.length ? new PatternSet(opts.excludes, '--exclude') : undefined;
  const listed = listSources(ctx, sources, 'build context', exclude);
  const hash = crypto.createHash('sha256');
  const contents = new Map<string, Buffer>();
  let kept = 0;
  const entry = async (rel: string, node: SourceNode): Promise<void> => {
    const st = node.stat;
    const link = node.type === 'symlink' ? fs.readlinkSync(node.abs) : '';
    const rdev = node.type === 'char' || node.type === 'block' ? st.rdev : 0;
    if (node.type !== 'file') {
      hash.update(`${rel}\0${node.type}\0${(st.mode & 0o7777).toString(8)}\0${st.uid}:${st.gid}\0${rdev}\0${link}\0`);
      return;
    }
    const bytes = st.size < SMALL_FILE ? readSmallFile(node.abs, st.size) : undefined;
    const size = bytes ? bytes.length : st.size;
    hash.update(`${rel}\0file\0${(st.mode & 0o7777).toString(8)}\0${st.uid}:${st.gid}\0${size}\0`);
    if (bytes) {
      hash.update(bytes);
      if (kept + bytes.length <= KEPT_BYTES) {
        contents.set(node.abs, bytes);
        kept += bytes.length;
      }
      return;
    }
    for await (const chunk of fs.createReadStream(node.abs, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  };
  for (const source of sources) hash.update(`source\0${source}\0`);
  for (const { match, entries } of listed) {
    await entry(match.name, match.node);
    for (const { rel, node } of entries) await entry(`${match.name}/${rel}`, node);
  }
  const count = listed.reduce((n, l) => n + l.entries.length + 1, 0);
  if (ctx instanceof ContextTree) {
    ctx.remembered = count <= KEPT_ENTRIES ? { key: readKey(sources, opts.excludes), listed, contents } : undefined;
  }
  return hash.digest('hex');
}

/** A small file in one read (a file that grew since its lstat is read to its end). */
function readSmallFile(file: string, size: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size + 1);
    const n = fs.readSync(fd, buffer, 0, buffer.length, 0);
    if (n <= size) return buffer.subarray(0, n);
    const chunks = [buffer];
    let position = n;
    for (;;) {
      const more = Buffer.allocUnsafe(SMALL_FILE);
      const got = fs.readSync(fd, more, 0, more.length, position);
      if (got === 0) break;
      chunks.push(more.subarray(0, got));
      position += got;
    }
    return Buffer.concat(chunks);
  } finally {
    fs.closeSync(fd);
  }
}
