// The additive bias onnxruntime's contrib attention ops build from an integer padding mask: keys where the
// mask is 0 get mask_filter_value added to their scores (not -inf), so a fully masked row still averages.

import type { Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

/** mask [B, T] ([B, S, T], [B, 1, S, T]) of 1/0 -> (mask == 0) * filter as [B, 1, 1, T] ([B, 1, S, T]) in `dtype`. */
export function paddingBias(b: NodeBuilder, mask: Value, rank: 2 | 3 | 4, filter: number, dtype: 'f32' | 'f16'): Value {
  const isPad = b.op('Equal', [b.cast(mask, 'i64', 'mask_i64'), b.scalar('mask_zero_i64', 'i64', 0)], 'mask_is_pad');
  const add = b.op('Mul', [b.cast(isPad, dtype, 'mask_pad_float'), b.scalar('mask_filter_value', dtype, dtype === 'f16' ? Math.max(filter, -65504) : filter)], 'mask_bias');
  return rank === 4 ? add : b.unsqueeze(add, rank === 2 ? [1, 2] : [1], 'mask_bias_4d', rank);
}

/** Key lengths [B] -> filter on keys at or past each length, as [B, 1, 1, T]; `keyCount` is T (an i64 scalar). */
export function lengthsBias(b: NodeBuilder, lengths: Value, keyCount: Value, filter: number, dtype: 'f32' | 'f16'): Value {
  const keys = b.op('Range', [b.scalar('key_start', 'i64', 0), keyCount, b.scalar('key_step', 'i64', 1)], 'key_index');
  const len = b.reshape(b.cast(lengths, 'i64', 'mask_lengths_i64'), [-1, 1], 'mask_lengths_col');
  const isPad = b.op('Not', [b.op('Less', [keys, len], 'key_is_valid')], 'key_is_pad');
  const add = b.op('Mul', [b.cast(isPad, dtype, 'key_pad_float'), b.scalar('mask_filter_value', dtype, dtype === 'f16' ? Math.max(filter, -65504) : filter)], 'mask_bias');
  return b.unsqueeze(add, [1, 2], 'mask_bias_4d', 2);
}
