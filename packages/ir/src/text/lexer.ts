// Tokens of the IR text form: words, value references, numbers, JSON strings and punctuation, with positions.

export type TokenKind = 'word' | 'value' | 'number' | 'string' | 'punct' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The source text of the token. */
  readonly text: string;
  /** Decoded content: the string of a string token, the name of a value reference, else the text. */
  readonly value: string;
  readonly line: number;
  readonly col: number;
}

const WORD = /[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z_][A-Za-z0-9_]*)*/y;
const VALUE_NAME = /[A-Za-z0-9_][A-Za-z0-9_.]*/y;
const NUMBER = /-inf(?![A-Za-z0-9_])|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const PUNCT = new Set(['{', '}', '(', ')', '[', ']', '<', '>', ',', '=', ':', '*', '?']);

/** How an error message shows a token. */
export function describeToken(t: Token): string {
  return t.kind === 'eof' ? 'end of input' : `'${t.text}'`;
}

export function positionError(line: number, col: number, message: string): Error {
  return new Error(`${line}:${col}: ${message}`);
}

/** Splits text into tokens; `#` starts a comment that runs to the end of the line. */
export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let line = 1;
  let lineStart = 0;
  const col = () => pos - lineStart + 1;
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = pos;
    return re.exec(src)?.[0];
  };
  const readString = (): { text: string; value: string } => {
    const start = pos;
    let k = pos + 1;
    while (k < src.length && src[k] !== '"') {
      if (src[k] === '\n') break;
      k += src[k] === '\\' ? 2 : 1;
    }
    if (src[k] !== '"') throw positionError(line, start - lineStart + 1, 'unterminated string');
    const text = src.slice(start, k + 1);
    try {
      return { text, value: JSON.parse(text) as string };
    } catch {
      throw positionError(line, start - lineStart + 1, `invalid string literal ${text}`);
    }
  };
  while (pos < src.length) {
    const c = src[pos]!;
    if (c === '\n') {
      pos++;
      line++;
      lineStart = pos;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      pos++;
      continue;
    }
    if (c === '#') {
      while (pos < src.length && src[pos] !== '\n') pos++;
      continue;
    }
    const at = { line, col: col() };
    if (c === '"') {
      const s = readString();
      tokens.push({ kind: 'string', ...s, ...at });
      pos += s.text.length;
      continue;
    }
    if (c === '%') {
      pos++;
      if (src[pos] === '"') {
        const s = readString();
        tokens.push({ kind: 'value', text: `%${s.text}`, value: s.value, ...at });
        pos += s.text.length;
        continue;
      }
      const name = match(VALUE_NAME);
      if (name === undefined) throw positionError(at.line, at.col, "expected a value name after '%'");
      tokens.push({ kind: 'value', text: `%${name}`, value: name, ...at });
      pos += name.length;
      continue;
    }
    if (c === ':' && src[pos + 1] === ':') {
      tokens.push({ kind: 'punct', text: '::', value: '::', ...at });
      pos += 2;
      continue;
    }
    const num = match(NUMBER);
    if (num !== undefined) {
      tokens.push({ kind: 'number', text: num, value: num, ...at });
      pos += num.length;
      continue;
    }
    const word = match(WORD);
    if (word !== undefined) {
      tokens.push({ kind: 'word', text: word, value: word, ...at });
      pos += word.length;
      continue;
    }
    if (PUNCT.has(c)) {
      tokens.push({ kind: 'punct', text: c, value: c, ...at });
      pos++;
      continue;
    }
    throw positionError(at.line, at.col, `unexpected character ${JSON.stringify(c)}`);
  }
  tokens.push({ kind: 'eof', text: '', value: '', line, col: col() });
  return tokens;
}

/** A cursor over tokens with the helpers every parser of the text form needs. */
export class TokenStream {
  private k = 0;
  private readonly tokens: Token[];

  constructor(src: string) {
    this.tokens = tokenize(src);
  }

  peek(ahead = 0): Token {
    return this.tokens[Math.min(this.k + ahead, this.tokens.length - 1)]!;
  }

  next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.k++;
    return t;
  }

  /** Whether the next token is the punctuation or word `text`. */
  at(text: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return (t.kind === 'punct' || t.kind === 'word') && t.text === text;
  }

  /** Consumes the punctuation or word `text` if it is next. */
  eat(text: string): boolean {
    if (!this.at(text)) return false;
    this.k++;
    return true;
  }

  expect(text: string): Token {
    if (!this.at(text)) this.fail(`'${text}'`);
    return this.next();
  }

  expectKind(kind: TokenKind, what: string): Token {
    if (this.peek().kind !== kind) this.fail(what);
    return this.next();
  }

  /** A bare word or a quoted string (names of graphs, domains, ops, attributes). */
  name(what: string): Token {
    const t = this.peek();
    if (t.kind !== 'word' && t.kind !== 'string') this.fail(what);
    return this.next();
  }

  /** Throws "line:col: expected X, found Y" at the next token (or at `token`). */
  fail(expected: string, token: Token = this.peek()): never {
    throw positionError(token.line, token.col, `expected ${expected}, found ${describeToken(token)}`);
  }

  /** Throws "line:col: message" at `token`. */
  failAt(token: Token, message: string): never {
    throw positionError(token.line, token.col, message);
  }

  expectEnd(): void {
    if (this.peek().kind !== 'eof') this.fail('end of input');
  }
}
