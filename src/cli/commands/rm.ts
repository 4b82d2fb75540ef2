import type { Argv } from 'yargs';
import { UsageError } from '../../build/session.js';
import { parseImageName } from '../../image/names.js';
import { Store } from '../../store/store.js';
import { requirePositional, rootOption } from '../common.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export const rmCommand = (y: Argv): Argv => y.command(
  'rm [names..]',
  'remove tags from the local store (a digest removes every tag of that image); layers stay until prune',
  (c) => c
    .positional('names', { type: 'string', array: true, describe: 'NAME[:TAG] or manifest digest' })
    .check(requirePositional('names'))
    .option('root', rootOption),
  async (argv) => {
    const store = await Store.open(argv.root);
    const tags = await store.listTags();
    const missing: string[] = [];
    // Every name is tried, as `docker rmi` does; the command fails if any was not there.
    for (const name of argv.names ?? []) {
      const full = DIGEST.test(name) ? undefined : parseImageName(name).full;
      const matching = tags.filter((t) => (full === undefined ? t.digest === name : t.name === full));
      if (matching.length === 0) missing.push(name);
      for (const tag of matching) {
        await store.removeTag(tag.name);
        process.stdout.write(`untagged ${tag.name} ${tag.digest}\n`);
      }
    }
    if (missing.length > 0) throw new UsageError(`no such image in the local store: ${missing.join(', ')}`);
  },
);
