// A layer blob from outside (an exported cache, a pulled or imported image) becomes a store layer:
// its blob digest and its diff_id (the sha256 of the uncompressed tar) are both checked while it is
// extracted, so a corrupt or substituted blob is refused before anything is stored.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LayerRecord } from '../image/types.js';
import { decompressedStream } from '../layer/compression.js';
import { extractLayer } from '../layer/extract.js';
import type { Store } from './store.js';

/** Stores the layer whose blob is `blobFile` (a file inside the store's tmp/, moved into the store). */
export async function importLayerBlob(store: Store, blobFile: string, layer: LayerRecord): Promise<void> {
  const digest = `sha256:${await sha256File(blobFile)}`;
  if (digest !== layer.digest) throw new Error(`layer blob ${layer.digest} does not match its digest (got ${digest})`);
  const diffDir = path.join(path.dirname(blobFile), `diff-${path.basename(blobFile)}`);
  const { stream } = await decompressedStream(blobFile);
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await Promise.all([pipeline(stream, tee).catch((err) => { tee.destroy(err); throw err; }), extractLayer(tee, diffDir)]);
  } catch (err) {
    await fs.rm(diffDir, { recursive: true, force: true });
    throw err;
  }
  const diffId = `sha256:${hash.digest('hex')}`;
  if (diffId !== layer.diffId) {
    await fs.rm(diffDir, { recursive: true, force: true });
    throw new Error(`layer ${layer.digest}: its content does not match diff_id ${layer.diffId} (got ${diffId})`);
  }
  await store.adoptBlob(blobFile, layer.digest);
  await store.addLayer(layer, diffDir);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
