// Image references normalised as Docker does, transport names as buildah/skopeo write them, the
// WWW-Authenticate parser and the index platform choice.
import { describe, expect, it } from 'vitest';
import { formatReference, parseReference, parseTransportReference, storeName } from '../../src/image/reference.js';
import { parseChallenge } from '../../src/transport/registry/auth.js';
import { choosePlatform } from '../../src/transport/registry/pull.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  const cases: [string, string, string | undefined][] = [
    ['alpine', 'docker.io/library/alpine:latest', 'alpine:latest'],
    ['alpine:3.19', 'docker.io/library/alpine:3.19', 'alpine:3.19'],
    ['docker.io/library/alpine', 'docker.io/library/alpine:latest', 'alpine:latest'],
    ['index.docker.io/library/alpine:1', 'docker.io/library/alpine:1', 'alpine:1'],
    ['team/app', 'docker.io/team/app:latest', 'team/app:latest'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['127.0.0.1:5000/team/base', '127.0.0.1:5000/team/base:latest', '127.0.0.1:5000/team/base:latest'],
    ['registry.example.com/team/base:2', 'registry.example.com/team/base:2', 'registry.example.com/team/base:2'],
    [`registry.example.com/team/base@${D}`, `registry.example.com/team/base@${D}`, undefined],
    [`alpine:3.19@${D}`, `docker.io/library/alpine:3.19@${D}`, 'alpine:3.19'],
    ['[::1]:5000/app', '[::1]:5000/app:latest', '[::1]:5000/app:latest'],
    ['Host.Example/app', 'Host.Example/app:latest', 'Host.Example/app:latest'],
  ];
  it.each(cases)('%s -> %s', (text, canonical, stored) => {
    const ref = parseReference(text);
    expect(formatReference(ref)).toBe(canonical);
    expect(ref.digest ? undefined : storeName(ref)).toBe(ref.digest ? undefined : stored);
  });

  it.each([
    ['Alpine', 'repository names must be lowercase'],
    ['alpine:', 'bad tag ""'],
    ['alpine@sha256:abc', 'bad digest "sha256:abc"'],
    ['host:5000/', 'bad repository ""'],
    ['a//b', 'bad repository "a//b"'],
  ])('refuses %s: %s', (text, why) => {
    expect(() => parseReference(text)).toThrow(`invalid image reference ${JSON.stringify(text)}: ${why}`);
  });
});

describe('parseTransportReference', () => {
  it('splits transport, path and tag at the first colon after the prefix', () => {
    expect(parseTransportReference('oci-archive:/tmp/a.tar:v1')).toEqual({ transport: 'oci-archive', path: '/tmp/a.tar', tag: 'v1' });
    expect(parseTransportReference('oci:layout')).toEqual({ transport: 'oci', path: 'layout', tag: undefined });
    expect(parseTransportReference('docker-archive:x.tar:team/app:1')).toEqual({ transport: 'docker-archive', path: 'x.tar', tag: 'team/app:1' });
    expect(parseTransportReference('127.0.0.1:5000/app')).toBeUndefined();
    expect(parseTransportReference('alpine:3')).toBeUndefined();
    expect(() => parseTransportReference('oci:')).toThrow('oci:: oci: needs a path');
  });
});

describe('parseChallenge', () => {
  it('reads quoted and bare auth-params of Bearer and Basic challenges', () => {
    const bearer = parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')!;
    expect(bearer.scheme).toBe('bearer');
    expect(Object.fromEntries(bearer.params)).toEqual({ realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' });
    expect(Object.fromEntries(parseChallenge('Basic realm=strata-test')!.params)).toEqual({ realm: 'strata-test' });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
  });
});

describe('choosePlatform', () => {
  const entry = (architecture: string, variant?: string) => ({ mediaType: 'm', digest: `${architecture}${variant ?? ''}`, size: 1, platform: { os: 'linux', architecture, ...(variant && { variant }) } });
  const index = { schemaVersion: 2 as const, manifests: [entry('arm', 'v6'), entry('arm', 'v7'), entry('arm64', 'v8'), entry('amd64')] };
  it('matches os, architecture and variant (arm64 without a variant is v8)', () => {
    expect(choosePlatform(index, { os: 'linux', architecture: 'amd64' }, 'x').digest).toBe('amd64');
    expect(choosePlatform(index, { os: 'linux', architecture: 'arm64' }, 'x').digest).toBe('arm64v8');
    expect(choosePlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x').digest).toBe('armv7');
    expect(() => choosePlatform(index, { os: 'linux', architecture: 'arm', variant: 'v5' }, 'x'))
      .toThrow('x: no image for platform linux/arm/v5 in the index (it has: linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/amd64)');
  });
});
