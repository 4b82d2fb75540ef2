import type { Argv } from 'yargs';
import { Store } from '../../store/store.js';
import { pushToDestination } from '../../transport/registry/push.js';
import { requirePositional, rootOption } from '../common.js';
import { progressFlags, registryOptionsOf, rendererOf, withRegistryFlags } from './pull.js';

export const pushCommand = (y: Argv): Argv => y.command(
  'push [name] [dest]',
  'push an image of the local store to a registry (or oci-archive:, oci:, docker-archive:)',
  (c) => progressFlags(withRegistryFlags(c
    .positional('name', { type: 'string', describe: 'NAME[:TAG] or manifest digest in the store' })
    .positional('dest', { type: 'string', describe: 'registry reference or transport (default: NAME)' })
    .check(requirePositional('name'))
    .option('chunk-size', { type: 'number', describe: 'upload blobs larger than this many MiB in chunks (default 32)' })
    .option('root', rootOption))),
  async (argv) => {
    const store = await Store.open(argv.root);
    const image = await store.image(argv.name!);
    const dest = argv.dest ?? argv.name!;
    const digest = await pushToDestination(image, dest, {
      ...registryOptionsOf(argv),
      storeRoot: store.root,
      name: /^sha256:/.test(argv.name!) ? undefined : argv.name,
      progress: rendererOf(argv),
      chunkSize: argv['chunk-size'] !== undefined ? Math.max(1, Math.round(argv['chunk-size'] * (1 << 20))) : undefined,
    });
    process.stdout.write(`${digest}\n`);
  },
);
