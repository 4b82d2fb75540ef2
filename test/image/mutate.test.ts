import { describe, expect, it } from 'vitest';
import {
  appendHistory, appendLayer, DefaultLinuxPath, emptyConfig, serializeConfig, withCmd, withCreated, withEntrypoint,
  withEnv, withExposedPorts, withHealthcheck, withLabels, withOnBuild, withShell, withStopSignal, withUser, withVolumes,
  withWorkingDir,
} from '../../src/image/mutate.js';
import type { ContainerConfig, ImageConfig } from '../../src/image/types.js';

const base = emptyConfig({ architecture: 'amd64', os: 'linux' });
const diffA = `sha256:${'a'.repeat(64)}`;
const diffB = `sha256:${'b'.repeat(64)}`;

function withBase(config: ContainerConfig): ImageConfig {
  return { ...base, config };
}

describe('emptyConfig', () => {
  it('is a FROM scratch config with Docker\'s default PATH', () => {
    expect(emptyConfig({ architecture: 'arm64', os: 'linux', variant: 'v8' })).toEqual({
      architecture: 'arm64',
      os: 'linux',
      variant: 'v8',
      config: { Env: [`PATH=${DefaultLinuxPath}`] },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    });
    expect(DefaultLinuxPath).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(emptyConfig({ architecture: 'amd64', os: 'windows' }).config).toEqual({});
  });
});

describe('container config edits', () => {
  const cases: { name: string; input: ContainerConfig; edit: (c: ImageConfig) => ImageConfig; expected: ContainerConfig }[] = [
    { name: 'ENV appends a new variable', input: { Env: ['PATH=/bin'] }, edit: (c) => withEnv(c, 'A', '1'), expected: { Env: ['PATH=/bin', 'A=1'] } },
    { name: 'ENV replaces in place', input: { Env: ['A=1', 'PATH=/bin', 'B=2'] }, edit: (c) => withEnv(c, 'PATH', '/x:/bin'), expected: { Env: ['A=1', 'PATH=/x:/bin', 'B=2'] } },
    { name: 'ENV does not match a prefix', input: { Env: ['AB=1'] }, edit: (c) => withEnv(c, 'A', 'two words'), expected: { Env: ['AB=1', 'A=two words'] } },
    { name: 'ENV on a config without Env', input: {}, edit: (c) => withEnv(c, 'A', ''), expected: { Env: ['A='] } },
    { name: 'LABEL merges and overrides', input: { Labels: { a: '1', b: '2' } }, edit: (c) => withLabels(c, { b: 'x', c: '3' }), expected: { Labels: { a: '1', b: 'x', c: '3' } } },
    { name: 'EXPOSE normalises protocol', input: { ExposedPorts: { '22/tcp': {} } }, edit: (c) => withExposedPorts(c, ['80', '53/UDP', '8080/tcp']), expected: { ExposedPorts: { '22/tcp': {}, '80/tcp': {}, '53/udp': {}, '8080/tcp': {} } } },
    { name: 'EXPOSE expands a range', input: {}, edit: (c) => withExposedPorts(c, ['7000-7002/udp']), expected: { ExposedPorts: { '7000/udp': {}, '7001/udp': {}, '7002/udp': {} } } },
    { name: 'VOLUME adds paths', input: { Volumes: { '/a': {} } }, edit: (c) => withVolumes(c, ['/b', '/a']), expected: { Volumes: { '/a': {}, '/b': {} } } },
    { name: 'WORKDIR absolute', input: { WorkingDir: '/app' }, edit: (c) => withWorkingDir(c, '/srv'), expected: { WorkingDir: '/srv' } },
    { name: 'WORKDIR relative to the current one', input: { WorkingDir: '/app' }, edit: (c) => withWorkingDir(c, 'sub/../lib'), expected: { WorkingDir: '/app/lib' } },
    { name: 'WORKDIR relative with none set', input: {}, edit: (c) => withWorkingDir(c, 'w'), expected: { WorkingDir: '/w' } },
    { name: 'USER', input: {}, edit: (c) => withUser(c, '1000:1000'), expected: { User: '1000:1000' } },
    { name: 'CMD', input: { Cmd: ['sh'] }, edit: (c) => withCmd(c, ['cat', '/x']), expected: { Cmd: ['cat', '/x'] } },
    { name: 'ENTRYPOINT resets an inherited CMD', input: { Cmd: ['sh'] }, edit: (c) => withEntrypoint(c, ['/bin/sh', '-c'], { resetCmd: true }), expected: { Entrypoint: ['/bin/sh', '-c'], Cmd: null } },
    { name: 'ENTRYPOINT keeps a CMD set in this stage', input: { Cmd: ['x'] }, edit: (c) => withEntrypoint(c, ['/e'], { resetCmd: false }), expected: { Entrypoint: ['/e'], Cmd: ['x'] } },
    { name: 'STOPSIGNAL', input: {}, edit: (c) => withStopSignal(c, 'SIGTERM'), expected: { StopSignal: 'SIGTERM' } },
    { name: 'HEALTHCHECK', input: {}, edit: (c) => withHealthcheck(c, { Test: ['CMD-SHELL', 'true'], Interval: 30e9, Retries: 3 }), expected: { Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 30e9, Retries: 3 } } },
    { name: 'ONBUILD', input: { OnBuild: ['RUN a'] }, edit: (c) => withOnBuild(c, ['RUN a', 'RUN b']), expected: { OnBuild: ['RUN a', 'RUN b'] } },
    { name: 'ONBUILD cleared', input: { OnBuild: ['RUN a'] }, edit: (c) => withOnBuild(c, null), expected: { OnBuild: null } },
    { name: 'SHELL', input: {}, edit: (c) => withShell(c, ['/bin/bash', '-c']), expected: { Shell: ['/bin/bash', '-c'] } },
  ];
  it.each(cases)('$name', ({ input, edit, expected }) => {
    const before = withBase(input);
    const snapshot = structuredClone(before);
    const after = edit(before);
    expect(after.config).toEqual(expected);
    expect(before).toEqual(snapshot); // the input is untouched
    expect(after).not.toBe(before);
  });

  it('rejects invalid input', () => {
    expect(() => withEnv(base, 'A=B', 'x')).toThrow(/invalid environment variable/);
    expect(() => withExposedPorts(base, ['80/foo'])).toThrow(/invalid port/);
    expect(() => withExposedPorts(base, ['90-80'])).toThrow(/invalid port/);
    expect(() => withExposedPorts(base, ['70000'])).toThrow(/invalid port/);
    expect(() => withWorkingDir(base, '')).toThrow(/WORKDIR/);
  });
});

describe('layers and history', () => {
  it('appendLayer adds a diff_id and a non-empty history entry; appendHistory an empty_layer one', () => {
    const cfg = appendHistory(
      appendLayer(appendLayer(base, diffA, { created_by: 'ADD a /', empty_layer: true }), diffB, { created_by: 'RUN b' }),
      { created_by: 'CMD ["sh"]' },
    );
    expect(cfg.rootfs.diff_ids).toEqual([diffA, diffB]);
    expect(cfg.history).toEqual([
      { created_by: 'ADD a /' },
      { created_by: 'RUN b' },
      { created_by: 'CMD ["sh"]', empty_layer: true },
    ]);
    expect(base.rootfs.diff_ids).toEqual([]);
    expect(base.history).toEqual([]);
    expect(withCreated(cfg, '2024-01-02T03:04:05Z').created).toBe('2024-01-02T03:04:05Z');
  });
});

describe('serializeConfig', () => {
  it('writes fields in a fixed order with sorted map keys, leaving out undefined fields', () => {
    const cfg = withCreated(
      withLabels(withExposedPorts(withEnv(appendLayer(base, diffA, { created_by: 'x' }), 'A', '1'), ['443', '80']), { z: '1', a: '2' }),
      '2024-01-01T00:00:00Z',
    );
    expect(serializeConfig(cfg).toString()).toBe(
      '{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"ExposedPorts":{"443/tcp":{},"80/tcp":{}},'
      + `"Env":["PATH=${DefaultLinuxPath}","A=1"],"Labels":{"a":"2","z":"1"}},`
      + `"rootfs":{"type":"layers","diff_ids":["${diffA}"]},"history":[{"created_by":"x"}]}`,
    );
  });

  it('gives the same bytes however the object was built', () => {
    const a = withLabels(withLabels(base, { x: '1' }), { y: '2' });
    const shuffled: ImageConfig = {
      history: [], rootfs: { diff_ids: [], type: 'layers' }, config: { Labels: { y: '2', x: '1' }, Env: base.config.Env }, os: 'linux', architecture: 'amd64',
    };
    expect(serializeConfig(shuffled).equals(serializeConfig(a))).toBe(true);
  });

  it('keeps null (reset) fields, as Docker writes them', () => {
    const cfg = withEntrypoint(withCmd(base, ['sh']), ['/e'], { resetCmd: true });
    expect(JSON.parse(serializeConfig(cfg).toString()).config).toEqual({ Env: [`PATH=${DefaultLinuxPath}`], Entrypoint: ['/e'], Cmd: null });
  });
});
