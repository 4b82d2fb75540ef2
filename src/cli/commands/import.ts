import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../../build/session.js';
import { parseTransportReference, type TransportReference } from '../../image/reference.js';
import { importImage } from '../../store/import.js';
import { Store } from '../../store/store.js';
import { openTransportImage, writeTransportImage } from '../../transport/transport-ref.js';
import { requirePositional, rootOption } from '../common.js';
import { progressFlags, rendererOf } from './pull.js';

/** A transport reference, or a bare path: a directory is an OCI layout, a file an OCI archive
 * (on import, a docker-archive is recognised by its content). */
function transportOf(text: string, forImport: boolean): TransportReference {
  const ref = parseTransportReference(text);
  if (ref) return ref;
  if (text.includes(':')) throw new UsageError(`${text}: expected oci-archive:PATH[:TAG], oci:DIR[:TAG], docker-archive:PATH[:NAME] or a path`);
  if (fs.statSync(text, { throwIfNoEntry: false })?.isDirectory()) return { transport: 'oci', path: text };
  if (forImport && isDockerArchive(text)) return { transport: 'docker-archive', path: text };
  return { transport: 'oci-archive', path: text };
}

function isDockerArchive(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(100);
    fs.readSync(fd, head, 0, 100, 0);
    fs.closeSync(fd);
    // The first member of an OCI archive is oci-layout, blobs/ or index.json; docker save starts elsewhere.
    const first = head.toString('latin1').replace(/\0.*$/s, '').replace(/^\.\//, '');
    return !['oci-layout', 'index.json', 'blobs', 'blobs/'].some((n) => first === n || first.startsWith('blobs/'));
  } catch {
    return false;
  }
}

export const importCommand = (y: Argv): Argv => y.command(
  'import [source] [name]',
  'copy an image from oci-archive:PATH[:TAG], oci:DIR[:TAG] or docker-archive:PATH[:NAME] into the local store',
  (c) => progressFlags(c
    .positional('source', { type: 'string', describe: 'transport reference or path' })
    .positional('name', { type: 'string', describe: 'tag it as NAME[:TAG] (default: the names the archive records)' })
    .check(requirePositional('source'))
    .option('root', rootOption)),
  async (argv) => {
    const store = await Store.open(argv.root);
    const { source, names, cleanup } = await openTransportImage(transportOf(argv.source!, true));
    try {
      const digest = await importImage(store, source, { progress: rendererOf(argv) });
      for (const name of argv.name ? [argv.name] : names) await store.tag(name, digest);
      process.stdout.write(`${digest}\n`);
    } finally {
      await cleanup();
    }
  },
);

export const exportCommand = (y: Argv): Argv => y.command(
  'export [name] [dest]',
  'write an image of the local store to oci-archive:PATH[:TAG], oci:DIR[:TAG] or docker-archive:PATH[:NAME]',
  (c) => c
    .positional('name', { type: 'string', describe: 'NAME[:TAG] or manifest digest in the store' })
    .positional('dest', { type: 'string', describe: 'transport reference, or a path (a directory: oci:, else oci-archive:)' })
    .check(requirePositional('name', 'dest'))
    .option('root', rootOption),
  async (argv) => {
    const store = await Store.open(argv.root);
    const image = await store.image(argv.name!);
    await writeTransportImage(image, transportOf(argv.dest!, false), /^sha256:/.test(argv.name!) ? undefined : argv.name);
    process.stdout.write(`${image.manifestDigest}\n`);
  },
);
