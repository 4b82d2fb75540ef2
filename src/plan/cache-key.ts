// Step cache keys. A filesystem step's result depends on exactly these inputs, so equal keys mean the
// stored layer can stand in for running the step:
//   - the layers under it (their diff_ids in order: empty-layer steps change nothing on disk),
//   - the platform,
//   - the step after expansion (RUN argv, COPY sources/dest/flags, WORKDIR path),
//   - the runtime config the step sees (Env with the stage's ARGs, User, WorkingDir, Volumes: RUN
//     creates volume and working directories, COPY resolves relative destinations and names),
//   - what it reads from outside those layers (COPY/ADD: the content hash of the sources it copies
//     after .dockerignore, or the layer chain of the --from stage or image).
// Labels, CMD and other metadata do not reach the filesystem, so changing them keeps the cache (as
// BuildKit does; Docker's classic builder compares the whole config instead).
import { createHash } from 'node:crypto';
import type { Digest, Platform } from '../image/types.js';

/** Bump when the meaning of a key's inputs changes, so old records stop matching. */
const KEY_VERSION = 1;

export interface StepKeyInput {
  parent: Digest[];
  platform: Platform;
  /** the resolved step, JSON-serialisable */
  step: unknown;
  runtime: { env: string[]; user?: string; workdir?: string; volumes?: string[] };
  /** digest of the inputs read from outside the parent layers, when the step reads any */
  content?: string;
}

export function stepCacheKey(input: StepKeyInput): string {
  return createHash('sha256').update(canonicalJson({ v: KEY_VERSION, ...input })).digest('hex');
}

/** JSON with object keys sorted, so equal values always hash alike. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
