// Tensor literals: `tensor<f32[2, 2]> [1.0, 2.0, 3.0, 4.5]`, `tensor<f8e4m3fn[2]> x"3c00"`, `tensor<string[1]> ["a"]`.

import { type DType, isDType } from '../dtype.js';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat } from '../float16.js';
import { Tensor } from '../tensor.js';
import type { Token, TokenStream } from './lexer.js';
import { formatFloat, fromHex, isFloatText, parseFloatText, toHex } from './numbers.js';
import { quote } from './syntax.js';

/** How one element of a dtype spells: the shortest text that encodes back to the same bits. */
const FLOAT_ROUND_TRIP: Partial<Record<DType, (x: number) => (text: string) => boolean>> = {
  f64: (x) => (t) => Number(t) === x,
  f32: (x) => (t) => Math.fround(Number(t)) === x,
  f16: (x) => (t) => halfToFloat(floatToHalf(Number(t))) === x,
  bf16: (x) => (t) => bfloat16ToFloat(floatToBfloat16(Number(t))) === x,
};

const INT_RANGE: Partial<Record<DType, readonly [bigint, bigint]>> = {
  i8: [-(2n ** 7n), 2n ** 7n - 1n],
  u8: [0n, 2n ** 8n - 1n],
  i16: [-(2n ** 15n), 2n ** 15n - 1n],
  u16: [0n, 2n ** 16n - 1n],
  i32: [-(2n ** 31n), 2n ** 31n - 1n],
  u32: [0n, 2n ** 32n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
};

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * The elements as text, or undefined when the dtype has no value spelling or the texts would not encode
 * back to the same bytes (NaN payloads, bools other than 0 and 1).
 */
function elementTexts(t: Tensor): string[] | undefined {
  const floatRt = FLOAT_ROUND_TRIP[t.dtype];
  let values: (number | bigint)[];
  let texts: string[];
  if (floatRt) {
    texts = [...t.toFloat64()].map((x) => formatFloat(x, floatRt(x)));
    values = texts.map(parseFloatText);
  } else if (t.dtype === 'i64' || t.dtype === 'u64') {
    values = [...t.bigints()];
    texts = values.map(String);
  } else if (INT_RANGE[t.dtype] || t.dtype === 'bool') {
    values = [...t.toFloat64()];
    texts = t.dtype === 'bool' ? values.map((x) => (x ? 'true' : 'false')) : values.map(String);
  } else {
    return undefined;
  }
  return Tensor.fromValues(t.dtype, t.shape, values).equals(t) ? texts : undefined;
}

export function printTensor(t: Tensor): string {
  const head = `tensor<${t.dtype}${shapeText(t.shape)}>`;
  if (t.dtype === 'string') return `${head} [${t.strings().map(quote).join(', ')}]`;
  const texts = elementTexts(t);
  return texts ? `${head} [${texts.join(', ')}]` : `${head} x${quote(toHex(t.bytes()))}`;
}

/** `x"hex"` at the cursor. */
export function parseHexBytes(ts: TokenStream): { bytes: Uint8Array; at: Token } {
  ts.expect('x');
  const at = ts.expectKind('string', 'a hex string');
  const bytes = fromHex(at.value);
  if (!bytes) ts.failAt(at, `expected an even number of hex digits, found ${at.text}`);
  return { bytes, at };
}

function parseElement(ts: TokenStream, dtype: DType): number | bigint | string {
  const t = ts.peek();
  if (dtype === 'string') return ts.expectKind('string', 'a string').value;
  if (dtype === 'bool') {
    if (ts.eat('true')) return 1;
    if (ts.eat('false')) return 0;
    return ts.fail('true or false');
  }
  if (FLOAT_ROUND_TRIP[dtype]) {
    if (t.kind === 'number' || (t.kind === 'word' && (t.text === 'nan' || t.text === 'inf'))) {
      ts.next();
      return parseFloatText(t.text);
    }
    return ts.fail(`a ${dtype} number`);
  }
  const range = INT_RANGE[dtype]!;
  if (t.kind !== 'number' || isFloatText(t.text)) return ts.fail(`an integer of ${dtype}`);
  ts.next();
  const v = BigInt(t.text);
  if (v < range[0] || v > range[1]) ts.failAt(t, `${t.text} is out of range for ${dtype}`);
  return dtype === 'i64' || dtype === 'u64' ? v : Number(v);
}

/** A static shape `[2, 3]` at the cursor. */
export function parseStaticShape(ts: TokenStream): number[] {
  ts.expect('[');
  const dims: number[] = [];
  while (!ts.at(']')) {
    const t = ts.peek();
    if (t.kind !== 'number' || !/^\d+$/.test(t.text)) ts.fail('a dimension (an integer >= 0)');
    ts.next();
    dims.push(Number(t.text));
    if (!ts.eat(',')) break;
  }
  ts.expect(']');
  return dims;
}

/** A tensor literal at the cursor (starting at the word `tensor`). */
export function parseTensor(ts: TokenStream): Tensor {
  const start = ts.expect('tensor');
  ts.expect('<');
  const dt = ts.expectKind('word', 'a dtype');
  if (!isDType(dt.text)) ts.failAt(dt, `expected a dtype, found '${dt.text}'`);
  const dtype = dt.text;
  const shape = parseStaticShape(ts);
  ts.expect('>');
  try {
    if (ts.at('x')) {
      if (dtype === 'string') ts.fail("a list of strings (string tensors have no bytes)");
      return Tensor.fromBytes(dtype, shape, parseHexBytes(ts).bytes);
    }
    if (!ts.at('[')) ts.fail(`'[' or x"hex"`);
    if (dtype !== 'string' && !FLOAT_ROUND_TRIP[dtype] && !INT_RANGE[dtype] && dtype !== 'bool') {
      ts.failAt(ts.peek(), `tensor of ${dtype} has no value spelling: write its bytes as x"hex"`);
    }
    ts.next();
    const elems: (number | bigint | string)[] = [];
    while (!ts.at(']')) {
      elems.push(parseElement(ts, dtype));
      if (!ts.eat(',')) break;
    }
    ts.expect(']');
    if (dtype === 'string') return Tensor.fromStrings(shape, elems as string[]);
    return Tensor.fromValues(dtype, shape, elems as (number | bigint)[]);
  } catch (e) {
    const msg = (e as Error).message;
    if (/^\d+:\d+: /.test(msg)) throw e;
    return ts.failAt(start, msg);
  }
}
