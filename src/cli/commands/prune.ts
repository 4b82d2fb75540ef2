import type { Argv } from 'yargs';
import { formatBytes, parseSize, prune } from '../../store/prune.js';
import { Store } from '../../store/store.js';
import { rootOption } from '../common.js';

export const pruneCommand = (y: Argv): Argv => y.command(
  'prune',
  'remove layers and blobs no tag, cache record or running build uses',
  (c) => c
    .option('all', { type: 'boolean', describe: 'also drop every step cache record (tagged images stay)' })
    .option('keep-storage', { type: 'string', describe: 'drop least recently used cache records until the store takes at most SIZE (500MB, 2GB)' })
    .option('root', rootOption),
  async (argv) => {
    const keepStorage = argv['keep-storage'] === undefined ? undefined : parseSize(argv['keep-storage']);
    const freed = await prune(await Store.open(argv.root), { all: argv.all, keepStorage });
    process.stdout.write(`removed ${freed.cacheRecords} cache records, ${freed.layers} layers, ${freed.blobs} blobs: freed ${formatBytes(freed.bytes)} (${formatBytes(freed.remaining)} in use)\n`);
  },
);
