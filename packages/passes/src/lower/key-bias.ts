// A key bias: a bias that is constant along the query axis ([..., 1, nk], rank 1..4), such as ALiBi written as
// slope_h · j (BLOOM), an additive key-padding mask [B, 1, 1, T], or a boolean keep-mask of keys (true: kept).
// The banded and guarded forms gather it per key instead of reading an n x n bias:
//   bias [.., 1, T] -Unsqueeze-> [Bb, Hb, 1, T] -Cast-> the scores' type (Bb, Hb: 1 or B, H)
//   keep [.., 1, T] (bool) -Unsqueeze-> [Bb, Hb, 1, T] -Where(keep, 0, -inf)-> the scores' type
// Any bias (key bias or not) whose key axis may be shorter than the key count T is padded first, as the IR (and
// ONNX Attention) define it: the missing keys are masked (-inf, or false in a keep-mask), never broadcast:
//   bias [.., w] -Pad(0, T - w, -inf | false)-> [.., T]

import { type DType, type Node, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { inferDtype, inferShape } from '../shape-inference/shapes.js';

const KEY_BIAS_TYPES: ReadonlySet<DType> = new Set(['f16', 'bf16', 'f32', 'f64', 'bool']);

/** Why a site's bias input is no key bias (absent, not float or bool, rank unknown, several rows), or undefined when it is. */
export function keyBiasBlocker(node: Node): string | undefined {
  const bias = node.inputs[3];
  if (bias === undefined) return 'no bias input';
  const dtype = inferDtype(bias);
  if (dtype === undefined || !KEY_BIAS_TYPES.has(dtype)) return `the bias ${bias.name} is neither a float tensor nor a boolean mask (${dtype ?? 'unknown type'})`;
  const shape = inferShape(bias);
  if (shape === undefined || shape.length < 1 || shape.length > 4) return `the bias ${bias.name} has no rank 1..4 the graph fixes`;
  if (shape.length >= 2 && shape[shape.length - 2] !== 1) return `the bias ${bias.name} varies along the query axis (shape [${shape.join(', ')}]): an n x n bias`;
  return undefined;
}

/** Whether the site's bias input is a key bias (see the comment at the top). */
export function hasKeyBias(node: Node): boolean {
  return keyBiasBlocker(node) === undefined;
}

/**
 * The site's bias with its key axis padded to `keys` (the key count T, int64 scalar) unless the graph declares it
 * as `keyDim` (T as a number, or the same symbol) already: the missing keys masked (-inf, or false in a keep-mask).
 */
export function biasOverKeys(b: NodeBuilder, node: Node, keys: () => Value, keyDim?: number | string, bias: Value = node.inputs[3]!): Value {
  const shape = inferShape(bias);
  const width = shape?.[shape.length - 1];
  if (shape === undefined || (keyDim !== undefined && width === keyDim)) return bias;
  const dtype = inferDtype(bias) ?? 'f32';
  const rank = shape.length;
  const widthNow = b.op('Gather', [b.op('Shape', [bias], 'bias_shape'), b.scalar('bias_key_axis', 'i64', rank - 1)], 'bias_width', { axis: { type: 'int', value: 0n } });
  // T - w keys missing (never negative for a valid bias: the IR refuses one wider than T); a keep-mask padded as
  // uint8 (Pad takes no bool before opset 13)
  const missing = b.op('Sub', [keys(), widthNow], 'bias_missing');
  const pads = b.op('Concat', [b.ints('bias_pads_head', new Array<number>(2 * rank - 1).fill(0)), b.reshape(missing, [1], 'bias_missing_1')], 'bias_pads', { axis: { type: 'int', value: 0n } });
  const padType = dtype === 'bool' ? 'u8' : dtype;
  const fill = b.constant('bias_pad_value', Tensor.fromValues(padType, [], [dtype === 'bool' ? 0 : -Infinity]));
  const padded = b.op('Pad', [dtype === 'bool' ? b.cast(bias, 'u8', 'bias_u8') : bias, pads, fill], 'bias_over_keys');
  return dtype === 'bool' ? b.cast(padded, 'bool', 'bias_over_keys_bool') : padded;
}

/**
 * The key bias as an additive [Bb, Hb, 1, T] in `dtype` (a keep-mask as 0 / -inf). Call only where hasKeyBias(node),
 * or with `input` a key bias read beside a relative-position bias.
 */
export function keyBias4(b: NodeBuilder, node: Node, dtype: DType, keys: () => Value, keyDim?: number | string, input: Value = node.inputs[3]!): Value {
  const bias = biasOverKeys(b, node, keys, keyDim, input);
  const rank = inferShape(input)!.length;
  const lead = Array.from({ length: 4 - rank }, (_, k) => k);
  const bias4 = lead.length > 0 ? b.unsqueeze(bias, lead, 'key_bias_4d', rank) : bias;
  const from = inferDtype(input);
  if (from === 'bool') return b.op('Where', [bias4, b.scalar('key_bias_kept', dtype, 0), b.scalar('key_bias_masked', dtype, -Infinity)], 'key_bias_additive');
  return from === dtype ? bias4 : b.cast(bias4, dtype, 'key_bias_cast');
}
