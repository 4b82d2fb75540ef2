import type { Argv } from 'yargs';
import { UsageError } from '../../build/session.js';
import { parseImageName } from '../../image/names.js';
import { Store } from '../../store/store.js';
import { requirePositional, rootOption } from '../common.js';

export const tagCommand = (y: Argv): Argv => y.command(
  'tag [source] [target]',
  'give an image of the local store another name',
  (c) => c
    .positional('source', { type: 'string', describe: 'NAME[:TAG] or manifest digest' })
    .positional('target', { type: 'string', describe: 'new NAME[:TAG]' })
    .check(requirePositional('source', 'target'))
    .option('root', rootOption),
  async (argv) => {
    const target = parseImageName(argv.target!).full; // a bad name fails before the store is touched
    const store = await Store.open(argv.root);
    const digest = await store.resolve(argv.source!);
    if (!digest) throw new UsageError(`image not found in the local store: ${argv.source}`);
    await store.tag(target, digest);
    process.stdout.write(`tagged ${target} ${digest}\n`);
  },
);
