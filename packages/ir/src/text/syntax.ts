// Spelling rules shared by the printer and the lexer: which names print bare and how the others are quoted.

/** A bare word: identifiers, optionally joined by '.' or '-' (domains like `com.microsoft`, `bottom-right`). */
export const WORD = /^[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z_][A-Za-z0-9_]*)*$/;
/** A bare value name after '%': ONNX names like `x`, `0`, `layer.0` print without quotes. */
export const VALUE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.]*$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const quote = (s: string): string => JSON.stringify(s);

/** A graph, op, domain or attribute name: bare when it is a word, else JSON-quoted. */
export function printName(name: string): string {
  return WORD.test(name) ? name : quote(name);
}

/** A value reference: `%name` or `%"quoted name"`. */
export function printValueName(name: string): string {
  return VALUE_NAME.test(name) ? `%${name}` : `%${quote(name)}`;
}

/** An op name: bare only when it is a plain identifier. */
export function printOpName(name: string): string {
  return IDENT.test(name) ? name : quote(name);
}
