import { describe, expect, it } from 'vitest';
import { DockerfileError } from '../../src/dockerfile/errors.js';
import { ExpansionError, expandInstruction, expandWord, expandWords } from '../../src/dockerfile/expand.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import type { Instruction } from '../../src/dockerfile/types.js';

const ENV: Record<string, string> = {
  FOO: 'foo',
  BAR: 'bar',
  EMPTY: '',
  SPACED: 'a b',
  x: 'X',
  y: 'Y',
  x_y: 'XY',
  NESTED: '$FOO',
  QUOTE: '"',
  UNI: '日本',
  FILE: '/home/tux/book.tar.bz2',
  STAR: '**',
  '10': 'ten-set',
};

interface Case {
  input: string;
  /** expandWord result, or the error reason. */
  word: string | { error: string };
  /** expandWords result, when the case is about splitting. */
  words?: string[];
  escape?: string;
}

const err = (error: string) => ({ error });

// One table for all expansion rules. Expected values follow BuildKit's shell lexer.
const cases: Case[] = [
  // plain variables
  { input: '', word: '' },
  { input: 'hello', word: 'hello' },
  { input: '$FOO', word: 'foo' },
  { input: '${FOO}', word: 'foo' },
  { input: '$FOO$BAR', word: 'foobar' },
  { input: '$x$y', word: 'XY' },
  { input: '${x}_y', word: 'X_y' },
  { input: '$x_y', word: 'XY' },
  { input: '$UNSET', word: '' },
  { input: '${UNSET}', word: '' },
  { input: 'a${UNSET}-b', word: 'a-b' },
  { input: '$FOO.txt', word: 'foo.txt' },
  { input: '$FOO-bar', word: 'foo-bar' },
  { input: '/usr/$FOO/bin', word: '/usr/foo/bin' },
  { input: 'pre${FOO}post', word: 'prefoopost' },
  { input: '$FOO:$BAR', word: 'foo:bar' },
  { input: '${FOO}${BAR}', word: 'foobar' },
  { input: '$NESTED', word: '$FOO' },
  { input: '$QUOTE', word: '"' },
  { input: '"$QUOTE"', word: '"' },
  { input: '$UNI', word: '日本' },
  { input: '${UNI}x', word: '日本x' },
  { input: '$日本', word: '' },
  // lone and odd dollars
  { input: '$', word: '$' },
  { input: 'a$', word: 'a$' },
  { input: '$ a', word: '$ a' },
  { input: '$}', word: '$}' },
  { input: '$ {FOO}', word: '$ {FOO}' },
  { input: '$/x', word: '$/x' },
  { input: '$$', word: '' },
  { input: '$1', word: '' },
  { input: '$1x', word: 'x' },
  { input: '$12abc', word: 'abc' },
  { input: '$10', word: 'ten-set' },
  { input: '${10:-ten}', word: 'ten-set' },
  { input: '${1}', word: '' },
  { input: '$@', word: '' },
  { input: '$?x', word: 'x' },
  { input: '$-', word: '' },
  { input: '${#}', word: '' },
  // braces: syntax errors
  { input: '${}', word: err('syntax error: bad substitution') },
  { input: '${:}', word: err('syntax error: bad substitution') },
  { input: '${:-x}', word: err('syntax error: bad substitution') },
  { input: '${{FOO}}', word: err('syntax error: bad substitution') },
  { input: '${', word: err("syntax error: missing '}'") },
  { input: '${FOO', word: err("syntax error: missing '}'") },
  { input: '${FOO:-abc', word: err("syntax error: missing '}'") },
  { input: '${FOO=x}', word: err('unsupported modifier (=) in substitution') },
  { input: '${FOO:x}', word: err('unsupported modifier (:x) in substitution') },
  { input: '${FOO!}', word: err('unsupported modifier (!) in substitution') },
  { input: '${FOO bar}', word: err('unsupported modifier ( ) in substitution') },
  { input: '${FOO}}', word: 'foo}' },
  { input: '}', word: '}' },
  { input: '{}', word: '{}' },
  // :- and -
  { input: '${FOO:-def}', word: 'foo' },
  { input: '${UNSET:-def}', word: 'def' },
  { input: '${EMPTY:-def}', word: 'def' },
  { input: '${FOO-def}', word: 'foo' },
  { input: '${UNSET-def}', word: 'def' },
  { input: '${EMPTY-def}', word: '' },
  { input: '${UNSET:-}', word: '' },
  { input: '${FOO:-}', word: 'foo' },
  { input: '${UNSET:-a b}', word: 'a b' },
  { input: '${UNSET:-"a b"}', word: 'a b' },
  { input: "${UNSET:-'$FOO'}", word: '$FOO' },
  { input: '${UNSET:-"$FOO"}', word: 'foo' },
  { input: `\${UNSET:-"$FOO"'$BAR'}`, word: 'foo$BAR' },
  { input: '${UNSET:-\\}}', word: '}' },
  { input: '${UNSET:-a\\}b}', word: 'a}b' },
  { input: "${UNSET:-'}'}", word: '}' },
  { input: '${UNSET:-"}"}', word: '}' },
  { input: '${FOO:-a}b}', word: 'foob}' },
  // nested
  { input: '${UNSET:-$FOO}', word: 'foo' },
  { input: '${UNSET:-${BAR}}', word: 'bar' },
  { input: '${UNSET:-${UNSET2:-deep}}', word: 'deep' },
  { input: '${FOO:-${BAR:-${UNSET}}}', word: 'foo' },
  { input: '${UNSET:-${UNSET2:+x}y}', word: 'y' },
  { input: '${UNSET:-$EMPTY}', word: '' },
  { input: '${UNSET:-${FOO}/${BAR}}', word: 'foo/bar' },
  { input: '${UNSET:-${FOO', word: err("syntax error: missing '}'") },
  // :+ and +
  { input: '${FOO:+alt}', word: 'alt' },
  { input: '${EMPTY:+alt}', word: '' },
  { input: '${UNSET:+alt}', word: '' },
  { input: '${FOO+alt}', word: 'alt' },
  { input: '${EMPTY+alt}', word: 'alt' },
  { input: '${UNSET+alt}', word: '' },
  { input: '${FOO:+${BAR}x}', word: 'barx' },
  { input: '${FOO:+-$FOO}', word: '-foo' },
  // :? and ?
  { input: '${FOO?}', word: 'foo' },
  { input: '${FOO:?msg}', word: 'foo' },
  { input: '${EMPTY?msg}', word: '' },
  { input: '${UNSET?}', word: err('UNSET: is not allowed to be unset') },
  { input: '${UNSET?custom msg}', word: err('UNSET: custom msg') },
  { input: '${UNSET:?}', word: err('UNSET: is not allowed to be unset') },
  { input: '${EMPTY:?}', word: err('EMPTY: is not allowed to be empty') },
  { input: '${EMPTY:?need $FOO}', word: err('EMPTY: need foo') },
  // pattern removal and replacement
  { input: '${FILE#*/}', word: 'home/tux/book.tar.bz2' },
  { input: '${FILE##*/}', word: 'book.tar.bz2' },
  { input: '${FILE%.*}', word: '/home/tux/book.tar' },
  { input: '${FILE%%.*}', word: '/home/tux/book' },
  { input: '${FILE#/home}', word: '/tux/book.tar.bz2' },
  { input: '${FILE%nomatch}', word: '/home/tux/book.tar.bz2' },
  { input: '${FOO#?}', word: 'oo' },
  { input: '${FOO%?}', word: 'fo' },
  { input: '${FOO#}', word: 'foo' },
  { input: '${STAR#\\*}', word: '*' },
  { input: '${UNSET#x}', word: '' },
  { input: '${FOO#\\x}', word: err("invalid pattern (\\x) in substitution: invalid escape '\\x'") },
  { input: '${FILE/tux/wilber}', word: '/home/wilber/book.tar.bz2' },
  { input: '${FILE//o/0}', word: '/h0me/tux/b00k.tar.bz2' },
  { input: '${FILE/\\//:}', word: ':home/tux/book.tar.bz2' },
  { input: '${FILE//\\//:}', word: ':home:tux:book.tar.bz2' },
  { input: '${FOO/*/x}', word: 'x' },
  { input: '${FOO/o/$BAR}', word: 'fbaro' },
  { input: '${FOO/o/$&}', word: 'f$&o' },
  { input: '${FOO/o}', word: err("syntax error: missing '/' in ${}") },
  // single and double quotes
  { input: "'$FOO'", word: '$FOO' },
  { input: '"$FOO"', word: 'foo' },
  { input: `"'$FOO'"`, word: "'foo'" },
  { input: `'"$FOO"'`, word: '"$FOO"' },
  { input: '"a b"', word: 'a b' },
  { input: "'a b'", word: 'a b' },
  { input: 'a"b"c', word: 'abc' },
  { input: "a'b'c", word: 'abc' },
  { input: '""', word: '' },
  { input: "''", word: '' },
  { input: `'it'"'"'s'`, word: "it's" },
  { input: '"${FOO}bar"', word: 'foobar' },
  { input: '"${UNSET:-x y}"', word: 'x y' },
  { input: '"$"', word: '$' },
  { input: '"a$"', word: 'a$' },
  { input: "'${}'", word: '${}' },
  { input: '"${}"', word: err('syntax error: bad substitution') },
  { input: '"', word: err('unexpected end of statement while looking for matching double-quote') },
  { input: "'", word: err('unexpected end of statement while looking for matching single-quote') },
  { input: '"abc', word: err('unexpected end of statement while looking for matching double-quote') },
  { input: "'abc", word: err('unexpected end of statement while looking for matching single-quote') },
  { input: '"abc\\"', word: err('unexpected end of statement while looking for matching double-quote') },
  // the escape character (backslash)
  { input: '\\$FOO', word: '$FOO' },
  { input: '\\${FOO}', word: '${FOO}' },
  { input: '\\\\$FOO', word: '\\foo' },
  { input: '\\\\\\$FOO', word: '\\$FOO' },
  { input: '$FOO\\$BAR', word: 'foo$BAR' },
  { input: 'a\\ b', word: 'a b' },
  { input: '\\a', word: 'a' },
  { input: 'abc\\', word: 'abc' },
  { input: '\\"', word: '"' },
  { input: "\\'", word: "'" },
  { input: "\\'$FOO\\'", word: "'foo'" },
  { input: 'C:\\path', word: 'C:path' },
  { input: '\\\\', word: '\\' },
  { input: "'\\\\'", word: '\\\\' },
  { input: "'\\$FOO'", word: '\\$FOO' },
  { input: '"\\"quoted\\""', word: '"quoted"' },
  { input: '"a\\b"', word: 'a\\b' },
  { input: '"a\\\\b"', word: 'a\\b' },
  { input: '"\\$FOO"', word: '$FOO' },
  // the escape character (backtick, `# escape=\``)
  { input: '`$FOO', word: '$FOO', escape: '`' },
  { input: '`${FOO}', word: '${FOO}', escape: '`' },
  { input: 'C:\\path', word: 'C:\\path', escape: '`' },
  { input: '\\$FOO', word: '\\foo', escape: '`' },
  { input: 'a` b', word: 'a b', escape: '`' },
  { input: '"a`"b"', word: 'a"b', escape: '`' },
  { input: '"``"', word: '`', escape: '`' },
  { input: '"`x"', word: '`x', escape: '`' },
  { input: 'ab`', word: 'ab', escape: '`' },
  { input: '${UNSET:-`}}', word: '}', escape: '`' },
  // whitespace is kept by expandWord
  { input: '  a  b  ', word: '  a  b  ' },
  { input: 'a\tb', word: 'a\tb' },
  // word splitting (expandWords)
  { input: 'a b c', word: 'a b c', words: ['a', 'b', 'c'] },
  { input: '  a   b  ', word: '  a   b  ', words: ['a', 'b'] },
  { input: '"a b" c', word: 'a b c', words: ['a b', 'c'] },
  { input: "'a b' c", word: 'a b c', words: ['a b', 'c'] },
  { input: 'a\\ b c', word: 'a b c', words: ['a b', 'c'] },
  { input: '$SPACED', word: 'a b', words: ['a', 'b'] },
  { input: '"$SPACED"', word: 'a b', words: ['a b'] },
  { input: "'$SPACED'", word: '$SPACED', words: ['$SPACED'] },
  { input: '${UNSET:-x y}', word: 'x y', words: ['x', 'y'] },
  { input: '""', word: '', words: [] },
  { input: 'a "" b', word: 'a  b', words: ['a', 'b'] },
  { input: '$EMPTY', word: '', words: [] },
  { input: 'x$SPACED', word: 'xa b', words: ['xa', 'b'] },
  { input: '"a b"$SPACED', word: 'a ba b', words: ['a ba', 'b'] },
  { input: 'a\tb\nc', word: 'a\tb\nc', words: ['a', 'b', 'c'] },
  { input: '80/tcp 443', word: '80/tcp 443', words: ['80/tcp', '443'] },
  { input: 'a` b c', word: 'a b c', words: ['a b', 'c'], escape: '`' },
];

describe('expandWord / expandWords', () => {
  it('has a table of at least 150 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
  });

  it.each(cases)('$input (escape $escape)', ({ input, word, words, escape }) => {
    if (typeof word === 'string') {
      expect(expandWord(input, ENV, escape)).toBe(word);
      if (words) expect(expandWords(input, ENV, escape)).toEqual(words);
      return;
    }
    let caught: unknown;
    try {
      expandWord(input, ENV, escape);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ExpansionError);
    expect((caught as ExpansionError).reason).toBe(word.error);
    expect((caught as ExpansionError).message).toBe(`failed to process "${input}": ${word.error}`);
  });

  it('accepts a Map as well as a record', () => {
    expect(expandWord('${A}-$B', new Map([['A', '1'], ['B', '2']]))).toBe('1-2');
  });

  it('does not read inherited object properties as variables', () => {
    expect(expandWord('$constructor${toString}', {})).toBe('');
  });

  it('bounds nesting depth instead of overflowing the stack', () => {
    const deep = '${A:-'.repeat(5000) + 'x' + '}'.repeat(5000);
    expect(() => expandWord(deep, {})).toThrow(ExpansionError);
    const fine = '${A:-'.repeat(50) + 'x' + '}'.repeat(50);
    expect(expandWord(fine, {})).toBe('x');
  });
});

describe('expandInstruction', () => {
  const parse = (body: string) => parseDockerfile(`FROM scratch\n${body}\n`, 'Dockerfile');
  const first = (body: string): Instruction => {
    const [instruction] = parse(body).stages[0]?.instructions ?? [];
    if (!instruction) throw new Error('no instruction');
    return instruction;
  };
  const env = { FOO: 'foo', DIR: '/app', SPACED: 'a b', USER: 'me' };

  it('expands FROM image and platform', () => {
    const { from } = parseDockerfile('FROM --platform=$P ${IMG:-alpine}:$V AS base\n', 'Dockerfile').stages[0]!;
    expect(expandInstruction(from, { P: 'linux/arm64', V: '3.19' })).toMatchObject({
      image: 'alpine:3.19',
      platform: 'linux/arm64',
      stageName: 'base',
    });
  });

  it('expands COPY sources, dest and flags, one word each', () => {
    const copy = first('COPY --chown=$USER:$USER --from=${STAGE:-build} $SPACED "$DIR/x y" ${DIR}/');
    expect(expandInstruction(copy, env)).toMatchObject({
      sources: ['a b', '/app/x y'],
      dest: '/app/',
      flags: { chown: ['me:me'], from: ['build'] },
    });
  });

  it('expands ADD the same way', () => {
    const add = first('ADD --checksum=$SUM $DIR/a.tgz /dst');
    expect(expandInstruction(add, { ...env, SUM: 'sha256:00' })).toMatchObject({
      sources: ['/app/a.tgz'],
      dest: '/dst',
      flags: { checksum: ['sha256:00'] },
    });
  });

  it('expands unquoted COPY heredoc bodies without removing quotes, and keeps quoted ones', () => {
    const copy = first('COPY <<A <<"B" /dst/\necho "$FOO" \\$FOO\nA\necho "$FOO"\nB');
    const expanded = expandInstruction(copy, env);
    expect(expanded.kind === 'COPY' && expanded.heredocs).toEqual([
      { name: 'A', content: 'echo "foo" $FOO\n', expand: true, chomp: false },
      { name: 'B', content: 'echo "$FOO"\n', expand: false, chomp: false },
    ]);
  });

  it('expands ENV and LABEL keys and values against the environment before the instruction', () => {
    expect(expandInstruction(first('ENV A=$FOO B="$SPACED x" C=$A'), env)).toMatchObject({
      env: [
        { key: 'A', value: 'foo' },
        { key: 'B', value: 'a b x' },
        { key: 'C', value: '' },
      ],
    });
    expect(expandInstruction(first('LABEL "$FOO.key"=${DIR}'), env)).toMatchObject({
      labels: [{ key: 'foo.key', value: '/app' }],
    });
    expect(expandInstruction(first('ENV LEGACY "$FOO bar"'), env)).toMatchObject({
      env: [{ key: 'LEGACY', value: 'foo bar' }],
    });
  });

  it('splits EXPOSE words after expansion', () => {
    expect(expandInstruction(first('EXPOSE $PORTS 8080/udp'), { PORTS: '80 443/tcp' })).toMatchObject({
      ports: ['80', '443/tcp', '8080/udp'],
    });
  });

  it('expands VOLUME, USER, WORKDIR, STOPSIGNAL and ARG defaults', () => {
    expect(expandInstruction(first('VOLUME ["$DIR/data", "/logs"]'), env)).toMatchObject({ paths: ['/app/data', '/logs'] });
    expect(expandInstruction(first('VOLUME $DIR /x'), env)).toMatchObject({ paths: ['/app', '/x'] });
    expect(expandInstruction(first('USER ${USER}:grp'), env)).toMatchObject({ user: 'me:grp' });
    expect(expandInstruction(first('WORKDIR $DIR/src'), env)).toMatchObject({ path: '/app/src' });
    expect(expandInstruction(first('STOPSIGNAL ${SIG:-SIGTERM}'), env)).toMatchObject({ signal: 'SIGTERM' });
    expect(expandInstruction(first('ARG A=$DIR B'), env)).toMatchObject({
      args: [{ name: 'A', default: '/app' }, { name: 'B' }],
    });
  });

  it('expands RUN --mount values only, never the command', () => {
    const run = first('RUN --mount=type=cache,target=$DIR --network=$NET echo $FOO');
    expect(expandInstruction(run, { ...env, NET: 'none' })).toMatchObject({
      flags: { mount: ['type=cache,target=/app'], network: ['$NET'] },
      command: { form: 'shell', args: ['echo $FOO'] },
    });
  });

  it.each([
    'CMD echo $FOO',
    'ENTRYPOINT ["$FOO"]',
    'SHELL ["/bin/$FOO", "-c"]',
    'HEALTHCHECK CMD curl $FOO',
    'MAINTAINER $FOO',
    'ONBUILD COPY $FOO /x',
  ])('leaves %s unexpanded', (body) => {
    const instruction = first(body);
    const expanded = expandInstruction(instruction, env);
    expect(expanded).toEqual(instruction);
    expect(expanded).not.toBe(instruction);
  });

  it('reports expansion errors as DockerfileError at the instruction', () => {
    const dockerfile = parse('RUN true\nWORKDIR ${}\n');
    const workdir = dockerfile.stages[0]!.instructions[1]!;
    let caught: unknown;
    try {
      expandInstruction(workdir, env);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DockerfileError);
    expect(caught).toMatchObject({ line: 3, reason: 'failed to process "${}": syntax error: bad substitution' });
    expect((caught as DockerfileError).frame(dockerfile.lines)).toContain('>>>3 | WORKDIR ${}');
  });

  it('uses the escape character it is given', () => {
    const dockerfile = parseDockerfile('# escape=`\nFROM scratch\nWORKDIR C:\\dir\\`$FOO\n', 'Dockerfile');
    const workdir = dockerfile.stages[0]!.instructions[0]!;
    expect(expandInstruction(workdir, env, dockerfile.escape)).toMatchObject({ path: 'C:\\dir\\$FOO' });
  });
});
