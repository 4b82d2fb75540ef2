// The strata command line: yargs commands (one file each under commands/) that map flags onto the
// library, nothing more.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { packageVersion, report, usageMessage } from './common.js';

async function main(): Promise<void> {
  let debug = false;
  const args = hideBin(process.argv);
  const cli = commands.reduce((y, add) => add(y), yargs(args) as Argv)
    .scriptName('strata')
    .usage('$0 <command> [options]')
    .option('debug', { type: 'boolean', describe: 'show stack traces', global: true })
    .middleware((argv) => {
      debug = Boolean(argv.debug);
    })
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    // greedy arrays would let a repeatable flag swallow the positional after it; boolean negation
    // would read --no-cache as "cache: false" and --no-cache-filter as "cache-filter: false"
    .parserConfiguration({ 'greedy-arrays': false, 'boolean-negation': false })
    .completion('completion', 'print a bash/zsh completion script: source <(strata completion)')
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .wrap(Math.min(120, process.stderr.columns ?? 100))
    .fail((msg, err, y) => {
      // Errors of the command handlers are reported below; yargs' own (YError: unknown flag,
      // bad choice, failed coerce or check) get the usage and one line saying what is wrong.
      // (a .check() that returns a message passes it as `err` too, as a string)
      if (err instanceof Error && err.name !== 'YError') throw err;
      y.showHelp((usage) => process.stderr.write(`${usage}\n\n`));
      process.stderr.write(`ERROR: ${usageMessage(msg ?? err?.message ?? 'invalid arguments', args)}\n`);
      process.exit(2);
    });
  // yargs renders the whole help text before running any command, only to have it at hand should an
  // async handler fail (about 25 ms on every run: a cached rebuild takes 0.3 s). strata reports a
  // handler's failure itself and never prints help for it; a usage error renders help anew (.fail).
  const usage = (cli as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } })
    .getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
  try {
    await cli.parseAsync();
  } catch (err) {
    process.exitCode = report(err, debug);
  }
}

await main();
