// The strata command line: yargs commands that map flags onto the library, nothing more.
import fs from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadPlan, parseOutput, runBuild, UsageError } from '../build/session.js';
import { RunError } from '../build/run.js';
import { DockerfileError } from '../dockerfile/errors.js';
import { formatLayers, listLayers } from '../layer/listing.js';
import { describePlan, formatPlan } from '../plan/describe.js';
import { makeRenderer, type ProgressMode } from '../progress/render.js';
import { Store } from '../store/store.js';
import { openImageArchive } from '../transport/read-archive.js';

const rootOption = { type: 'string', describe: 'local store (env STRATA_ROOT; default /var/lib/strata as root)', default: Store.defaultRoot() } as const;

/** Repeatable flags: yargs gives one value as a string and repeats as an array (`array: true`
 * would also swallow the positional context that follows). */
const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

function parseBuildArgs(values: string | string[] | undefined): Map<string, string> {
  const args = new Map<string, string>();
  for (const value of list(values)) {
    const eq = value.indexOf('=');
    if (eq > 0) args.set(value.slice(0, eq), value.slice(eq + 1));
    else if (process.env[value] !== undefined) args.set(value, process.env[value]!);
  }
  return args;
}

/** Prints an error the way a user can act on it, and returns the exit code. */
function report(err: unknown, debug: boolean): number {
  if (err instanceof DockerfileError) {
    const lines = fs.existsSync(err.file) ? fs.readFileSync(err.file, 'utf8').split(/\r?\n/) : undefined;
    process.stderr.write(`${err.frame(lines)}\n`);
    const cause = err.cause;
    if (cause instanceof RunError) {
      if (cause.outputTail.length) process.stderr.write(`last output:\n${cause.outputTail.map((l) => `  ${l}`).join('\n')}\n`);
      process.stderr.write(`exit code: ${cause.exitCode}\n`);
    }
  } else {
    process.stderr.write(`ERROR: ${(err as Error).message ?? String(err)}\n`);
  }
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}

async function main(): Promise<void> {
  let debug = false;
  const cli = yargs(hideBin(process.argv))
    .scriptName('strata')
    .usage('$0 <command> [options]')
    .option('debug', { type: 'boolean', describe: 'show stack traces', global: true })
    .middleware((argv) => {
      debug = Boolean(argv.debug);
    })
    .command(
      'build <context>',
      'build an image from a Dockerfile',
      (y) => y
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
    )
    .command(
      'plan <context>',
      'show the build plan without building',
      (y) => y
        .positional('context', { type: 'string', demandOption: true })
        .option('file', { alias: 'f', type: 'string' })
        .option('target', { type: 'string' })
        .option('build-arg', { type: 'string', array: true })
        .option('json', { type: 'boolean' }),
      (argv) => {
        const { plan } = loadPlan({ contextDir: argv.context, dockerfile: argv.file, target: argv.target, buildArgs: parseBuildArgs(argv['build-arg']) });
        const described = describePlan(plan);
        process.stdout.write(argv.json ? `${JSON.stringify(described, null, 2)}\n` : `${formatPlan(described)}\n`);
      },
    )
    .command('images', 'list the images of the local store', (y) => y.option('root', rootOption), async (argv) => {
      const store = await Store.open(argv.root);
      const rows = await store.listTags();
      process.stdout.write(`${'NAME'.padEnd(40)} DIGEST\n`);
      for (const row of rows) process.stdout.write(`${row.name.padEnd(40)} ${row.digest}\n`);
    })
    .command(
      'inspect <name>',
      'print an image\'s manifest, config and layers as JSON',
      (y) => y.positional('name', { type: 'string', demandOption: true }).option('root', rootOption),
      async (argv) => {
        const store = await Store.open(argv.root);
        const image = await store.image(argv.name);
        const inspected = { name: argv.name, digest: image.manifestDigest, manifest: image.manifest, config: image.config, layers: image.manifest.layers };
        process.stdout.write(`${JSON.stringify(inspected, null, 2)}\n`);
      },
    )
    .command(
      'layers <image>',
      'list each layer of an image (from the store, or an OCI / docker archive) with its entries',
      (y) => y.positional('image', { type: 'string', demandOption: true, describe: 'NAME in the store, or OUT.tar' })
        .option('json', { type: 'boolean' })
        .option('root', rootOption),
      async (argv) => {
        const fromFile = fs.existsSync(argv.image);
        const archive = fromFile ? await openImageArchive(argv.image) : undefined;
        try {
          const image = archive ? archive.images[0]?.source : await (await Store.open(argv.root)).image(argv.image);
          if (!image) throw new UsageError(`${argv.image} holds no image`);
          const layers = await listLayers(image);
          process.stdout.write(argv.json ? `${JSON.stringify(layers, null, 2)}\n` : `${formatLayers(layers)}\n`);
        } finally {
          await archive?.cleanup();
        }
      },
    )
    .demandCommand(1, 'name a command')
    .strict()
    .parserConfiguration({ 'greedy-arrays': false })
    .help()
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\nERROR: ${msg}\n`);
      process.exit(2);
    });
  try {
    await cli.parseAsync();
  } catch (err) {
    process.exitCode = report(err, debug);
  }
}

await main();
