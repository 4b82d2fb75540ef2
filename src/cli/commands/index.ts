// Every command of the CLI, in the order of `strata --help`. Each adds itself to the yargs parser.
import type { Argv } from 'yargs';
import { buildCommand } from './build.js';
import { diffCommand } from './diff.js';
import { fsckCommand } from './fsck.js';
import { imagesCommand, inspectCommand, layersCommand } from './images.js';
import { exportCommand, importCommand } from './import.js';
import { planCommand } from './plan.js';
import { pullCommand } from './pull.js';
import { pushCommand } from './push.js';
import { pruneCommand } from './prune.js';
import { rmCommand } from './rm.js';
import { tagCommand } from './tag.js';
import { versionCommand } from './version.js';

export const commands: ((y: Argv) => Argv)[] = [
  buildCommand,
  planCommand,
  imagesCommand,
  inspectCommand,
  layersCommand,
  diffCommand,
  pullCommand,
  pushCommand,
  importCommand,
  exportCommand,
  tagCommand,
  rmCommand,
  pruneCommand,
  fsckCommand,
  versionCommand,
];
