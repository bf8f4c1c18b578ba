// Everything the command prints goes through here: control characters a model or a path may hold (ESC, BEL,
// NUL, the C1 range...) are escaped so a terminal shows them instead of obeying them, and a line longer than
// MAX_LINE is cut (a name or a shape from a hostile model must not make a message of megabytes).

/** The longest line printed; the rest is replaced by a count. */
export const MAX_LINE = 2000;

// C0 controls but newline, DEL, C1 controls; U+2028/2029 (line breaks to some readers)
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;

const escapeChar = (c: string): string => {
  const code = c.charCodeAt(0);
  if (c === '\t') return '\\t';
  if (c === '\r') return '\\r';
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** The text with every control character but newline written as an escape (`\x1b`, `\x00`, `\t`). */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

/** One line cut to MAX_LINE characters, saying how many were left out. */
function cutLine(line: string): string {
  return line.length <= MAX_LINE ? line : `${line.slice(0, MAX_LINE)}... (${line.length - MAX_LINE} more characters)`;
}

/** Text as printed to a terminal: control characters escaped, long lines cut. */
export function printable(text: string): string {
  return text.split('\n').map((line) => cutLine(escapeControls(line))).join('\n');
}

/** JSON text with the controls JSON.stringify leaves raw (DEL, C1, U+2028/2029) as \u escapes; still valid JSON. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Writes a result to stdout (text escaped and cut; JSON is left whole). */
export function printResult(text: string): void {
  process.stdout.write(`${printable(text)}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${printableJson(value)}\n`);
}

/** Writes a message to stderr, prefixed with the command's name. */
export function printError(message: string): void {
  process.stderr.write(`attnopt: ${printable(message)}\n`);
}
