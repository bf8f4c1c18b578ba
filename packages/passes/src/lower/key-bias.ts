// A key bias: a bias that is constant along the query axis ([..., 1, nk], rank 1..4), such as ALiBi written as
// slope_h · j (BLOOM), an additive key-padding mask [B, 1, 1, T], or a boolean keep-mask of keys (true: kept).
// The banded and guarded forms gather it per key instead of reading an n x n bias:
//   bias [.., 1, T] -Unsqueeze-> [Bb, Hb, 1, T] -Cast-> the scores' type (Bb, Hb: 1 or B, H)
//   keep [.., 1, T] (bool) -Unsqueeze-> [Bb, Hb, 1, T] -Where(keep, 0, -inf)-> the scores' type

import type { DType, Node, Value } from '@attnopt/ir';
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

/** The key bias as an additive [Bb, Hb, 1, T] in `dtype` (a keep-mask as 0 / -inf). Call only where hasKeyBias(node). */
export function keyBias4(b: NodeBuilder, node: Node, dtype: DType): Value {
  const bias = node.inputs[3]!;
  const rank = inferShape(bias)!.length;
  const lead = Array.from({ length: 4 - rank }, (_, k) => k);
  const bias4 = lead.length > 0 ? b.unsqueeze(bias, lead, 'key_bias_4d', rank) : bias;
  const from = inferDtype(bias);
  if (from === 'bool') return b.op('Where', [bias4, b.scalar('key_bias_kept', dtype, 0), b.scalar('key_bias_masked', dtype, -Infinity)], 'key_bias_additive');
  return from === dtype ? bias4 : b.cast(bias4, dtype, 'key_bias_cast');
}
