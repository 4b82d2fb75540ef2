// The build plan from parsed Dockerfiles: stage selection, bases, step effects, errors with lines.
import { describe, expect, it } from 'vitest';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import { makePlan } from '../../src/plan/plan.js';

const plan = (text: string, target?: string, buildArgs = new Map<string, string>()) =>
  makePlan(parseDockerfile(text, 'Dockerfile'), { target, buildArgs });

const MULTI = `ARG BASE=scratch
FROM \${BASE} AS build
RUN echo hi > /x
FROM scratch AS unused
RUN true
FROM build AS final
COPY --from=build /x /y
WORKDIR /w
ENV A=1
CMD ["sh"]
`;

describe('makePlan', () => {
  it('keeps only the stages the target needs, with bases and step effects', () => {
    const p = plan(MULTI);
    expect(p.stages.map((s) => [s.index, s.name, s.base])).toEqual([
      [0, 'build', { kind: 'scratch' }],
      [2, 'final', { kind: 'stage', index: 0 }],
    ]);
    expect(p.stages[1].steps.map((s) => [s.line, s.kind, s.text])).toEqual([
      [7, 'fs', 'COPY --from=build /x /y'],
      [8, 'fs', 'WORKDIR /w'],
      [9, 'meta', 'ENV A=1'],
      [10, 'meta', 'CMD ["sh"]'],
    ]);
    expect(p.stages[1].stageRefs).toEqual(new Map([['build', 0]]));
  });

  it('--target selects a stage; global ARGs and build args expand FROM', () => {
    expect(plan(MULTI, 'unused').stages.map((s) => s.index)).toEqual([1]);
    const p = plan(MULTI, 'build', new Map([['BASE', 'example/base:1']]));
    expect(p.stages[0].base).toEqual({ kind: 'image', ref: 'example/base:1' });
  });

  it('reports bad references with their line', () => {
    const cases: [string, string, number][] = [
      ['FROM scratch\nRUN true\n', 'nope', 1],
      ['FROM scratch AS a\nCOPY --from=a /x /y\n', 'circular', 2],
      ['FROM scratch AS a\nCOPY --from=1 /x /y\nFROM scratch\n', 'defined after', 2],
    ];
    for (const [text, expected, line] of cases) {
      let error: unknown;
      try {
        plan(text, expected === 'nope' ? 'nope' : undefined);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DockerfileError);
      expect((error as DockerfileError).line).toBe(line);
      expect((error as DockerfileError).message).toContain(expected === 'nope' ? 'target stage "nope"' : expected);
    }
  });
});
