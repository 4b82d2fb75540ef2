// A minimal terminal for tests: applies what the tty renderer writes (text wrapping at the width as
// a terminal's does, \n, \r, cursor up, erase to the end of the screen; colours and cursor
// visibility ignored) and returns the lines a user would see. Anything else the renderer might
// emit is an error, so a stray escape fails.
export function screenOf(output: string, columns: number): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string): void => {
    if (col >= columns) {
      row++;
      col = 0;
      if (lines.length <= row) lines.push('');
    }
    const line = lines[row].padEnd(col);
    lines[row] = line.slice(0, col) + ch + line.slice(col + 1);
    col++;
  };
  // eslint-disable-next-line no-control-regex
  const token = /\x1b\[(\??)(\d*)([A-Za-z])|\n|\r|[^\x1b\n\r]/gu;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = token.exec(output))) {
    if (match.index !== consumed) throw new Error(`unexpected bytes at ${consumed}: ${JSON.stringify(output.slice(consumed, consumed + 10))}`);
    consumed = token.lastIndex;
    const [text, privateMode, count, command] = match;
    if (text === '\n') {
      row++;
      col = 0;
      if (lines.length <= row) lines.push('');
    } else if (text === '\r') {
      col = 0;
    } else if (command === 'A') {
      row = Math.max(0, row - Number(count || 1));
    } else if (command === 'J' && (count === '' || count === '0')) {
      lines[row] = lines[row].slice(0, col);
      lines.splice(row + 1);
    } else if (command === 'm' || (privateMode === '?' && count === '25' && (command === 'l' || command === 'h'))) {
      // colours, cursor visibility: nothing on the screen
    } else if (command) {
      throw new Error(`unexpected escape ${JSON.stringify(text)}`);
    } else {
      put(text);
    }
  }
  if (consumed !== output.length) throw new Error(`unexpected bytes at ${consumed}`);
  return lines.map((l) => l.trimEnd());
}
