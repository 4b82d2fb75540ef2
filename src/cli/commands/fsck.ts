import type { Argv } from 'yargs';
import { fsck } from '../../store/fsck.js';
import { Store } from '../../store/store.js';
import { rootOption } from '../common.js';

export const fsckCommand = (y: Argv): Argv => y.command(
  'fsck',
  'check the local store (blobs, layers, tags, cache) and with --repair fix or remove what is broken',
  (c) => c
    .option('repair', { type: 'boolean', describe: 'rebuild what can be rebuilt, remove what cannot' })
    .option('json', { type: 'boolean' })
    .option('root', rootOption),
  async (argv) => {
    const report = await fsck(await Store.open(argv.root), { repair: argv.repair });
    const unrepaired = report.problems.filter((p) => !p.repaired).length;
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      for (const p of report.problems) process.stdout.write(`${p.entry}: ${p.problem}${p.repaired ? ` - repaired: ${p.repaired}` : ''}\n`);
      const { blobs, layers, tags, cacheRecords } = report.checked;
      const counted = `${blobs} blobs, ${layers} layers, ${tags} tags, ${cacheRecords} cache records`;
      const verdict = report.problems.length === 0 ? 'clean'
        : unrepaired === 0 ? `${report.problems.length} problems, all repaired`
          : `${unrepaired} problems${argv.repair ? ' left' : ' (strata fsck --repair fixes or removes them)'}`;
      process.stdout.write(`checked ${counted}: ${verdict}\n`);
    }
    if (unrepaired > 0) process.exitCode = 1;
  },
);
