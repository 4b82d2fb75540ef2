import fs from 'node:fs';
import type { Argv } from 'yargs';
import { checkOutputs, checkPlatforms, parseOutput, runBuild } from '../../build/session.js';
import { loadSecrets, parseSecretSpec } from '../../build/mounts.js';
import { parseCacheSpec } from '../../transport/cache.js';
import { makeRenderer, type ProgressMode } from '../../progress/render.js';
import { registryOptionsOf, registryFlagOptions } from './pull.js';
import { list, parseBuildArgs, parseLabels, requirePositional, rootOption } from '../common.js';

export const buildCommand = (y: Argv): Argv => y.command(
  'build [context]',
  'build an image from a Dockerfile',
  (c) => c
    .positional('context', { type: 'string', describe: 'build context directory (required)' })
    .check(requirePositional('context'))
    .option('file', { alias: 'f', type: 'string', describe: 'Dockerfile (default: CONTEXT/Dockerfile)' })
    .option('tag', { alias: 't', type: 'string', describe: 'name[:tag] for the image (repeatable)' })
    .option('output', { alias: 'o', type: 'string', describe: 'type=oci|docker|tar|local|oci-dir,dest=PATH; DIR = type=local; - = rootfs tar on stdout (repeatable)', coerce: (v: string | string[]) => checkOutputs(list(v).map(parseOutput)) })
    .option('build-arg', { type: 'string', describe: 'NAME=VALUE build argument (repeatable)' })
    .option('target', { type: 'string', describe: 'build this stage' })
    .option('progress', { choices: ['auto', 'plain', 'tty', 'rawjson'] as const, default: 'auto' as const, describe: 'tty: live view; plain: one line per event (default without a terminal or in CI); rawjson: JSON lines' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only the image digest' })
    .option('iidfile', { type: 'string', describe: 'write the image digest to this file' })
    .option('metadata-file', { type: 'string', describe: 'write image digest, config digest, names and layers as JSON' })
    .option('label', { type: 'string', describe: 'KEY=VALUE label for the image config (repeatable)', coerce: parseLabels })
    .option('platform', { type: 'string', describe: 'target platform: only the host\'s (no emulation)', coerce: (v: string | string[]) => checkPlatforms(list(v)) })
    .option('no-cache', { type: 'boolean', describe: 'run every step, ignoring cached results' })
    .option('no-cache-filter', { type: 'string', describe: 'run every step of this stage (repeatable)' })
    .option('cache-from', { type: 'string', describe: 'type=local,src=DIR | type=registry,ref=REF: reuse an exported step cache (repeatable)', coerce: (v: string | string[]) => list(v).map((s) => parseCacheSpec(s, 'from')) })
    .option('cache-to', { type: 'string', describe: 'type=local,dest=DIR | type=registry,ref=REF [,mode=max]: export the step cache (repeatable)', coerce: (v: string | string[]) => list(v).map((s) => parseCacheSpec(s, 'to')) })
    .option('secret', { type: 'string', describe: 'id=NAME,src=FILE | id=NAME,env=VAR: a secret for RUN --mount=type=secret (repeatable)' })
    .option('push', { type: 'boolean', describe: 'push the image to every -t name\'s registry (or oci-archive:/oci:/docker-archive:)' })
    .option('pull', { choices: ['missing', 'always', 'never'] as const, default: 'missing' as const, describe: 'when FROM images are pulled from their registry' })
    .option('root', rootOption)
    .option('creds', registryFlagOptions.creds)
    .option('insecure-registry', registryFlagOptions['insecure-registry'])
    .option('cert-dir', registryFlagOptions['cert-dir']),
  async (argv) => {
    const controller = new AbortController();
    const stop = (signal: NodeJS.Signals): void => {
      process.stderr.write(`strata: ${signal} received, stopping the build\n`);
      controller.abort(new Error(`interrupted by ${signal}`));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const outputs = argv.output ?? [];
    const renderer = argv.quiet ? undefined : makeRenderer(argv.progress as ProgressMode);
    const result = await runBuild({
      contextDir: argv.context!,
      dockerfile: argv.file,
      target: argv.target,
      buildArgs: parseBuildArgs(argv['build-arg']),
      root: argv.root,
      tags: list(argv.tag),
      outputs,
      progress: renderer ?? (() => {}),
      signal: controller.signal,
      noCache: argv['no-cache'],
      noCacheFilter: list(argv['no-cache-filter']).flatMap((v) => v.split(',')),
      labels: argv.label,
      metadataFile: argv['metadata-file'],
      cacheFrom: argv['cache-from'],
      cacheTo: argv['cache-to'],
      secrets: loadSecrets(list(argv.secret).map(parseSecretSpec)),
      push: argv.push,
      registry: { ...registryOptionsOf(argv), pull: argv.pull },
    }).finally(() => renderer?.close());
    if (argv.iidfile) fs.writeFileSync(argv.iidfile, result.manifestDigest);
    // an archive streamed to stdout (dest=-) must be all that stdout carries
    if (!outputs.some((o) => o.dest === '-')) process.stdout.write(`${result.manifestDigest}\n`);
  },
);
