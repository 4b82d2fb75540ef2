import type { Argv } from 'yargs';
import { loadPlan } from '../../build/session.js';
import { describePlan, formatPlan } from '../../plan/describe.js';
import { parseBuildArgs } from '../common.js';

export const planCommand = (y: Argv): Argv => y.command(
  'plan <context>',
  'show the build plan without building',
  (c) => c
    .positional('context', { type: 'string', demandOption: true })
    .option('file', { alias: 'f', type: 'string' })
    .option('target', { type: 'string' })
    .option('build-arg', { type: 'string' })
    .option('json', { type: 'boolean' }),
  (argv) => {
    const { plan } = loadPlan({ contextDir: argv.context, dockerfile: argv.file, target: argv.target, buildArgs: parseBuildArgs(argv['build-arg']) });
    const described = describePlan(plan);
    process.stdout.write(argv.json ? `${JSON.stringify(described, null, 2)}\n` : `${formatPlan(described)}\n`);
  },
);
