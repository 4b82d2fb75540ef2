// Every command of the CLI, in the order of `strata --help`. Each adds itself to the yargs parser.
import type { Argv } from 'yargs';
import { buildCommand } from './build.js';
import { imagesCommand, inspectCommand, layersCommand } from './images.js';
import { planCommand } from './plan.js';

export const commands: ((y: Argv) => Argv)[] = [
  buildCommand,
  planCommand,
  imagesCommand,
  inspectCommand,
  layersCommand,
];
