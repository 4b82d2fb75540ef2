// Typed access to the native addon (native/fsx.c): xattrs without following symlinks, and mknod.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';

interface NativeFs {
  listxattr(file: string): string[];
  getxattr(file: string, name: string): Buffer | null;
  setxattr(file: string, name: string, value: Buffer): void;
  removexattr(file: string, name: string): void;
  mknod(file: string, mode: number, major: number, minor: number): void;
}

/** The repository root: the nearest folder above this module that holds package.json
 * (this file runs both compiled from dist/src/native and as source under vitest). */
export const packageRoot = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(dir: string): string {
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('strata: cannot find its package root');
    dir = parent;
  }
  return dir;
}

const require = createRequire(import.meta.url);
export const fsx: NativeFs = require(path.join(packageRoot, 'build', 'Release', 'strata_native.node'));

/** The RUN sandbox helper built from native/strata-run.c. */
export const runHelperPath = path.join(packageRoot, 'build', 'Release', 'strata-run');
