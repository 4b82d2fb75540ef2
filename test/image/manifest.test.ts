import { describe, expect, it } from 'vitest';
import {
  buildManifest, descriptorOf, digestOf, matchesDigest, parseDigest, serializeIndex, serializeManifest,
} from '../../src/image/manifest.js';
import { MediaType, type LayerRecord } from '../../src/image/types.js';

const layer: LayerRecord = { digest: `sha256:${'1'.repeat(64)}`, diffId: `sha256:${'2'.repeat(64)}`, size: 42, mediaType: MediaType.ociLayerGzip };

describe('digests', () => {
  it('digestOf is sha256 of the bytes', () => {
    expect(digestOf(Buffer.alloc(0))).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(matchesDigest(Buffer.from('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')).toBe(true);
  });

  it('parseDigest rejects anything that could escape a blobs directory', () => {
    expect(parseDigest(layer.digest)).toEqual({ algorithm: 'sha256', hex: '1'.repeat(64) });
    for (const bad of ['sha256:../../etc/passwd', `sha256:${'A'.repeat(64)}`, `md5:${'1'.repeat(32)}`, '1'.repeat(64)]) {
      expect(() => parseDigest(bad)).toThrow(/invalid digest/);
    }
  });
});

describe('manifest', () => {
  it('builds an OCI manifest from the config descriptor and layer records', () => {
    const config = descriptorOf(MediaType.ociConfig, Buffer.from('{}'));
    const m = buildManifest(config, [layer], { 'org.example': 'x' });
    expect(m).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(Buffer.from('{}')), size: 2 },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: 42 }],
      annotations: { 'org.example': 'x' },
    });
    expect(buildManifest(config, [], {})).not.toHaveProperty('annotations');
  });

  it('serializes with a fixed key order', () => {
    const config = descriptorOf(MediaType.ociConfig, Buffer.from('{}'));
    const m = buildManifest(config, [layer]);
    const reordered = { layers: m.layers.map((l) => ({ size: l.size, digest: l.digest, mediaType: l.mediaType })), config: { size: config.size, digest: config.digest, mediaType: config.mediaType }, mediaType: m.mediaType, schemaVersion: 2 as const };
    expect(serializeManifest(reordered).equals(serializeManifest(m))).toBe(true);
    expect(serializeManifest(m).toString()).toBe(
      `{"schemaVersion":2,"mediaType":"${MediaType.ociManifest}","config":{"mediaType":"${MediaType.ociConfig}","digest":"${config.digest}","size":2},`
      + `"layers":[{"mediaType":"${MediaType.ociLayerGzip}","digest":"${layer.digest}","size":42}]}`,
    );
  });

  it('serializes an index with sorted annotations', () => {
    const d = { mediaType: MediaType.ociManifest, digest: layer.digest, size: 1, annotations: { b: '2', a: '1' } };
    expect(serializeIndex({ schemaVersion: 2, manifests: [d] }).toString()).toBe(
      `{"schemaVersion":2,"manifests":[{"mediaType":"${MediaType.ociManifest}","digest":"${layer.digest}","size":1,"annotations":{"a":"1","b":"2"}}]}`,
    );
  });
});
