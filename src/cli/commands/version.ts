import fs from 'node:fs';
import os from 'node:os';
import type { Argv } from 'yargs';
import { packageVersion } from '../common.js';

/** Whether the kernel offers overlayfs now (listed in /proc/filesystems once the module is loaded;
 * the first mount would load it otherwise, so a missing entry is reported as "not loaded"). */
function overlayState(): string {
  const filesystems = fs.readFileSync('/proc/filesystems', 'utf8');
  if (/\toverlay$/m.test(filesystems)) return 'yes';
  const modules = `/lib/modules/${os.release()}`;
  return fs.existsSync(modules) ? 'not loaded (module available)' : 'no';
}

export const versionCommand = (y: Argv): Argv => y.command(
  'version',
  'print strata\'s version and what it runs on',
  (c) => c.option('json', { type: 'boolean' }),
  (argv) => {
    const info = { strata: packageVersion(), node: process.versions.node, kernel: `${os.type()} ${os.release()} ${os.arch()}`, overlay: overlayState() };
    process.stdout.write(argv.json ? `${JSON.stringify(info, null, 2)}\n` : `strata ${info.strata}\nnode   ${info.node}\nkernel ${info.kernel}\noverlay ${info.overlay}\n`);
  },
);
