// COPY and ADD: files from the build context (or another stage / image) written into the step's
// upperdir with Docker's path rules:
// - a source directory copies its contents, not itself;
// - the destination is a directory when it ends with '/', when there are several sources, or when it
//   is an existing directory; relative destinations are relative to WORKDIR; missing parents are made;
// - owners become 0:0 (or --chown), modes are kept (or --chmod);
// - ADD extracts local tar archives (plain, gzip, bzip2, xz) into the destination.
import fs from 'node:fs';
import path from 'node:path';
import { LayeredTree, components } from '../overlay/tree.js';
import type { Attrs, UpperWriter } from '../overlay/upper.js';
import { decompressedStream } from '../layer/compression.js';
import { readTar } from '../layer/tar-read.js';

export class CopyError extends Error {}

export interface CopyRequest {
  sources: string[];
  dest: string;
  workdir: string;
  /** where sources are read: the build context, or the image of a stage for --from */
  from: LayeredTree;
  /** names of the context, for error messages ("context" or "stage build") */
  fromLabel: string;
  chown?: { uid: number; gid: number };
  chmod?: number;
  /** ADD: extract local archives */
  extractArchives: boolean;
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
      if (end < 0) throw new CopyError(`bad pattern: ${pattern}`);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('^')) set = `!${set.slice(1)}`;
      re += `[${set.startsWith('!') ? `^${set.slice(1)}` : set}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The source paths (relative to the source root) a COPY source names. */
export function expandSource(tree: LayeredTree, source: string, label: string): string[] {
  const parts = components(source);
  const normalized = path.posix.normalize(source.replace(/^\/+/, ''));
  if (normalized === '..' || normalized.startsWith('../')) throw new CopyError(`${source}: forbidden path outside the ${label}`);
  if (!hasGlob(source)) {
    const rel = tree.resolve(source);
    if (!tree.lookup(rel)) throw new CopyError(`${source}: not found in the ${label}`);
    return [rel];
  }
  let matches = [''];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of matches) {
      if (!hasGlob(part)) {
        const rel = dir ? `${dir}/${part}` : part;
        if (tree.lookup(tree.resolve(rel))) next.push(tree.resolve(rel));
        continue;
      }
      const node = tree.lookup(dir);
      if (node?.type !== 'dir') continue;
      const re = componentMatcher(part);
      for (const name of tree.readdir(dir)) if (re.test(name)) next.push(tree.resolve(dir ? `${dir}/${name}` : name));
    }
    matches = next;
  }
  if (matches.length === 0) throw new CopyError(`${source}: no source files were specified (no match in the ${label})`);
  return matches;
}

export async function copyInto(writer: UpperWriter, req: CopyRequest): Promise<void> {
  const sources = req.sources.flatMap((s) => expandSource(req.from, s, req.fromLabel));
  const destAbs = path.posix.resolve('/', req.workdir || '/', req.dest);
  const destNode = writer.merged.lookup(writer.resolve(destAbs));
  const destIsDir = req.dest.endsWith('/') || req.dest === '.' || sources.length > 1 || destNode?.type === 'dir';
  for (const rel of sources) {
    const node = req.from.lookup(rel)!;
    if (node.type === 'dir') {
      const target = writer.resolve(destAbs);
      writer.mkdir(target, destNode?.type === 'dir' ? undefined : dirAttrs(node.stat, req));
      await copyTree(writer, req, rel, target);
    } else if (req.extractArchives && node.type === 'file' && (await extractArchive(writer, req, node.abs, destAbs))) {
      continue;
    } else {
      const target = destIsDir ? `${writer.resolve(destAbs)}/${path.posix.basename(rel)}` : writer.resolve(destAbs, false);
      await copyNode(writer, req, rel, components(target).join('/'));
    }
  }
}

function dirAttrs(st: fs.Stats, req: CopyRequest): Attrs {
  return { mode: req.chmod ?? st.mode & 0o7777, uid: req.chown?.uid ?? 0, gid: req.chown?.gid ?? 0, mtime: st.mtimeMs / 1000 };
}

async function copyTree(writer: UpperWriter, req: CopyRequest, fromRel: string, toRel: string): Promise<void> {
  for (const name of req.from.readdir(fromRel)) {
    await copyNode(writer, req, fromRel ? `${fromRel}/${name}` : name, toRel ? `${toRel}/${name}` : name);
  }
}

async function copyNode(writer: UpperWriter, req: CopyRequest, fromRel: string, toRel: string): Promise<void> {
  const node = req.from.lookup(fromRel);
  if (!node) throw new CopyError(`${fromRel}: vanished from the ${req.fromLabel}`);
  const st = node.stat;
  const attrs: Attrs = { mode: req.chmod ?? st.mode & 0o7777, uid: req.chown?.uid ?? 0, gid: req.chown?.gid ?? 0, mtime: st.mtimeMs / 1000 };
  switch (node.type) {
    case 'dir':
      writer.mkdir(toRel, dirAttrs(st, req));
      await copyTree(writer, req, fromRel, toRel);
      return;
    case 'file':
      await writer.copyFile(toRel, node.abs, attrs);
      return;
    case 'symlink':
      writer.symlink(toRel, fs.readlinkSync(node.abs), attrs);
      return;
    case 'char':
    case 'block':
    case 'fifo': {
      const major = Math.floor(st.rdev / 256) & 0xfff;
      writer.device(toRel, node.type, major, st.rdev & 0xff, attrs);
      return;
    }
    default:
      return; // sockets are not copied, as with Docker
  }
}

/** ADD of a local archive: its entries are written under the destination directory. */
async function extractArchive(writer: UpperWriter, req: CopyRequest, file: string, destAbs: string): Promise<boolean> {
  const opened = await decompressedStream(file);
  if (!opened.isTar) {
    opened.stream.destroy();
    return false;
  }
  const base = writer.resolve(destAbs);
  writer.mkdir(base);
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
        break;
      case 'file':
        await writer.writeStream(rel, body, attrs);
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
  }
  return true;
}

