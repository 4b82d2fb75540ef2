import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DockerfileError, formatDockerfileError } from '../../src/dockerfile/errors.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import type { Instruction, ParsedDockerfile } from '../../src/dockerfile/types.js';

const parse = (text: string): ParsedDockerfile => parseDockerfile(text, 'Dockerfile');

/** The instructions of the first stage. */
const body = (text: string): Instruction[] => parse(`FROM scratch\n${text}`).stages[0]!.instructions;

/** The only instruction of the first stage. */
const only = (text: string): Instruction => {
  const instructions = body(text);
  expect(instructions).toHaveLength(1);
  return instructions[0]!;
};

const parseError = (text: string): DockerfileError => {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(DockerfileError);
    return error as DockerfileError;
  }
  throw new Error('expected a DockerfileError');
};

describe('parser directives', () => {
  it('defaults to backslash and records # syntax', () => {
    const dockerfile = parse('# syntax=docker/dockerfile:1\nFROM scratch\n');
    expect(dockerfile.escape).toBe('\\');
    expect(dockerfile.syntax).toBe('docker/dockerfile:1');
    expect(parse('FROM scratch').syntax).toBeUndefined();
  });

  it('switches the escape character to backtick', () => {
    const dockerfile = parse('# escape=`\nFROM scratch\nRUN echo a `\n  b\nWORKDIR C:\\dir\\\n');
    expect(dockerfile.escape).toBe('`');
    const [run, workdir] = dockerfile.stages[0]!.instructions;
    expect(run).toMatchObject({ raw: 'RUN echo a   b', loc: { startLine: 3, endLine: 4 } });
    expect(workdir).toMatchObject({ kind: 'WORKDIR', path: 'C:\\dir\\' });
  });

  it('accepts directive spelling variations', () => {
    expect(parse('#escape=\\\nFROM scratch').escape).toBe('\\');
    expect(parse('#  ESCAPE =  `  \nFROM scratch').escape).toBe('`');
    expect(parse('# syntax = x\n# escape=`\nFROM scratch')).toMatchObject({ syntax: 'x', escape: '`' });
    expect(parse('# check=skip=all\n# escape=`\nFROM scratch').escape).toBe('`');
  });

  it('only reads directives at the very top', () => {
    expect(parse('# a comment\n# escape=`\nFROM scratch').escape).toBe('\\');
    expect(parse('\n# escape=`\nFROM scratch').escape).toBe('\\');
    expect(parse('# unknown=directive\n# escape=`\nFROM scratch').escape).toBe('\\');
    expect(parse('FROM scratch\n# escape=`\nRUN x').escape).toBe('\\');
    expect(parse('FROM scratch\n# syntax=x\n').syntax).toBeUndefined();
  });

  it('rejects repeated and invalid directives', () => {
    expect(parseError('# escape=`\n# escape=\\\nFROM scratch')).toMatchObject({
      line: 2,
      reason: 'only one escape parser directive can be used',
    });
    expect(parseError('# escape=x\nFROM scratch')).toMatchObject({
      line: 1,
      reason: "invalid escape token 'x' does not match ` or \\",
    });
  });

  it('ignores a UTF-8 byte order mark', () => {
    expect(parse('\ufeff# escape=`\nFROM scratch')).toMatchObject({ escape: '`', lines: ['# escape=`', 'FROM scratch'] });
  });
});

describe('lines, continuations and comments', () => {
  it('handles CRLF files', () => {
    const dockerfile = parse('FROM scratch\r\nRUN a \\\r\n  b\r\nENV A=1\r\n');
    expect(dockerfile.lines).toEqual(['FROM scratch', 'RUN a \\', '  b', 'ENV A=1']);
    const [run, env] = dockerfile.stages[0]!.instructions;
    expect(run).toMatchObject({ raw: 'RUN a   b', loc: { startLine: 2, endLine: 3 } });
    expect(env).toMatchObject({ env: [{ key: 'A', value: '1' }], loc: { startLine: 4, endLine: 4 } });
  });

  it('skips empty lines and leading whitespace', () => {
    const [run, user] = body('\n\n   RUN a\n\t\n\tUSER b\n');
    expect(run).toMatchObject({ raw: 'RUN a', loc: { file: 'Dockerfile', startLine: 4, endLine: 4 } });
    expect(user).toMatchObject({ user: 'b', loc: { startLine: 6, endLine: 6 } });
  });

  it('joins continuation lines, keeping their indentation', () => {
    expect(only('RUN apt-get update && \\\n    apt-get install -y \\\n      curl')).toMatchObject({
      raw: 'RUN apt-get update &&     apt-get install -y       curl',
      command: { form: 'shell', args: ['apt-get update &&     apt-get install -y       curl'] },
      loc: { startLine: 2, endLine: 4 },
    });
  });

  it('allows spaces and tabs after the continuation character', () => {
    expect(only('RUN a \\  \t\n b')).toMatchObject({ raw: 'RUN a  b', loc: { endLine: 3 } });
  });

  it('drops comment lines and blank lines inside continuations', () => {
    expect(only('RUN a \\\n# comment\n    # indented comment\n\n  b \\\n\n  c')).toMatchObject({
      raw: 'RUN a   b   c',
      loc: { startLine: 2, endLine: 8 },
    });
  });

  it('treats an escaped escape character at the end of a line as literal', () => {
    const [run, user] = body('RUN echo \\\\\nUSER x');
    expect(run).toMatchObject({ command: { args: ['echo \\\\'] }, loc: { endLine: 2 } });
    expect(user).toMatchObject({ user: 'x', loc: { startLine: 3 } });
  });

  it('ends a continuation at the end of the file', () => {
    expect(only('RUN a \\')).toMatchObject({ raw: 'RUN a', loc: { startLine: 2, endLine: 2 } });
  });

  it('keeps # that does not start a line', () => {
    expect(only('RUN echo hi # not a comment')).toMatchObject({ command: { args: ['echo hi # not a comment'] } });
  });

  it('accepts lower-case keywords', () => {
    const [run, copy] = body('run echo\ncopy a b');
    expect(run).toMatchObject({ kind: 'RUN', raw: 'run echo' });
    expect(copy).toMatchObject({ kind: 'COPY', sources: ['a'], dest: 'b' });
  });

  it('keeps the original lines for error frames', () => {
    expect(parse('FROM a\n\nRUN b\n').lines).toEqual(['FROM a', '', 'RUN b']);
  });

  it('parses the fixture Dockerfile', () => {
    const text = readFileSync(new URL('./fixtures/multistage.Dockerfile', import.meta.url), 'utf8');
    const dockerfile = parseDockerfile(text, 'fixtures/multistage.Dockerfile');
    expect(dockerfile.syntax).toBe('docker/dockerfile:1');
    expect(dockerfile.globalArgs.map((arg) => arg.args)).toEqual([[{ name: 'GO_VERSION', default: '1.22' }]]);
    expect(dockerfile.stages.map((stage) => [stage.index, stage.name, stage.from.image])).toEqual([
      [0, 'build', 'golang:${GO_VERSION}-alpine'],
      [1, undefined, 'alpine:3.19'],
    ]);
    expect(dockerfile.stages[0]!.instructions.map((instruction) => instruction.kind)).toEqual([
      'ARG',
      'WORKDIR',
      'COPY',
      'RUN',
      'COPY',
      'RUN',
    ]);
    expect(dockerfile.stages[1]!.instructions.map((instruction) => instruction.kind)).toEqual([
      'LABEL',
      'COPY',
      'COPY',
      'EXPOSE',
      'HEALTHCHECK',
      'USER',
      'ENTRYPOINT',
      'CMD',
    ]);
    expect(dockerfile.stages[1]!.instructions[2]).toMatchObject({
      sources: [],
      dest: '/etc/app/config.toml',
      heredocs: [{ name: 'EOF', content: 'listen = ":8080"\n', chomp: true }],
      loc: { startLine: 23, endLine: 25 },
    });
  });
});

describe('instructions', () => {
  it('FROM: image, --platform, AS name and stages', () => {
    const dockerfile = parse('FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nRUN x\nfrom build as final\n');
    expect(dockerfile.stages).toHaveLength(2);
    expect(dockerfile.stages[0]).toMatchObject({
      index: 0,
      name: 'build',
      from: { kind: 'FROM', image: 'golang:1.22', platform: '$BUILDPLATFORM', stageName: 'build' },
    });
    expect(dockerfile.stages[0]!.instructions).toHaveLength(1);
    expect(dockerfile.stages[1]).toMatchObject({ index: 1, name: 'final', from: { image: 'build' } });
    expect(parse('FROM alpine').stages[0]).not.toHaveProperty('name');
  });

  it('RUN: shell form keeps the text', () => {
    expect(only('RUN  echo "a  b" | tr a b ')).toMatchObject({
      kind: 'RUN',
      command: { form: 'shell', args: ['echo "a  b" | tr a b'] },
      flags: {},
      heredocs: [],
    });
  });

  it('RUN: exec form keeps whitespace and escapes exactly', () => {
    expect(only('RUN ["echo", "a  b", "tab\\there", "\\u00e9\\"q\\"", "c:\\\\dir"]')).toMatchObject({
      command: { form: 'exec', args: ['echo', 'a  b', 'tab\there', 'é"q"', 'c:\\dir'] },
    });
  });

  it('RUN: text that is not a JSON string array is shell form', () => {
    expect(only('RUN [ -f /x ] && echo yes')).toMatchObject({
      command: { form: 'shell', args: ['[ -f /x ] && echo yes'] },
    });
    expect(only("RUN ['single', 'quotes']")).toMatchObject({ command: { form: 'shell' } });
    expect(only('RUN {"a": 1}')).toMatchObject({ command: { form: 'shell' } });
  });

  it('RUN: flags', () => {
    expect(
      only('RUN --mount=type=cache,target=/root/.cache --mount="type=secret,id=tok" --network=none --security=insecure make'),
    ).toMatchObject({
      flags: {
        mount: ['type=cache,target=/root/.cache', 'type=secret,id=tok'],
        network: ['none'],
        security: ['insecure'],
      },
      command: { args: ['make'] },
    });
    expect(only('RUN -- --not-a-flag')).toMatchObject({ flags: {}, command: { args: ['--not-a-flag'] } });
  });

  it('CMD and ENTRYPOINT: exec and shell forms', () => {
    expect(only('CMD ["nginx", "-g", "daemon off;"]')).toMatchObject({
      kind: 'CMD',
      command: { form: 'exec', args: ['nginx', '-g', 'daemon off;'] },
    });
    expect(only('CMD []')).toMatchObject({ command: { form: 'exec', args: [] } });
    expect(only('ENTRYPOINT exec top -b')).toMatchObject({
      kind: 'ENTRYPOINT',
      command: { form: 'shell', args: ['exec top -b'] },
    });
  });

  it('LABEL: key=value pairs with quotes, and the legacy form', () => {
    expect(only('LABEL "com.example.vendor"="ACME Inc" version=1.0 description="a \\"b\\"" multi=a\\ b')).toMatchObject({
      labels: [
        { key: '"com.example.vendor"', value: '"ACME Inc"' },
        { key: 'version', value: '1.0' },
        { key: 'description', value: '"a \\"b\\""' },
        { key: 'multi', value: 'a\\ b' },
      ],
    });
    expect(only('LABEL maintainer Jane Doe <jane@example.com>')).toMatchObject({
      labels: [{ key: 'maintainer', value: 'Jane Doe <jane@example.com>' }],
    });
  });

  it('MAINTAINER', () => {
    expect(only('MAINTAINER Jane Doe')).toMatchObject({ kind: 'MAINTAINER', maintainer: 'Jane Doe' });
  });

  it('EXPOSE', () => {
    expect(only('EXPOSE 80 443/tcp  53/udp $PORT')).toMatchObject({ ports: ['80', '443/tcp', '53/udp', '$PORT'] });
  });

  it('ENV: pairs and the legacy form', () => {
    expect(only('ENV A=1 B="two words" C= D=a\\ b E=\'$x\'')).toMatchObject({
      env: [
        { key: 'A', value: '1' },
        { key: 'B', value: '"two words"' },
        { key: 'C', value: '' },
        { key: 'D', value: 'a\\ b' },
        { key: 'E', value: "'$x'" },
      ],
    });
    expect(only('ENV PATH /usr/local/bin:$PATH  extra')).toMatchObject({
      env: [{ key: 'PATH', value: '/usr/local/bin:$PATH  extra' }],
    });
  });

  it('COPY: sources, dest and every flag', () => {
    expect(
      only(
        'COPY --from=build --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=.git a "b c" /dst/',
      ),
    ).toMatchObject({
      kind: 'COPY',
      sources: ['a', '"b c"'],
      dest: '/dst/',
      flags: {
        from: ['build'],
        chown: ['1000:1000'],
        chmod: ['0755'],
        link: ['true'],
        parents: ['true'],
        exclude: ['*.md', '.git'],
      },
      heredocs: [],
    });
    expect(only('COPY --link=false a b')).toMatchObject({ flags: { link: ['false'] } });
    expect(only('COPY --link=TRUE a b')).toMatchObject({ flags: { link: ['true'] } });
  });

  it('COPY: JSON form', () => {
    expect(only('COPY ["a b", "c", "/d e/"]')).toMatchObject({ sources: ['a b', 'c'], dest: '/d e/' });
  });

  it('ADD: flags', () => {
    expect(
      only('ADD --checksum=sha256:abc --keep-git-dir=true --chown=u --chmod=644 --link --exclude=x https://x/a.tgz /'),
    ).toMatchObject({
      kind: 'ADD',
      sources: ['https://x/a.tgz'],
      dest: '/',
      flags: { checksum: ['sha256:abc'], 'keep-git-dir': ['true'], chown: ['u'], chmod: ['644'], link: ['true'] },
    });
  });

  it('VOLUME: JSON and space-separated', () => {
    expect(only('VOLUME ["/data", "/var/log"]')).toMatchObject({ paths: ['/data', '/var/log'] });
    expect(only('VOLUME /data /var/log')).toMatchObject({ paths: ['/data', '/var/log'] });
  });

  it('USER, WORKDIR and STOPSIGNAL', () => {
    expect(body('USER app:app\nWORKDIR /srv/my app\nSTOPSIGNAL SIGQUIT')).toMatchObject([
      { kind: 'USER', user: 'app:app' },
      { kind: 'WORKDIR', path: '/srv/my app' },
      { kind: 'STOPSIGNAL', signal: 'SIGQUIT' },
    ]);
  });

  it('ARG: names, defaults, several per line; global ARGs before FROM', () => {
    const dockerfile = parse('ARG BASE=alpine\nARG A B=2 C="x y" D=\nFROM $BASE\nARG A\n');
    expect(dockerfile.globalArgs.map((arg) => arg.args)).toEqual([
      [{ name: 'BASE', default: 'alpine' }],
      [{ name: 'A' }, { name: 'B', default: '2' }, { name: 'C', default: '"x y"' }, { name: 'D', default: '' }],
    ]);
    expect(dockerfile.stages[0]!.instructions).toMatchObject([{ kind: 'ARG', args: [{ name: 'A' }] }]);
  });

  it('ONBUILD: wraps a parsed trigger and keeps its text', () => {
    expect(only('ONBUILD  RUN --mount=type=cache,target=/c make')).toMatchObject({
      kind: 'ONBUILD',
      raw: 'ONBUILD  RUN --mount=type=cache,target=/c make',
      expression: 'RUN --mount=type=cache,target=/c make',
      trigger: {
        kind: 'RUN',
        raw: 'RUN --mount=type=cache,target=/c make',
        flags: { mount: ['type=cache,target=/c'] },
        loc: { startLine: 2, endLine: 2 },
      },
    });
    expect(only('onbuild copy . /app')).toMatchObject({ trigger: { kind: 'COPY', sources: ['.'], dest: '/app' } });
  });

  it('HEALTHCHECK: NONE, shell and exec forms with options', () => {
    expect(only('HEALTHCHECK NONE')).toMatchObject({ kind: 'HEALTHCHECK', test: ['NONE'] });
    const health = only(
      'HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s --start-interval=500ms --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1',
    );
    expect(health).toEqual(
      expect.objectContaining({
        test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'],
        intervalNs: 30e9,
        timeoutNs: 90e9,
        startPeriodNs: 1.5e9,
        startIntervalNs: 500e6,
        retries: 3,
      }),
    );
    expect(only('healthcheck cmd ["/bin/check", "--fast"]')).toMatchObject({ test: ['CMD', '/bin/check', '--fast'] });
    expect(only('HEALTHCHECK --interval=0s CMD true')).toMatchObject({ intervalNs: 0 });
  });

  it('SHELL', () => {
    expect(only('SHELL ["powershell", "-command"]')).toMatchObject({ shell: ['powershell', '-command'] });
  });
});

describe('heredocs', () => {
  it('RUN <<EOF reads the body until the delimiter', () => {
    const [run, user] = body('RUN <<EOF\napt-get update\napt-get install -y curl\nEOF\nUSER x');
    expect(run).toMatchObject({
      raw: 'RUN <<EOF',
      command: { form: 'shell', args: ['<<EOF'] },
      heredocs: [{ name: 'EOF', content: 'apt-get update\napt-get install -y curl\n', expand: true, chomp: false }],
      loc: { startLine: 2, endLine: 5 },
    });
    expect(user).toMatchObject({ loc: { startLine: 6 } });
  });

  it('<<-EOF strips leading tabs from the body and the delimiter line', () => {
    expect(only('RUN <<-EOF\n\techo a\n\t\techo b\n  echo c\n\tEOF')).toMatchObject({
      heredocs: [{ name: 'EOF', content: 'echo a\necho b\n  echo c\n', chomp: true }],
      loc: { endLine: 6 },
    });
  });

  it('quoted delimiters disable expansion', () => {
    expect(only("RUN <<'EOF'\n$x\nEOF")).toMatchObject({ heredocs: [{ name: 'EOF', expand: false }] });
    expect(only('RUN <<"EOF"\n$x\nEOF')).toMatchObject({ heredocs: [{ name: 'EOF', expand: false }] });
    expect(only('RUN <<E"O"F\n$x\nEOF')).toMatchObject({ heredocs: [{ name: 'EOF', expand: false }] });
    expect(only('RUN <<-"EOF"\n\t$x\nEOF')).toMatchObject({ heredocs: [{ name: 'EOF', expand: false, chomp: true }] });
  });

  it('reads several heredocs in order, with a command around them', () => {
    expect(only('RUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB')).toMatchObject({
      command: { args: ['cat <<A > /a && cat <<B > /b'] },
      heredocs: [
        { name: 'A', content: 'first\n' },
        { name: 'B', content: 'second\n' },
      ],
      loc: { startLine: 2, endLine: 6 },
    });
  });

  it('keeps body lines verbatim: comments, blank lines, trailing escapes, instructions', () => {
    expect(only('RUN <<EOF\n# comment\n\nls \\\nRUN x\nEOF')).toMatchObject({
      heredocs: [{ content: '# comment\n\nls \\\nRUN x\n' }],
    });
  });

  it('ends the body at the delimiter even after a line ending in the escape character', () => {
    const [run, user] = body('RUN <<EOF\napt-get install \\\nEOF\nUSER x');
    expect(run).toMatchObject({ heredocs: [{ content: 'apt-get install \\\n' }], loc: { endLine: 4 } });
    expect(user).toMatchObject({ kind: 'USER', loc: { startLine: 5 } });
  });

  it('accepts quoted delimiters containing spaces', () => {
    expect(only('RUN cat <<"END OF"\nx\nEND OF')).toMatchObject({ heredocs: [{ name: 'END OF', expand: false }] });
  });

  it('accepts a file descriptor before the operator', () => {
    expect(only('RUN cat 3<<EOF\nx\nEOF')).toMatchObject({ heredocs: [{ name: 'EOF', content: 'x\n' }] });
  });

  it('keeps CRLF line endings in the body', () => {
    expect(parse('FROM scratch\r\nRUN <<EOF\r\na\r\nEOF\r\n').stages[0]!.instructions[0]).toMatchObject({
      heredocs: [{ content: 'a\r\n' }],
    });
  });

  it('reads the heredoc after a continued instruction line', () => {
    expect(only('RUN --mount=type=cache,target=/c \\\n  <<EOF\nmake\nEOF')).toMatchObject({
      heredocs: [{ name: 'EOF', content: 'make\n' }],
      loc: { startLine: 2, endLine: 5 },
    });
  });

  it('COPY and ADD take heredocs as inline sources', () => {
    expect(only('COPY <<A <<B ./c /dst/\nhello\nA\nworld\nB')).toMatchObject({
      sources: ['./c'],
      dest: '/dst/',
      heredocs: [
        { name: 'A', content: 'hello\n', expand: true },
        { name: 'B', content: 'world\n', expand: true },
      ],
    });
    expect(only('ADD --chmod=755 <<-"EOF" /run.sh\n\t#!/bin/sh\nEOF')).toMatchObject({
      sources: [],
      heredocs: [{ name: 'EOF', content: '#!/bin/sh\n', expand: false, chomp: true }],
    });
  });

  it('delimiters match exactly, so a body may contain other delimiters', () => {
    expect(only('COPY <<X <<Y /dest\nY\nX\nX\nY')).toMatchObject({
      heredocs: [
        { name: 'X', content: 'Y\n' },
        { name: 'Y', content: 'X\n' },
      ],
    });
  });

  it('ONBUILD RUN can carry a heredoc, appended to its expression', () => {
    expect(only('ONBUILD RUN <<EOF\necho hi\nEOF')).toMatchObject({
      expression: 'RUN <<EOF\necho hi\nEOF',
      trigger: { kind: 'RUN', heredocs: [{ name: 'EOF', content: 'echo hi\n' }] },
      loc: { startLine: 2, endLine: 4 },
    });
  });

  it('works with the backtick escape directive', () => {
    const dockerfile = parse('# escape=`\nFROM scratch\nRUN <<EOF\necho `\nEOF\n');
    expect(dockerfile.stages[0]!.instructions[0]).toMatchObject({ heredocs: [{ content: 'echo `\n' }] });
  });

  it('is not recognised in JSON form, in quotes, or for other instructions', () => {
    expect(body('RUN ["<<EOF"]\nUSER x')).toMatchObject([{ heredocs: [] }, { kind: 'USER' }]);
    expect(body('RUN echo "<<EOF"\nUSER x')).toMatchObject([{ heredocs: [] }, { kind: 'USER' }]);
    expect(parseError('FROM scratch\nCMD <<EOF\nhello\nEOF')).toMatchObject({
      line: 3,
      reason: 'unknown instruction: HELLO',
    });
  });
});

describe('errors', () => {
  it('unknown instruction, with a BuildKit-style frame', () => {
    const error = parseError('FROM scratch\nADD x /\nFROOM y\n');
    expect(error).toMatchObject({
      file: 'Dockerfile',
      line: 3,
      endLine: 3,
      column: 1,
      reason: 'unknown instruction: FROOM',
      message: 'Dockerfile:3: unknown instruction: FROOM',
    });
    expect(error.frame()).toBe(
      [
        'Dockerfile:3',
        '--------------------',
        '   1 | FROM scratch',
        '   2 | ADD x /',
        '>>>3 | FROOM y',
        '--------------------',
        'ERROR: unknown instruction: FROOM',
      ].join('\n'),
    );
    expect(formatDockerfileError(error)).toBe(error.frame());
  });

  it('frames show two lines of context and mark every line of the instruction', () => {
    const lines = ['FROM a', 'RUN 1', 'RUN 2', 'RUN 3', 'COPY \\', '  onlyone', 'RUN 4', 'RUN 5', 'RUN 6', 'RUN 7'];
    const error = parseError(lines.join('\n'));
    expect(error).toMatchObject({ line: 5, endLine: 6 });
    expect(error.frame()).toBe(
      [
        'Dockerfile:5',
        '--------------------',
        '   3 | RUN 2',
        '   4 | RUN 3',
        '>>>5 | COPY \\',
        '>>>6 |   onlyone',
        '   7 | RUN 4',
        '   8 | RUN 5',
        '--------------------',
        'ERROR: COPY requires at least two arguments, but only one was provided. Destination could not be determined.',
      ].join('\n'),
    );
  });

  it('frames align line numbers of different widths and clip context at the end', () => {
    const error = parseError(['FROM a', ...Array.from({ length: 8 }, (_, i) => `RUN ${i}`), 'BAD x', 'RUN end'].join('\n'));
    expect(error.frame().split('\n').slice(2, 6)).toEqual(['    8 | RUN 6', '    9 | RUN 7', '>>>10 | BAD x', '   11 | RUN end']);
  });

  it('formats other errors without a frame', () => {
    expect(formatDockerfileError(new Error('boom'))).toBe('ERROR: boom');
    expect(formatDockerfileError('text')).toBe('ERROR: text');
    const bare = new DockerfileError('bad', { file: 'a/Dockerfile', line: 2 });
    expect(formatDockerfileError(bare)).toBe('a/Dockerfile:2\nERROR: bad');
    expect(formatDockerfileError(bare, ['x', 'y'])).toContain('>>>2 | y');
  });

  it('empty Dockerfile', () => {
    expect(parseError('')).toMatchObject({ line: 1, reason: 'file with no instructions' });
    expect(parseError('# just a comment\n\n   \n')).toMatchObject({ line: 3, reason: 'file with no instructions' });
  });

  it('instructions before the first FROM', () => {
    expect(parseError('RUN echo hi\nFROM scratch')).toMatchObject({
      line: 1,
      reason: 'no build stage in current context: RUN before the first FROM (only ARG may precede FROM)',
    });
    expect(parseError('ARG A\n\nENV B=1\nFROM scratch')).toMatchObject({ line: 3 });
    expect(parseError('ARG A\nARG B')).toMatchObject({
      line: 2,
      reason: 'no build stage: the Dockerfile has no FROM instruction',
    });
  });

  it.each([
    ['COPY --foo=bar a b', 'unknown flag: --foo'],
    ['RUN --mount=x --chown=1 true', 'unknown flag: --chown'],
    ['ENV --x=1 A=b', 'unknown flag: --x'],
    ['CMD --help', 'unknown flag: --help'],
    ['ADD --from=x a b', 'unknown flag: --from'],
    ['COPY --chown=a --chown=b x y', 'duplicate flag specified: --chown'],
    ['COPY --chown x y', 'missing a value on flag: --chown'],
    ['COPY --link= x y', 'missing a value on flag: --link'],
    ['COPY --link=maybe x y', 'expecting boolean value for flag --link, not: maybe'],
    ['ONBUILD --x RUN y', 'unknown flag: --x'],
  ])('bad flag: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n${instruction}`)).toMatchObject({ line: 2, reason });
  });

  it.each([
    ['RUN', 'RUN requires at least one argument'],
    ['RUN []', 'RUN requires at least one argument'],
    ['CMD', 'CMD requires at least one argument'],
    ['ENTRYPOINT', 'ENTRYPOINT requires at least one argument'],
    ['COPY onlyone', 'COPY requires at least two arguments, but only one was provided. Destination could not be determined.'],
    ['ADD', 'ADD requires at least two arguments, but only one was provided. Destination could not be determined.'],
    ['EXPOSE', 'EXPOSE requires at least one argument'],
    ['VOLUME', 'VOLUME requires at least one argument'],
    ['VOLUME ["/a", " "]', 'VOLUME specified can not be an empty string'],
    ['USER', 'USER requires exactly one argument'],
    ['WORKDIR', 'WORKDIR requires exactly one argument'],
    ['STOPSIGNAL', 'STOPSIGNAL requires exactly one argument'],
    ['MAINTAINER', 'MAINTAINER requires exactly one argument'],
    ['ENV', 'ENV requires at least one argument'],
    ['LABEL', 'LABEL requires at least one argument'],
    ['ARG', 'ARG requires at least one argument'],
    ['ONBUILD', 'ONBUILD requires at least one argument'],
    ['HEALTHCHECK', 'HEALTHCHECK requires at least one argument'],
    ['SHELL', 'SHELL requires at least one argument'],
    ['SHELL []', 'SHELL requires at least one argument'],
  ])('missing arguments: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n\n${instruction}\n`)).toMatchObject({ line: 3, reason });
  });

  it.each([
    ['ENV FOO', 'ENV must have two arguments'],
    ['LABEL version', 'LABEL must have two arguments'],
    ['ENV A=1 B', 'Syntax error - can\'t find = in "B". Must be of the form: name=value'],
    ['ENV =x', 'ENV names can not be blank'],
    ['LABEL a=1 =2', 'LABEL names can not be blank'],
    ['ARG A =x', 'ARG names can not be blank'],
  ])('invalid ARG/ENV/LABEL syntax: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n${instruction}`)).toMatchObject({ line: 2, reason });
  });

  it.each([
    ['SHELL /bin/sh -c', 'SHELL requires the arguments to be in JSON form'],
    ['SHELL ["/bin/sh", "-c"', 'SHELL requires the arguments to be in JSON form'],
    ['CMD ["a", 1]', 'when using JSON array syntax, arrays must be comprised of strings only'],
    ['RUN [null]', 'when using JSON array syntax, arrays must be comprised of strings only'],
    ['COPY ["a", {}]', 'when using JSON array syntax, arrays must be comprised of strings only'],
    ['HEALTHCHECK CMD ["a", true]', 'when using JSON array syntax, arrays must be comprised of strings only'],
  ])('JSON form errors: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n${instruction}`)).toMatchObject({ line: 2, reason });
  });

  it.each([
    ['HEALTHCHECK NONE now', 'HEALTHCHECK NONE takes no arguments'],
    ['HEALTHCHECK PING x', 'Unknown type "PING" in HEALTHCHECK (try CMD)'],
    ['HEALTHCHECK CMD', 'Missing command after HEALTHCHECK CMD'],
    ['HEALTHCHECK CMD []', 'Missing command after HEALTHCHECK CMD'],
    ['HEALTHCHECK --interval=soon CMD x', 'invalid duration for --interval: "soon"'],
    ['HEALTHCHECK --timeout=10 CMD x', 'invalid duration for --timeout: "10"'],
    ['HEALTHCHECK --start-period=10us CMD x', 'Interval "start-period" cannot be less than 1ms'],
    ['HEALTHCHECK --retries=-1 CMD x', '--retries cannot be negative (-1)'],
    ['HEALTHCHECK --retries=three CMD x', 'invalid value for --retries: "three"'],
    ['HEALTHCHECK --nope=1 CMD x', 'unknown flag: --nope'],
  ])('HEALTHCHECK errors: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n${instruction}`)).toMatchObject({ line: 2, reason });
  });

  it.each([
    ['ONBUILD ONBUILD RUN x', "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"],
    ['ONBUILD FROM x', "FROM isn't allowed as an ONBUILD trigger"],
    ['ONBUILD maintainer x', "MAINTAINER isn't allowed as an ONBUILD trigger"],
    ['ONBUILD FOO x', 'unknown instruction: FOO'],
    ['ONBUILD RUN', 'RUN requires at least one argument'],
  ])('ONBUILD errors: %s', (instruction, reason) => {
    expect(parseError(`FROM scratch\n${instruction}`)).toMatchObject({ line: 2, reason });
  });

  it.each([
    ['FROM', 'FROM requires either one or three arguments'],
    ['FROM a b', 'FROM requires either one or three arguments'],
    ['FROM a AS b c', 'FROM requires either one or three arguments'],
    ['FROM a AS 1st', 'invalid name for build stage: "1st", name can\'t start with a number or contain symbols'],
    ['FROM a AS my$stage', 'invalid name for build stage: "my$stage", name can\'t start with a number or contain symbols'],
    ['FROM --platform a', 'missing a value on flag: --platform'],
  ])('FROM errors: %s', (instruction, reason) => {
    expect(parseError(`${instruction}\n`)).toMatchObject({ line: 1, reason });
  });

  it('duplicate stage names, case-insensitively, at the second FROM', () => {
    expect(parseError('FROM a AS build\nRUN x\nFROM b as BUILD\n')).toMatchObject({
      line: 3,
      reason: 'duplicate stage name "build"',
    });
  });

  it('heredoc errors', () => {
    expect(parseError('FROM a\nRUN <<EOF\nline\n')).toMatchObject({
      line: 2,
      endLine: 3,
      reason: 'unterminated heredoc EOF',
    });
    expect(parseError('FROM a\nCOPY <<A <<B /x\na\nA\n')).toMatchObject({ line: 2, reason: 'unterminated heredoc B' });
    expect(parseError('FROM a\nCOPY x <<EOF\nEOF\n')).toMatchObject({
      line: 2,
      reason: 'COPY cannot accept a heredoc as a destination',
    });
  });

  it('errors inside continued instructions point at the first line', () => {
    expect(parseError('FROM a\nRUN \\\n  --foo=1 \\\n  true')).toMatchObject({
      line: 2,
      endLine: 4,
      reason: 'unknown flag: --foo',
    });
  });
});
