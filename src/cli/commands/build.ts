import fs from 'node:fs';
import type { Argv } from 'yargs';
import { parseOutput, runBuild } from '../../build/session.js';
import { makeRenderer, type ProgressMode } from '../../progress/render.js';
import { list, parseBuildArgs, rootOption } from '../common.js';

export const buildCommand = (y: Argv): Argv => y.command(
  'build <context>',
  'build an image from a Dockerfile',
  (c) => c
    .positional('context', { type: 'string', demandOption: true, describe: 'build context directory' })
    .option('file', { alias: 'f', type: 'string', describe: 'Dockerfile (default: CONTEXT/Dockerfile)' })
    .option('tag', { alias: 't', type: 'string', describe: 'name[:tag] for the image (repeatable)' })
    .option('output', { alias: 'o', type: 'string', describe: 'type=oci|docker|oci-dir,dest=PATH (repeatable)' })
    .option('build-arg', { type: 'string', describe: 'NAME=VALUE build argument (repeatable)' })
    .option('target', { type: 'string', describe: 'build this stage' })
    .option('progress', { choices: ['auto', 'plain', 'tty', 'rawjson'] as const, default: 'auto' as const })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only the image digest' })
    .option('iidfile', { type: 'string', describe: 'write the image digest to this file' })
    .option('root', rootOption),
  async (argv) => {
    const controller = new AbortController();
    const stop = (signal: NodeJS.Signals): void => {
      process.stderr.write(`strata: ${signal} received, stopping the build\n`);
      controller.abort(new Error(`interrupted by ${signal}`));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const result = await runBuild({
      contextDir: argv.context,
      dockerfile: argv.file,
      target: argv.target,
      buildArgs: parseBuildArgs(argv['build-arg']),
      root: argv.root,
      tags: list(argv.tag),
      outputs: list(argv.output).map(parseOutput),
      progress: argv.quiet ? () => {} : makeRenderer(argv.progress as ProgressMode),
      signal: controller.signal,
    });
    if (argv.iidfile) fs.writeFileSync(argv.iidfile, result.manifestDigest);
    process.stdout.write(`${result.manifestDigest}\n`);
  },
);
