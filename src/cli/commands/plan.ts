import type { Argv } from 'yargs';
import fs from 'node:fs';
import { predictCache } from '../../build/builder.js';
import { buildEpoch, hostPlatform, loadPlan } from '../../build/session.js';
import { Store } from '../../store/store.js';
import { describePlan, formatPlan } from '../../plan/describe.js';
import { parseBuildArgs, requirePositional, rootOption } from '../common.js';

export const planCommand = (y: Argv): Argv => y.command(
  'plan [context]',
  'show the build plan without building',
  (c) => c
    .positional('context', { type: 'string', describe: 'build context directory (required)' })
    .check(requirePositional('context'))
    .option('file', { alias: 'f', type: 'string' })
    .option('target', { type: 'string' })
    .option('build-arg', { type: 'string' })
    .option('json', { type: 'boolean' })
    .option('root', rootOption),
  async (argv) => {
    const buildArgs = parseBuildArgs(argv['build-arg']);
    const { plan } = loadPlan({ contextDir: argv.context!, dockerfile: argv.file, target: argv.target, buildArgs });
    // Cache predictions need the store; a store that does not exist yet predicts nothing and is not created.
    const cached = fs.existsSync(argv.root)
      ? await predictCache({ store: await Store.open(argv.root), plan, contextDir: argv.context!, buildArgs, platform: hostPlatform(), epoch: buildEpoch() })
      : undefined;
    const described = describePlan(plan, cached);
    process.stdout.write(argv.json ? `${JSON.stringify(described, null, 2)}\n` : `${formatPlan(described)}\n`);
  },
);
