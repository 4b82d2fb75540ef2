import fs from 'node:fs';
import type { Argv } from 'yargs';
import type { ImageSource } from '../../image/source.js';
import { compareImages, formatDifference } from '../../layer/compare.js';
import { Store } from '../../store/store.js';
import { openImageArchive, type OpenedArchive } from '../../transport/read-archive.js';
import { requirePositional, rootOption } from '../common.js';

export const diffCommand = (y: Argv): Argv => y.command(
  'diff [a] [b]',
  'show where two images differ: config fields, and per layer the entries added, removed or changed',
  (c) => c
    .positional('a', { type: 'string', describe: 'NAME or digest in the store, or an OCI / docker archive (required)' })
    .positional('b', { type: 'string', describe: 'the image to compare with (required)' })
    .check(requirePositional('a', 'b'))
    .option('json', { type: 'boolean' })
    .option('root', rootOption),
  async (argv) => {
    const archives: OpenedArchive[] = [];
    const open = async (ref: string): Promise<ImageSource> => {
      if (!fs.existsSync(ref)) return (await Store.open(argv.root)).image(ref);
      const archive = await openImageArchive(ref);
      archives.push(archive);
      const image = archive.images[0]?.source;
      if (!image) throw new Error(`${ref} holds no image`);
      return image;
    };
    try {
      const [a, b] = [argv.a!, argv.b!];
      const difference = await compareImages(await open(a), await open(b));
      process.stdout.write(argv.json ? `${JSON.stringify(difference, null, 2)}\n` : `${formatDifference(difference, [a, b])}\n`);
      // like diff(1): 1 when the images differ
      if (!difference.identical) process.exitCode = 1;
    } finally {
      for (const archive of archives) await archive.cleanup();
    }
  },
);
