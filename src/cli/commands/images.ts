import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../../build/session.js';
import { formatLayers, listLayers } from '../../layer/listing.js';
import { Store } from '../../store/store.js';
import { openImageArchive } from '../../transport/read-archive.js';
import { requirePositional, rootOption } from '../common.js';

export const imagesCommand = (y: Argv): Argv => y.command(
  'images',
  'list the images of the local store',
  (c) => c.option('root', rootOption),
  async (argv) => {
    const store = await Store.open(argv.root);
    const rows = await store.listTags();
    process.stdout.write(`${'NAME'.padEnd(40)} DIGEST\n`);
    for (const row of rows) process.stdout.write(`${row.name.padEnd(40)} ${row.digest}\n`);
  },
);

export const inspectCommand = (y: Argv): Argv => y.command(
  'inspect [name]',
  'print an image\'s manifest, config and layers as JSON',
  (c) => c.positional('name', { type: 'string', describe: 'NAME[:TAG] or manifest digest' }).check(requirePositional('name')).option('root', rootOption),
  async (argv) => {
    const store = await Store.open(argv.root);
    const image = await store.image(argv.name!);
    const inspected = { name: argv.name, digest: image.manifestDigest, manifest: image.manifest, config: image.config, layers: image.manifest.layers };
    process.stdout.write(`${JSON.stringify(inspected, null, 2)}\n`);
  },
);

export const layersCommand = (y: Argv): Argv => y.command(
  'layers [image]',
  'list each layer of an image (from the store, or an OCI / docker archive) with its entries',
  (c) => c
    .positional('image', { type: 'string', describe: 'NAME in the store, or OUT.tar' })
    .check(requirePositional('image'))
    .option('json', { type: 'boolean' })
    .option('root', rootOption),
  async (argv) => {
    const name = argv.image!;
    const archive = fs.existsSync(name) ? await openImageArchive(name) : undefined;
    try {
      const image = archive ? archive.images[0]?.source : await (await Store.open(argv.root)).image(name);
      if (!image) throw new UsageError(`${name} holds no image`);
      const layers = await listLayers(image);
      process.stdout.write(argv.json ? `${JSON.stringify(layers, null, 2)}\n` : `${formatLayers(layers)}\n`);
    } finally {
      await archive?.cleanup();
    }
  },
);
