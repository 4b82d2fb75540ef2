// `docker save` format as written before Docker 25 (and read by `docker load`, `podman load`, skopeo's
// `docker-archive:`): manifest.json + repositories + `<config hex>.json` + one `<layer id>/` directory per
// layer holding the UNCOMPRESSED `layer.tar`, `VERSION` and the legacy v1 `json`.

import { stat } from 'node:fs/promises';
import { pipeline as pipelineCallback, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { digestOf, parseDigest, toJson } from '../image/manifest.js';
import { readBlobFile, sizedBlobFile, type ImageSource } from '../image/source.js';
import type { Digest } from '../image/types.js';
import { parseImageName } from '../image/names.js';
import { writeTar, type TarEntry } from './tar-writer.js';

/**
 * Writes `img` as a docker-archive to a file path (atomically), to stdout for "-", or into a Writable.
 * Tags without one get ":latest". Layer directories are named by the layer's ChainID (unique per position in
 * the stack, unlike the diff_id, and stable); Docker's own v1 ids hash metadata strata does not have.
 */
export async function writeDockerArchive(img: ImageSource, dest: string | Writable, repoTags: string[]): Promise<void> {
  const tags = [...new Set(repoTags.map((t) => parseImageName(t).full))];
  const diffIds = img.config.rootfs.diff_ids;
  if (diffIds.length !== img.manifest.layers.length) {
    throw new Error(`image ${img.manifestDigest}: ${img.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  const created = img.config.created ?? new Date(0).toISOString();
  const configName = `${parseDigest(img.manifest.config.digest).hex}.json`;
  const entries: TarEntry[] = [{ name: configName, kind: 'file', data: img.configBytes }];
  const layerNames: string[] = [];
  let parentId: string | undefined;
  let chainId: Digest | undefined;
  for (const [i, layer] of img.manifest.layers.entries()) {
    const diffId = diffIds[i]!;
    chainId = chainId === undefined ? diffId : digestOf(Buffer.from(`${chainId} ${diffId}`));
    const id = parseDigest(chainId).hex;
    const isTop = i === diffIds.length - 1;
    const v1 = {
      id,
      parent: parentId,
      created,
      // Docker puts the image's runtime config on the top layer's legacy json.
      architecture: isTop ? img.config.architecture : undefined,
      os: isTop ? img.config.os : undefined,
      config: isTop ? img.config.config : undefined,
    };
    const { size, open } = await uncompressedLayer(await sizedBlobFile(img, layer), layer.mediaType);
    entries.push(
      { name: id, kind: 'dir' },
      { name: `${id}/VERSION`, kind: 'file', data: Buffer.from('1.0') },
      { name: `${id}/json`, kind: 'file', data: toJson(v1) },
      { name: `${id}/layer.tar`, kind: 'file', size, open },
    );
    layerNames.push(`${id}/layer.tar`);
    parentId = id;
  }

  entries.push({
    name: 'manifest.json',
    kind: 'file',
    data: toJson([{ Config: configName, RepoTags: tags.length > 0 ? tags : null, Layers: layerNames }]),
  });
  if (parentId !== undefined && tags.length > 0) {
    const repositories: Record<string, Record<string, string>> = {};
    for (const tag of tags.map(parseImageName)) (repositories[tag.repository] ??= {})[tag.tag] = parentId;
    entries.push({ name: 'repositories', kind: 'file', data: toJson(repositories) });
  }
  await writeTar(dest, entries);
}

/**
 * The uncompressed layer tar as a stream factory plus its size, which the outer tar header needs before the
 * first byte. For gzip layers the size comes from a first decompression pass that only counts: that costs a
 * second gunzip but no temporary copy of a possibly multi-GB tar.
 */
async function uncompressedLayer(path: string, mediaType: string): Promise<{ size: number; open: () => Readable }> {
  if (mediaType.endsWith('.tar')) {
    return { size: (await stat(path)).size, open: () => readBlobFile(path) };
  }
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) {
    const gunzipped = () => pipelineCallback(readBlobFile(path), createGunzip({ chunkSize: 1 << 20 }), () => {});
    let size = 0;
    await pipeline(gunzipped(), new Writable({ write: (chunk: Buffer, _enc, done) => { size += chunk.length; done(); } }));
    return { size, open: gunzipped };
  }
  throw new Error(`docker-archive: unsupported layer media type ${mediaType}`);
}
