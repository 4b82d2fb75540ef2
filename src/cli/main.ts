// The strata command line: yargs commands (one file each under commands/) that map flags onto the
// library, nothing more.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { report } from './common.js';

async function main(): Promise<void> {
  let debug = false;
  const cli = commands.reduce((y, add) => add(y), yargs(hideBin(process.argv)) as Argv)
    .scriptName('strata')
    .usage('$0 <command> [options]')
    .option('debug', { type: 'boolean', describe: 'show stack traces', global: true })
    .middleware((argv) => {
      debug = Boolean(argv.debug);
    })
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
