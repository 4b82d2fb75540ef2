// COPY and ADD: files from the build context (or another stage / image), inline heredoc files and
// (ADD) downloads, written into the step's upperdir with Docker's path rules:
// - a source directory copies its contents, not itself; wildcards match one path component each;
// - the destination is a directory when it ends with '/' or is '.', when there are several sources,
//   or when it is an existing directory; relative destinations are relative to WORKDIR; missing
//   parents are made;
// - owners become 0:0 (or --chown), modes are kept (or --chmod), mtimes kept (clamped at commit);
// - symlinks below a copied directory are copied as symlinks, hardlinks between copied files kept;
// - ADD extracts local tar archives (plain, gzip, bzip2, xz) into the destination; downloads are
//   never extracted; heredoc files (`COPY <<EOF /dest`) are files named by their delimiter, 0644.
// What is read from the context is what context.ts lists (and hashSources digests): the same
// expansion, walk and ignore rules.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { components } from '../overlay/tree.js';
import { applyAttrs, type Attrs, type UpperWriter } from '../overlay/upper.js';
import { decompressedStream } from '../layer/compression.js';
import { readTar } from '../layer/tar-read.js';
import { fsx } from '../native/index.js';
import { readSources, type ListedSource, type SourceNode, type SourceStat, type SourceTree } from './context.js';
import { fetchUrl, isUrl, type Download } from './fetch.js';

/** Files up to this size are copied by one read and one write. */
const SMALL_COPY = 1 << 20;

export class CopyError extends Error {}

/** A heredoc source: a file named `name` holding `content`. */
export interface InlineFile {
  name: string;
  content: string;
}

export interface CopyRequest {
  sources: string[];
  /** heredoc files, copied after the path sources as BuildKit does */
  inline?: InlineFile[];
  dest: string;
  workdir: string;
  /** where sources are read: the build context, or the image of a stage for --from */
  from: SourceTree;
  /** the source for error messages ("build context" or "stage build") */
  fromLabel: string;
  chown?: { uid: number; gid: number };
  /** keep the sources' owners when there is no --chown (COPY --from a stage or image, as Docker and
   * BuildKit do); the build context's files become 0:0 */
  keepOwners?: boolean;
  chmod?: number;
  /** --exclude patterns, matched below each source */
  excludes?: string[];
  /** ADD: local archives are extracted and URL sources downloaded */
  extractArchives: boolean;
  /** ADD --checksum of the single URL source */
  checksum?: string;
  /** where downloads go (the step's temp dir) */
  tempDir?: string;
  /** URLs already downloaded (for the cache key), by URL */
  downloads?: Map<string, Download>;
  signal?: AbortSignal;
}

type Item =
  | { kind: 'tree'; listed: ListedSource }
  | { kind: 'url'; url: string }
  | { kind: 'inline'; file: InlineFile };

export async function copyInto(writer: UpperWriter, req: CopyRequest): Promise<void> {
  const items: Item[] = [];
  for (const source of req.sources) {
    if (isUrl(source) && !req.extractArchives) throw new CopyError(`${source}: source can't be a URL for COPY`);
  }
  const read = readSources(req.from, req.sources, req.fromLabel, req.excludes);
  // path sources in order, then URLs, then heredocs (BuildKit's order)
  for (const listed of read.listed) items.push({ kind: 'tree', listed });
  for (const url of req.sources.filter(isUrl)) items.push({ kind: 'url', url });
  for (const file of req.inline ?? []) items.push({ kind: 'inline', file });

  const destAbs = path.posix.resolve('/', req.workdir || '/', req.dest);
  const destNode = writer.merged.lookup(writer.resolve(destAbs));
  const destIsDir = req.dest.endsWith('/') || req.dest === '.' || items.length > 1 || destNode?.type === 'dir';
  // a destination that is a symlink to a file is followed (the file it names is replaced), as Docker does
  const fileTarget = (name: string): string =>
    destIsDir ? components(`${writer.resolve(destAbs)}/${name}`).join('/') : writer.resolve(destAbs);
  // missing directories up to the destination belong to the --chown owner, as in Docker and BuildKit
  // (a copied directory itself takes its source's mode)
  if (req.chown) {
    const copiesDir = items.some((item) => item.kind === 'tree' && item.listed.match.node.type === 'dir');
    const made = destIsDir && !copiesDir ? writer.resolve(destAbs) : path.posix.dirname(writer.resolve(destAbs));
    writer.ensureDir(made, { mode: 0o755, ...req.chown });
  }

  for (const item of items) {
    req.signal?.throwIfAborted();
    if (item.kind === 'inline') {
      const attrs: Attrs = { mode: req.chmod ?? 0o644, uid: req.chown?.uid ?? 0, gid: req.chown?.gid ?? 0 };
      await writer.writeStream(fileTarget(item.file.name), Readable.from([Buffer.from(item.file.content)]), attrs);
    } else if (item.kind === 'url') {
      let download = req.downloads?.get(item.url);
      if (!download) {
        if (!req.tempDir) throw new CopyError(`${item.url}: no directory to download into`);
        download = await fetchUrl(item.url, req.tempDir, { checksum: req.checksum, signal: req.signal });
      }
      const attrs: Attrs = { mode: req.chmod ?? 0o600, uid: req.chown?.uid ?? 0, gid: req.chown?.gid ?? 0, mtime: download.mtime };
      await writer.copyFile(fileTarget(download.name), download.file, attrs);
    } else if (item.listed.match.node.type === 'dir') {
      await copyDirectory(writer, req, item.listed, writer.resolve(destAbs), read.contents);
    } else if (req.extractArchives && item.listed.match.node.type === 'file' && (await extractArchive(writer, req, item.listed.match.node.abs, destAbs))) {
      continue;
    } else {
      await copyEntry(writer, req, item.listed.match.node, fileTarget(item.listed.match.name), new Map());
    }
  }
}

function attrsOf(st: SourceStat, req: CopyRequest): Attrs {
  const keep = req.keepOwners === true;
  return { mode: req.chmod ?? st.mode & 0o7777, uid: req.chown?.uid ?? (keep ? st.uid : 0), gid: req.chown?.gid ?? (keep ? st.gid : 0), mtime: st.mtimeMs / 1000 };
}

/**
 * The contents of a source directory into `target` (a resolved path of the image). When the target
 * is new, nothing below it can collide with the image or with what this step wrote, so entries are
 * written straight into the upperdir, through file descriptors, from the bytes hashing already read
 * when it did (`COPY . /app` of a large tree is bounded by the syscalls of the copy itself).
 * Directory mtimes are set last, children first, because creating entries changes them.
 */
async function copyDirectory(writer: UpperWriter, req: CopyRequest, listed: ListedSource, target: string, contents: Map<string, Buffer>): Promise<void> {
  const { match, entries } = listed;
  const existing = writer.merged.lookup(target);
  // a destination directory made for the copy is root's (or --chown's) even when the owners below are kept
  const made = { ...attrsOf(match.node.stat, req), uid: req.chown?.uid ?? 0, gid: req.chown?.gid ?? 0 };
  writer.mkdir(target, existing?.type === 'dir' ? undefined : made);
  const fresh = existing === null;
  const links = new Map<string, string>();
  const dirTimes: [string, number][] = [];
  // Entries created by root in a directory of gid 0 are already 0:0: chown only for other owners.
  const chown = (req.chown?.uid ?? 0) !== 0 || (req.chown?.gid ?? 0) !== 0 || process.getuid?.() !== 0 || process.getgid?.() !== 0;
  const umask = process.umask();
  for (const { rel, node } of entries) {
    const to = components(`${target}/${rel}`).join('/');
    if (!fresh) {
      await copyEntry(writer, req, node, to, links);
      if (node.type === 'dir') dirTimes.push([path.join(writer.upper, to), node.stat.mtimeMs / 1000]);
      await writer.watcher?.turn();
      continue;
    }
    const abs = path.join(writer.upper, to);
    const attrs = attrsOf(node.stat, req);
    writer.watcher?.changing(to);
    switch (node.type) {
      case 'dir':
        fs.mkdirSync(abs);
        applyAttrs(abs, { ...attrs, mtime: undefined });
        dirTimes.push([abs, attrs.mtime!]);
        break;
      case 'file': {
        const linked = hardlinkOf(node, links, abs);
        if (linked) {
          fs.linkSync(linked, abs);
          break;
        }
        // Small files are read and written whole: copyFileSync costs two to three times more per file
        // (a COPY of 100,000 small files spent most of its time there).
        const bytes = contents.get(node.abs) ?? (node.stat.size <= SMALL_COPY ? fs.readFileSync(node.abs) : undefined);
        if (!bytes) {
          fs.copyFileSync(node.abs, abs);
          applyAttrs(abs, attrs);
          break;
        }
        // a file is created root's: other owners (--chown, or kept from a --from source) are set,
        // and the mode after them (a chown clears suid/sgid)
        const owned = chown || attrs.uid !== 0 || attrs.gid !== 0;
        const fd = fs.openSync(abs, 'wx', attrs.mode);
        try {
          if (bytes.length > 0) fs.writeSync(fd, bytes);
          if (owned) fs.fchownSync(fd, attrs.uid, attrs.gid);
          if (owned || attrs.mode & umask || attrs.mode & 0o7000) fs.fchmodSync(fd, attrs.mode);
          fs.futimesSync(fd, attrs.mtime!, attrs.mtime!);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'symlink':
        fs.symlinkSync(fs.readlinkSync(node.abs), abs);
        applyAttrs(abs, attrs);
        break;
      case 'char':
      case 'block':
      case 'fifo': {
        const typeBits = node.type === 'char' ? fs.constants.S_IFCHR : node.type === 'block' ? fs.constants.S_IFBLK : fs.constants.S_IFIFO;
        fsx.mknod(abs, typeBits | attrs.mode, major(node.stat.rdev), minor(node.stat.rdev));
        applyAttrs(abs, attrs);
        break;
      }
      default:
        continue; // sockets are not copied, as with Docker
    }
    writer.watcher?.changed(to, node.type === 'dir' ? attrs.mtime : undefined);
    await writer.watcher?.turn();
  }
  if (fresh) writer.merged.forget(target);
  setDirTimes(dirTimes);
  if (existing?.type !== 'dir') {
    const mtime = match.node.stat.mtimeMs / 1000;
    fs.utimesSync(path.join(writer.upper, target), mtime, mtime);
  }
}

const major = (rdev: number): number => Math.floor(rdev / 256) & 0xfff;
const minor = (rdev: number): number => rdev & 0xff;

/** The first copy of a file with several links, when this one is another link to it. */
function hardlinkOf(node: SourceNode, links: Map<string, string>, target: string): string | undefined {
  if (node.stat.nlink < 2) return undefined;
  const key = `${node.stat.dev}:${node.stat.ino}`;
  const first = links.get(key);
  if (!first) links.set(key, target);
  return first;
}

/** One entry through the writer's overlay rules (copy-up of parents, replacing what is there). */
async function copyEntry(writer: UpperWriter, req: CopyRequest, node: SourceNode, to: string, links: Map<string, string>): Promise<void> {
  const attrs = attrsOf(node.stat, req);
  switch (node.type) {
    case 'dir':
      writer.mkdir(to, attrs);
      return;
    case 'file': {
      const linked = hardlinkOf(node, links, to);
      if (linked) await writer.hardlink(to, linked);
      else await writer.copyFile(to, node.abs, attrs);
      return;
    }
    case 'symlink':
      writer.symlink(to, fs.readlinkSync(node.abs), attrs);
      return;
    case 'char':
    case 'block':
    case 'fifo':
      writer.device(to, node.type, major(node.stat.rdev), minor(node.stat.rdev), attrs);
      return;
    default:
      return; // sockets are not copied, as with Docker
  }
}

/** ADD of a local archive: its entries are written under the destination directory. Directory
 * mtimes are set once everything is written, as Docker does (creating entries changes them). */
async function extractArchive(writer: UpperWriter, req: CopyRequest, file: string, destAbs: string): Promise<boolean> {
  const opened = await decompressedStream(file);
  if (!opened.isTar) {
    opened.stream.destroy();
    return false;
  }
  const base = writer.resolve(destAbs);
  writer.mkdir(base);
  const dirTimes: [string, number][] = [];
  for await (const { header, body } of readTar(opened.stream)) {
    const name = components(header.path);
    if (name.includes('..')) throw new CopyError(`archive ${path.basename(file)}: entry ${header.path} leads outside the destination`);
    if (name.length === 0) {
      body.resume();
      continue;
    }
    // Parents resolve inside the image (an archive's own symlinks cannot lead out of the root).
    const parent = writer.resolve(`/${base}/${name.slice(0, -1).join('/')}`);
    const rel = components(`${parent}/${name[name.length - 1]}`).join('/');
    const attrs: Attrs = { mode: header.mode & 0o7777, uid: req.chown?.uid ?? header.uid, gid: req.chown?.gid ?? header.gid, mtime: header.mtime, xattrs: header.xattrs };
    switch (header.type) {
      case 'dir':
        writer.mkdir(rel, attrs);
        dirTimes.push([path.join(writer.upper, rel), header.mtime]);
        break;
      case 'file':
        await writer.writeStream(rel, body, attrs);
        await writer.watcher?.turn();
        continue;
      case 'symlink':
        writer.symlink(rel, header.linkname ?? '', attrs);
        break;
      case 'hardlink': {
        const target = components(header.linkname ?? '');
        if (target.includes('..')) throw new CopyError(`archive ${path.basename(file)}: hardlink ${header.path} leads outside the destination`);
        await writer.hardlink(rel, writer.resolve(`/${base}/${target.join('/')}`, false));
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        writer.device(rel, header.type, header.devmajor ?? 0, header.devminor ?? 0, attrs);
        break;
      default:
        break;
    }
    body.resume();
    await writer.watcher?.turn();
  }
  setDirTimes(dirTimes);
  return true;
}

/** Directory mtimes, set once nothing more is created in them (setting a child's time leaves its
 * parent's alone). lutimes, and only on what is still a directory: a later entry may have replaced
 * one with a symlink, which must not be followed out of the upperdir. */
function setDirTimes(dirTimes: [string, number][]): void {
  for (const [dir, mtime] of dirTimes) {
    if (fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) fs.lutimesSync(dir, mtime, mtime);
  }
}
