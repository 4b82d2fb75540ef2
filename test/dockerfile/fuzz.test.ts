import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { expandInstruction } from '../../src/dockerfile/expand.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import type { Instruction, ParsedDockerfile } from '../../src/dockerfile/types.js';
import { seededRandom } from '../../src/util/seeded-random.js';

// Mutates valid Dockerfiles and checks that parsing and expansion either
// succeed or throw a DockerfileError pointing at an existing line.
// STRATA_FUZZ_CASES sets the number of cases, STRATA_FUZZ_SEED the seed.
const CASES = Number(process.env.STRATA_FUZZ_CASES ?? 2000);
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 0x5eed);

const CORPUS = [
  readFileSync(new URL('./fixtures/multistage.Dockerfile', import.meta.url), 'utf8'),
  `# syntax=docker/dockerfile:1
ARG BASE=debian:bookworm-slim
FROM \${BASE} AS base
ENV DEBIAN_FRONTEND=noninteractive LANG="C.UTF-8" PATH=/opt/bin:$PATH
RUN apt-get update \\
 # keep the layer small
 && apt-get install -y --no-install-recommends curl ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
RUN <<-EOT bash
\tset -e
\techo "\${LANG:-none}" > /etc/lang
\tEOT
FROM base
ONBUILD COPY . /app
ONBUILD RUN <<EOF
make -C /app
EOF
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
HEALTHCHECK NONE
MAINTAINER someone@example.com
`,
  '# escape=`\r\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\r\nWORKDIR C:\\app\r\nCOPY ["src dir", "C:\\\\app\\\\"]\r\nRUN powershell -Command `\r\n    Write-Host hi `\r\n    ; exit 0\r\nENV A=1 `\r\n    B=2\r\nLABEL a=b c="d e"\r\nENTRYPOINT ["cmd", "/S", "/C"]\r\n',
  `FROM alpine:3.19 AS one
ARG A B=2 C="x y"
EXPOSE 80 443/tcp \${PORT:-8080}/udp
USER \${A:-nobody}:\${B}
COPY --chown=1:1 --chmod=644 --link <<A <<'B' ./file /dst/
$A
A
\${B}
B
ADD --checksum=sha256:0000 --keep-git-dir=true https://example.com/x.tgz /x/
RUN ["sh", "-c", "echo \\"$HOME\\" \\\\ done"]
CMD echo \${FILE##*/} \${FILE%.*} \${FILE/a/b}
FROM one AS two
COPY --from=one --exclude=*.md /a /b
RUN --mount=type=secret,id=npm,target=/root/.npmrc --network=none npm ci
`,
];

const TOKENS = [
  '\\', '`', '"', "'", '${', '}', '$', '$$', ':-', ':?', '#', '##', '%', '/', '//', '[', ']', '{', '=', '--',
  '--foo=', ' ', '\t', '\n', '\r\n', '\r', '\\\n', '`\n', '<<EOF', '<<-"X"', "<<'Y'", '3<<Z', 'EOF', '\nEOF\n',
  'é', '日本', '🚀', '\u0000', '\ufeff', '\u00a0', '\u2028', '\ud800', '\udfff', 'AS', ' as 1x', '["a", 1]', '["x"]',
  'FROM', 'RUN', 'ONBUILD', 'HEALTHCHECK --interval=', '# escape=`\n', '# syntax=x\n',
];

const HUGE_UNITS = ['a', ' ', '\\', '${A:-', '}', '"', "'", '$', 'x=y ', '<<E ', '\t', '日'];


function mutate(source: string, random: () => number): string {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  let text = source;
  const mutations = 1 + int(4);
  for (let i = 0; i < mutations; i++) {
    const lines = text.split('\n');
    const at = int(text.length + 1);
    switch (int(9)) {
      case 0: // delete a line
        lines.splice(int(lines.length), 1);
        text = lines.join('\n');
        break;
      case 1: // duplicate a line
        {
          const index = int(lines.length);
          lines.splice(index, 0, lines[index] ?? '');
          text = lines.join('\n');
        }
        break;
      case 2: // swap two lines
        {
          const a = int(lines.length);
          const b = int(lines.length);
          [lines[a], lines[b]] = [lines[b] ?? '', lines[a] ?? ''];
          text = lines.join('\n');
        }
        break;
      case 3: // flip a character to any code unit
        text = text.slice(0, at) + String.fromCharCode(int(0x10000)) + text.slice(at + 1);
        break;
      case 4: // flip a character to a printable ASCII one
        text = text.slice(0, at) + String.fromCharCode(32 + int(95)) + text.slice(at + 1);
        break;
      case 5: // insert an interesting token
      case 6:
        text = text.slice(0, at) + pick(TOKENS) + text.slice(at);
        break;
      case 7: // truncate
        text = text.slice(0, at);
        break;
      case 8: // a huge line, sometimes
        if (random() < 0.15) {
          const unit = pick(HUGE_UNITS);
          const line = pick(['RUN ', 'ENV A=', 'COPY ', 'LABEL ', 'WORKDIR ', '']) + unit.repeat(1000 + int(20000));
          lines.splice(int(lines.length), 0, line);
          text = lines.join('\n');
        }
        break;
    }
  }
  return text;
}

function lineCountOf(text: string): number {
  const body = text.startsWith('\ufeff') ? text.slice(1) : text;
  const count = body.split('\n').length - (body.endsWith('\n') ? 1 : 0);
  return Math.max(1, count);
}

function allInstructions(dockerfile: ParsedDockerfile): Instruction[] {
  const list: Instruction[] = [...dockerfile.globalArgs];
  for (const stage of dockerfile.stages) {
    list.push(stage.from, ...stage.instructions);
    for (const instruction of stage.instructions) if (instruction.kind === 'ONBUILD') list.push(instruction.trigger);
  }
  return list;
}

const ENV = new Map([
  ['FOO', 'foo'],
  ['A', 'a b'],
  ['EMPTY', ''],
  ['FILE', '/x/y.tar.gz'],
]);

type Outcome = { ok: true; parsed: boolean } | { ok: false; problem: string };

/** Whether the input was handled properly: parsed, or rejected with a well-located DockerfileError. */
function check(text: string): Outcome {
  const lineCount = lineCountOf(text);
  const located = (error: unknown, stage: string): string | undefined => {
    if (!(error instanceof DockerfileError)) return `${stage} threw ${String(error)}`;
    if (!(error.line >= 1 && error.line <= lineCount)) return `${stage}: line ${error.line} outside 1..${lineCount}`;
    if (error.endLine < error.line || error.endLine > lineCount) return `${stage}: endLine ${error.endLine}`;
    error.frame();
    return undefined;
  };
  const failed = (problem: string): Outcome => ({ ok: false, problem });
  let dockerfile: ParsedDockerfile;
  try {
    dockerfile = parseDockerfile(text, 'Dockerfile');
  } catch (error) {
    const problem = located(error, 'parse');
    return problem ? failed(problem) : { ok: true, parsed: false };
  }
  if (dockerfile.lines.length !== lineCount) return failed(`lines: ${dockerfile.lines.length} != ${lineCount}`);
  for (const instruction of allInstructions(dockerfile)) {
    const { startLine, endLine } = instruction.loc;
    if (!(startLine >= 1 && startLine <= endLine && endLine <= lineCount)) return failed(`loc ${startLine}-${endLine}`);
    try {
      expandInstruction(instruction, ENV, dockerfile.escape);
    } catch (error) {
      const problem = located(error, `expand ${instruction.kind}`);
      if (problem) return failed(problem);
    }
  }
  return { ok: true, parsed: true };
}

describe('fuzz', () => {
  it(`parses ${CASES} mutated Dockerfiles without unexpected exceptions (seed ${SEED})`, { timeout: 300_000 }, () => {
    const random = seededRandom(SEED);
    const failures: string[] = [];
    let parsed = 0;
    for (let i = 0; i < CASES; i++) {
      const text = mutate(CORPUS[i % CORPUS.length] as string, random);
      const outcome = check(text);
      if (!outcome.ok) failures.push(`case ${i}: ${outcome.problem}\n  input: ${JSON.stringify(text.slice(0, 400))}`);
      else if (outcome.parsed) parsed++;
    }
    expect(failures.slice(0, 5)).toEqual([]);
    // The mutations must leave enough inputs valid to exercise expansion too.
    expect(parsed).toBeGreaterThan(CASES / 10);
  });

  it('survives random bytes', () => {
    const random = seededRandom(SEED + 1);
    for (let i = 0; i < 200; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(random() * 400) }, () => Math.floor(random() * 256));
      const text = new TextDecoder().decode(bytes);
      expect(check(text), JSON.stringify(text)).toMatchObject({ ok: true });
    }
  });

  it('accepts every corpus file unmodified', () => {
    for (const text of CORPUS) expect(() => parseDockerfile(text, 'Dockerfile')).not.toThrow();
  });
});
