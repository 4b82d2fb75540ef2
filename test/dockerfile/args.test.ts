import { describe, expect, it } from 'vitest';
import { ArgScope, PLATFORM_ARGS, PROXY_ARGS, platformArgs } from '../../src/dockerfile/args.js';
import { expandInstruction, expandWord } from '../../src/dockerfile/expand.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';

const PREDEFINED = platformArgs({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'amd64' });

const entries = (map: Map<string, string>) => Object.fromEntries(map);

describe('platformArgs', () => {
  it('describes the target and build platforms', () => {
    expect(PREDEFINED).toEqual({
      TARGETPLATFORM: 'linux/arm64/v8',
      TARGETOS: 'linux',
      TARGETARCH: 'arm64',
      TARGETVARIANT: 'v8',
      BUILDPLATFORM: 'linux/amd64',
      BUILDOS: 'linux',
      BUILDARCH: 'amd64',
      BUILDVARIANT: '',
    });
    expect(Object.keys(PREDEFINED).sort()).toEqual([...PLATFORM_ARGS].sort());
  });
});

describe('ArgScope', () => {
  it('makes global ARGs visible to FROM only', () => {
    const scope = new ArgScope();
    scope.declareGlobal('VERSION', '1.0');
    expect(entries(scope.forFrom())).toEqual({ VERSION: '1.0' });
    scope.enterStage();
    expect(entries(scope.values())).toEqual({});
  });

  it('gives a redeclared ARG without default the global value', () => {
    const scope = new ArgScope();
    scope.declareGlobal('VERSION', '1.0');
    scope.enterStage();
    scope.declare('VERSION');
    expect(entries(scope.values())).toEqual({ VERSION: '1.0' });
  });

  it('prefers a stage default over the global one', () => {
    const scope = new ArgScope();
    scope.declareGlobal('VERSION', '1.0');
    scope.enterStage();
    scope.declare('VERSION', '2.0');
    expect(entries(scope.values())).toEqual({ VERSION: '2.0' });
  });

  it('lets --build-arg override declared ARGs, globally and in stages', () => {
    const scope = new ArgScope({ VERSION: '9', OTHER: 'x' });
    scope.declareGlobal('VERSION', '1.0');
    expect(entries(scope.forFrom())).toEqual({ VERSION: '9' });
    scope.enterStage();
    scope.declare('VERSION', '2.0');
    scope.declare('OTHER');
    expect(entries(scope.values())).toEqual({ VERSION: '9', OTHER: 'x' });
  });

  it('ignores build args that no ARG declares, and reports them', () => {
    const scope = new ArgScope(new Map([['FOO', 'x'], ['USED', 'y']]));
    scope.enterStage();
    scope.declare('USED');
    expect(entries(scope.values())).toEqual({ USED: 'y' });
    expect(scope.unusedBuildArgs()).toEqual(['FOO']);
  });

  it('leaves an ARG without any value unset', () => {
    const scope = new ArgScope();
    scope.enterStage();
    scope.declare('MAYBE');
    expect(scope.values().has('MAYBE')).toBe(false);
    expect(expandWord('${MAYBE-unset}', scope.expansionEnv({}))).toBe('unset');
  });

  it('provides platform args to FROM automatically, and in stages only when declared', () => {
    const scope = new ArgScope({}, PREDEFINED);
    expect(scope.forFrom().get('TARGETARCH')).toBe('arm64');
    scope.enterStage();
    expect(scope.values().has('TARGETARCH')).toBe(false);
    scope.declare('TARGETARCH');
    scope.declare('BUILDPLATFORM');
    expect(entries(scope.values())).toEqual({ TARGETARCH: 'arm64', BUILDPLATFORM: 'linux/amd64' });
  });

  it('keeps the platform value when a global ARG redeclares it without default', () => {
    const scope = new ArgScope({}, PREDEFINED);
    scope.declareGlobal('TARGETOS');
    expect(scope.forFrom().get('TARGETOS')).toBe('linux');
  });

  it('passes proxy build args to RUN without a declaration', () => {
    const scope = new ArgScope({ HTTP_PROXY: 'http://proxy:3128', no_proxy: 'localhost', FOO: 'x' });
    scope.enterStage();
    expect(entries(scope.values())).toEqual({});
    expect(entries(scope.runEnv({ PATH: '/bin' }))).toEqual({
      HTTP_PROXY: 'http://proxy:3128',
      no_proxy: 'localhost',
      PATH: '/bin',
    });
    expect(scope.unusedBuildArgs()).toEqual(['FOO']);
    expect(PROXY_ARGS).toHaveLength(10);
  });

  it('lets ENV override an ARG of the same name', () => {
    const scope = new ArgScope({ MODE: 'from-build-arg' });
    scope.enterStage();
    scope.declare('MODE');
    scope.declare('ONLY_ARG', 'a');
    const env = new Map([['MODE', 'from-env']]);
    expect(entries(scope.expansionEnv(env))).toEqual({ MODE: 'from-env', ONLY_ARG: 'a' });
    expect(entries(scope.runEnv(env))).toEqual({ MODE: 'from-env', ONLY_ARG: 'a' });
  });

  it('starts each stage empty, or with the args of the stage it builds on', () => {
    const scope = new ArgScope();
    scope.enterStage();
    scope.declare('A', '1');
    scope.enterStage();
    expect(entries(scope.values())).toEqual({});
    scope.enterStage({ A: '1' });
    expect(entries(scope.values())).toEqual({ A: '1' });
  });

  it('drives expansion of a parsed Dockerfile', () => {
    const dockerfile = parseDockerfile(
      [
        'ARG BASE=alpine',
        'ARG TAG=${BASE}-latest',
        'FROM ${BASE}:${TAG}',
        'ARG TAG',
        'ARG DIR=/opt/$TAG',
        'ENV HOME=$DIR',
        'WORKDIR $HOME/${TARGETARCH:-none}',
      ].join('\n'),
      'Dockerfile',
    );
    const scope = new ArgScope({ BASE: 'debian' }, PREDEFINED);
    for (const instruction of dockerfile.globalArgs) {
      const expanded = expandInstruction(instruction, scope.forFrom());
      for (const arg of expanded.args) scope.declareGlobal(arg.name, arg.default);
    }
    const stage = dockerfile.stages[0]!;
    expect(expandInstruction(stage.from, scope.forFrom()).image).toBe('debian:debian-latest');

    scope.enterStage();
    const env = new Map<string, string>();
    const results: unknown[] = [];
    for (const instruction of stage.instructions) {
      const expanded = expandInstruction(instruction, scope.expansionEnv(env));
      if (expanded.kind === 'ARG') for (const arg of expanded.args) scope.declare(arg.name, arg.default);
      if (expanded.kind === 'ENV') for (const { key, value } of expanded.env) env.set(key, value);
      if (expanded.kind === 'WORKDIR') results.push(expanded.path);
    }
    expect(entries(scope.values())).toEqual({ TAG: 'debian-latest', DIR: '/opt/debian-latest' });
    expect(results).toEqual(['/opt/debian-latest/none']);
  });
});
