// Padding rows out of reach: keys and values at or past kvLength[b] (a KV cache's unwritten slots, which may hold
// anything, NaN included) replaced by row kvLength[b] - 1 before any part of a lowered site reads them.
//
//   K, V [B, (heads,) T, d], kvLength [B]  ->  GatherND(x, min(t, kvLength[b] - 1), batch_dims)   (same shape;
//                                              sliced to t < max_b kvLength[b] where the form allows it)
//
// Every lowered form masks padding after reading it: the banded and block forms add -inf to its score
// (NaN + -inf = NaN) and P V gives 0 · NaN = NaN. A copy of a valid row is finite where the valid rows are, and
// masked like any padding row, so no output changes. A row copy rather than a Where to zero: onnxruntime's
// Where is about twice the time of a GatherND over the same tensor (measured, 8 x 4096 x 64 f32: 1.0 ms vs
// 0.5 ms). A batch with kvLength 0 reads row 0: it keeps no key, and its rows are the IR's 0 only where the
// form zeroes fully masked rows. Below opset 12 (GatherND without batch_dims) the padding rows are zeroed by a
// Where instead.

import type { Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { inferDtype } from '../shape-inference/shapes.js';

const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;

/**
 * A function that takes a tensor whose leading axes are those of `like` up to its key axis (`keyAxis`: 2 for
 * [B, heads, T, d], 1 for [B, T, d]) and gives it with every row at or past kvLength[b] replaced by row
 * kvLength[b] - 1 (zeroed below opset 12). The row index is built once, on first use, from `like`'s shape.
 * With `slice` the result keeps only the first L = min(max_b kvLength[b], T) rows (at least 1): every later row
 * is padding in every batch, so a form that masks keys at or past its key count as it masks padding computes the
 * same there, over L keys instead of T (a KV cache filled to L of its T slots). Not below opset 12.
 */
export function padOutOfReach(b: NodeBuilder, like: Value, kvLength: Value, keyAxis: 1 | 2, opset: number, slice = false): (x: Value, what: string) => Value {
  if (opset < 12) return zeroPadding(b, like, kvLength, keyAxis);
  let rows: Value | undefined;
  const index = (): Value => {
    const k = keyIndices(b, like, kvLength, keyAxis);
    const longest = () => b.op('ReduceMax', [kvLength], 'unpadded_longest', { keepdims: int(0) });
    const n = slice ? b.op('Max', [b.op('Min', [longest(), k.count], 'unpadded_longest_in_t'), b.scalar('unpadded_at_least', 'i64', 1)], 'unpadded_kept') : k.count;
    // the index [B, (heads,) n, 1]: the key positions, capped by the last valid rows
    const last = b.op('Max', [b.op('Sub', [k.lengths, b.scalar('unpadded_one', 'i64', 1)], 'unpadded_last'), b.scalar('unpadded_first', 'i64', 0)], 'unpadded_last_row');
    const lead = b.op('Slice', [k.shape, b.ints('unpadded_lead_start', [0]), b.ints('unpadded_lead_end', [keyAxis])], 'unpadded_lead');
    const target = b.op('Concat', [lead, b.reshape(n, [1], 'unpadded_kept_1'), b.ints('unpadded_one_col', [1])], 'unpadded_rows_shape', { axis: int(0) });
    return b.op('Expand', [b.op('Min', [k.positions(n), last], 'unpadded_row'), target], 'unpadded_rows');
  };
  return (x, what) => b.op('GatherND', [x, (rows ??= index())], what, { batch_dims: int(keyAxis) });
}

/** Rows at or past kvLength[b] zeroed by a Where (opset 11: GatherND has no batch_dims). */
function zeroPadding(b: NodeBuilder, like: Value, kvLength: Value, keyAxis: 1 | 2): (x: Value, what: string) => Value {
  let valid: Value | undefined;
  const mask = (): Value => {
    const k = keyIndices(b, like, kvLength, keyAxis);
    return b.op('Less', [k.positions(k.count), k.lengths], 'unpadded_valid');
  };
  return (x, what) => b.op('Where', [(valid ??= mask()), x, b.scalar(`${what}_zero`, inferDtype(x) ?? 'f32', 0)], what);
}

/**
 * What both forms index by, for a tensor of rank keyAxis + 2: `like`'s shape, its key count T, key positions
 * 0..n-1 as [1, (1,) n, 1] and the lengths as [B, (1,) 1, 1].
 */
function keyIndices(b: NodeBuilder, like: Value, kvLength: Value, keyAxis: 1 | 2) {
  const shape = b.op('Shape', [like], 'unpadded_shape');
  const count = b.op('Gather', [shape, b.scalar('unpadded_axis', 'i64', keyAxis)], 'unpadded_count', { axis: int(0) });
  const ones = Array.from({ length: keyAxis - 1 }, () => 1);
  const positions = (n: Value) => b.reshape(b.op('Range', [b.scalar('unpadded_r0', 'i64', 0), n, b.scalar('unpadded_r1', 'i64', 1)], 'unpadded_index'), [1, ...ones, -1, 1], 'unpadded_index_col');
  const lengths = b.reshape(kvLength, [-1, ...ones, 1, 1], 'unpadded_kv_length');
  return { shape, count, positions, lengths };
}
