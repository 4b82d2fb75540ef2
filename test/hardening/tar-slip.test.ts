// The tar-slip corpus through the paths users reach: `ADD evil.tar` in a Dockerfile, and an image
// whose layer is that tar brought in with `strata import` (the same extraction pulls use). Nothing
// outside the destination may change: a canary directory next to the store is snapshotted before
// and compared after every attempt.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeContext, strata, tempDir, writeMemberTar, type TarMember } from '../helpers.js';

// An OCI archive with one uncompressed layer (the given tar) and a config naming its diff_id.
const WRITE_OCI = `
import hashlib, io, json, sys, tarfile
layer = open(sys.argv[1], 'rb').read()
def blob(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest(), data
layer_d, _ = blob(layer)
config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {}, 'rootfs': {'type': 'layers', 'diff_ids': [layer_d]}}).encode()
config_d, _ = blob(config)
manifest = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
  'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': config_d, 'size': len(config)},
  'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': layer_d, 'size': len(layer)}]}).encode()
manifest_d, _ = blob(manifest)
index = json.dumps({'schemaVersion': 2, 'manifests': [{'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': manifest_d, 'size': len(manifest),
  'annotations': {'org.opencontainers.image.ref.name': 'evil'}}]}).encode()
with tarfile.open(sys.argv[2], 'w') as tf:
    def add(name, data):
        t = tarfile.TarInfo(name); t.size = len(data); tf.addfile(t, io.BytesIO(data))
    add('oci-layout', b'{"imageLayoutVersion":"1.0.0"}')
    add('index.json', index)
    for d, data in ((layer_d, layer), (config_d, config), (manifest_d, manifest)):
        add('blobs/sha256/' + d[7:], data)
`;

const box = tempDir('slip');
afterAll(() => fs.rmSync(box, { recursive: true, force: true }));
const canary = path.join(box, 'canary');

/** Every path under the box except the store and contexts, with type, mode, size and mtime. */
function snapshotCanary(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      out[path.relative(box, p)] = `${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.isFile() ? fs.readFileSync(p, 'utf8') : ''}`;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(canary);
  return out;
}

function resetCanary(): void {
  fs.rmSync(canary, { recursive: true, force: true });
  fs.mkdirSync(path.join(canary, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(canary, 'file'), 'canary');
  fs.utimesSync(path.join(canary, 'file'), 1000, 1000);
}

// Each case: the members of the evil tar, built from the canary's absolute path.
const cases: [string, (canaryDir: string) => TarMember[]][] = [
  ['../ in a name', () => [{ name: '../../../../../../../../tmp/x', data: 'evil' }]],
  ['a/../../ in a name', () => [{ name: 'a/../../../canary/file', data: 'evil' }]],
  ['absolute name', (c) => [{ name: `${c}/file`, data: 'evil' }]],
  ['symlink to the canary, then a file through it', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/file', data: 'evil' }]],
  ['relative symlink climbing out, then a dir through it', () => [{ name: 'l', type: 'symlink', linkname: '../../../../../../..' + canary }, { name: 'l/sub/new', type: 'dir' }]],
  ['hardlink to a file outside', (c) => [{ name: 'h', type: 'hardlink', linkname: `${c}/file` }]],
  ['hardlink through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'h', type: 'hardlink', linkname: 'l/file' }]],
  ['whiteout through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/.wh.file' }]],
  ['opaque marker through a symlinked dir', (c) => [{ name: 'l', type: 'symlink', linkname: c }, { name: 'l/sub/.wh..wh..opq' }]],
  ['whiteout of ..', () => [{ name: 'a/.wh...' }]],
];

describe('tar-slip through ADD and through strata import', () => {
  for (const [title, members] of cases) {
    it(title, async () => {
      resetCanary();
      const before = snapshotCanary();
      const evil = path.join(box, 'evil.tar');
      writeMemberTar(evil, members(canary));

      // ADD: either refused with the line, or contained in the image; the canary never changes
      const ctx = makeContext('FROM scratch\nADD busybox-rootfs.tar /\nADD evil.tar /dest/\nRUN ls -la /dest > /listing\n');
      fs.copyFileSync(evil, path.join(ctx, 'evil.tar'));
      const root = path.join(box, 'store');
      const add = await strata(['build', '--root', root, '--progress', 'plain', ctx]);
      fs.rmSync(ctx, { recursive: true, force: true });
      if (add.code !== 0) expect(add.stderr).toMatch(/Dockerfile:3/);
      expect(snapshotCanary()).toEqual(before);

      // import: a layer of an image is extracted with the same rules as a pulled one
      const archive = path.join(box, 'evil.oci.tar');
      execFileSync('python3', ['-c', WRITE_OCI, evil, archive]);
      const imported = await strata(['import', '--root', root, `oci-archive:${archive}`, 'evil:1']);
      expect(snapshotCanary()).toEqual(before);
      if (imported.code === 0) {
        // accepted (an absolute name is cleaned to a path inside): whatever it holds stays in the store
        expect((await strata(['images', '--root', root])).stdout).toMatch(/evil:1/);
      } else {
        expect(imported.stderr).toMatch(/^ERROR: .+/m);
        expect(imported.stderr).not.toMatch(/\n\s+at /); // one line, not a stack trace
      }
      expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([]);
    });
  }
});
