// A relative-position bias (mask-analysis/relative-bias.ts) on the offsets a sparse form reads, never n x n:
//   o = 1 - S .. T - 1 (Range, [L = S + T - 1])  -the model's own ops, replayed->  table [C, L] in the scores' type
//   bias at any offsets X (int64)  ->  Gather([0 | table], clamp(o, 1 - S, T - 1) + S, axis 1)   [C, ...X]
//     (column 0 zeros: what a gathered column that holds no key reads, by column 0)
//   largest bias over the offsets a row drops (outside the band [lo, hi])  ->  ReduceMax over the table   [C]
// The table holds every offset the model's n x n bias holds (j - i over i < S, j < T), each computed by the same
// elementwise ops on the same inputs, so every value read equals the model's. Offsets outside that range (the
// padded keys and queries of a banded block) are clamped into it: they are masked there.
// A head group (split-heads.ts) reads its heads' rows of the table.

import { type DType, type Node, Tensor, tensorAttr, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { RELATIVE_BIAS, type RelativeBias, type RelExpr } from '../mask-analysis/relative-bias.js';
import { reduceAt } from './guarded-ops.js';
import { HEAD_GROUP, type HeadGroupAnnotation } from '../sparsify/split-heads.js';

/** The relative bias a site's bias input is, as the mask analysis read it, or undefined. */
export function relativeBiasOf(node: Node): RelativeBias | undefined {
  const rb = node.annotations.get(RELATIVE_BIAS) as RelativeBias | undefined;
  return rb !== undefined && node.inputs[3] === rb.of ? rb : undefined;
}

/** The bias read on offsets, built once per site (see the comment at the top). */
export interface RelativeRows {
  /** 1, or the heads of the site (or of its head group). */
  readonly channels: number;
  /** The type of the values (the scores'). */
  readonly dtype: DType;
  /** The bias at the offsets `o` (int64, any shape X): [C, ...X] in the scores' type. */
  at(o: Value, what: string): Value;
  /** The table column of the offsets `o` (int64, any shape X), for `gather`; column 0 holds zeros (no key). */
  column(o: Value, what: string): Value;
  /** The table's columns `c` (int64, any shape X, from `column`, or 0 for zeros): [C, ...X]. */
  gather(c: Value, what: string): Value;
  /** The bias of rows `rows` (int64 [F]) over the keys 0..T-1: [1, C, F, T]. */
  rows(rows: Value, what: string): Value;
  /** The largest bias over the offsets outside [lo, hi] (int64 scalars): [1, C, 1, 1] float32, -inf where none. */
  maxOutside(lo: Value, hi: Value, what: string): Value;
}

/** The model's ops of `e`, on the offsets `o` [L, 1] (int64): [L, 1], or [L, C] with channels. */
function replay(b: NodeBuilder, e: RelExpr, o: Value, sign: 1 | -1, memo: Map<RelExpr, Value>): Value {
  const hit = memo.get(e);
  if (hit) return hit;
  let out: Value;
  switch (e.op) {
    case 'offset': {
      const scaled = e.scale * sign === 1 ? o : b.op('Mul', [o, b.scalar('rel_offset_scale', 'i64', e.scale * sign)], 'rel_offset_scaled');
      const shifted = e.shift === 0 ? scaled : b.op('Add', [scaled, b.scalar('rel_offset_shift', 'i64', e.shift)], 'rel_offset_shifted');
      out = e.dtype === 'i64' ? shifted : b.cast(shifted, e.dtype, 'rel_offset_typed');
      break;
    }
    case 'const':
      out = b.constant('rel_const', e.chans > 1 ? Tensor.fromBytes(e.tensor.dtype, [1, e.chans], e.tensor.bytes()) : e.tensor);
      break;
    case 'node':
      out = b.op(e.onnx, e.args.map((a) => (a === undefined ? undefined : replay(b, a, o, sign, memo))), `rel_${e.onnx.toLowerCase()}`, e.attrs);
      break;
    case 'gather': {
      const g = b.op('Gather', [b.constant('rel_table', e.table), replay(b, e.index, o, sign, memo)], 'rel_gather', { axis: { type: 'int', value: 0n } });
      out = e.table.shape.length === 2 ? b.reshape(g, [-1, e.table.shape[1]!], 'rel_gather_rows') : g;
      break;
    }
  }
  memo.set(e, out);
  return out;
}

/**
 * The site's relative bias on its offsets: S queries and T keys (int64 scalars), in `dtype` (the scores'), for the
 * heads of `node` (its head group's, where split).
 */
export function relativeRows(b: NodeBuilder, node: Node, rb: RelativeBias, S: Value, T: Value, dtype: DType, opset: number): RelativeRows {
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const first = b.op('Sub', [i64(1, 'rel_one'), S], 'rel_first_offset');
  const last = b.op('Sub', [T, i64(1, 'rel_one_b')], 'rel_last_offset');
  const offsets = b.op('Range', [first, T, i64(1, 'rel_step')], 'rel_offsets');
  const values = replay(b, rb.expr, b.reshape(offsets, [-1, 1], 'rel_offsets_col'), rb.sign, new Map());
  const typed = rb.dtype === dtype ? values : b.cast(values, dtype, 'rel_values_typed');
  // [L, 1] or [L, C] -> [C, L]; a head group's rows
  let table = b.transpose(typed, [1, 0], 'rel_table');
  let channels = rb.chans;
  const group = node.annotations.get(HEAD_GROUP) as HeadGroupAnnotation | undefined;
  if (rb.chans > 1 && group !== undefined) {
    table = b.op('Gather', [table, b.ints('rel_group_heads', group.heads)], 'rel_group_table', { axis: { type: 'int', value: 0n } });
    channels = group.heads.length;
  }
  // column 0 holds zeros (a gathered column that holds no key), column 1 + (o - first) offset o
  // (not 0 times a column: a bias may hold -inf)
  const zerosShape = b.op('Concat', [b.op('Slice', [b.op('Shape', [table], 'rel_table_shape'), b.ints('rel_z0', [0]), b.ints('rel_z1', [1]), b.ints('rel_z_axis', [0])], 'rel_channels'), b.ints('rel_one_column', [1])], 'rel_zero_shape', { axis: { type: 'int', value: 0n } });
  const zeros = b.node({ op: 'ConstantOfShape', inputs: [zerosShape], attrs: { value: tensorAttr(Tensor.fromValues(dtype, [1], [0])) } }, 'rel_zero_column')[0]!;
  const padded = b.op('Concat', [zeros, table], 'rel_table_with_zero', { axis: { type: 'int', value: 1n } });
  const column = (o: Value, what: string) => b.op('Add', [b.op('Sub', [b.op('Min', [b.op('Max', [o, first], `${what}_lo`), last], `${what}_clamped`), first], `${what}_from_first`), i64(1, `${what}_after_zero`)], `${what}_column`);
  const gather = (c: Value, what: string) => b.op('Gather', [padded, c], what, { axis: { type: 'int', value: 1n } });
  const at = (o: Value, what: string) => gather(column(o, what), what);
  return {
    channels,
    dtype,
    at,
    column,
    gather,
    rows(rows, what) {
      // a row's keys lie in the table whole (o = j - i in [1 - S, T - 1]): column 1 + (j - i) - first = j - i + S,
      // one int32 pass over [F, T] (not the clamps and int64 passes of `column`)
      const i32 = (t: Value, w: string) => b.cast(t, 'i32', w);
      const cols = b.op('Range', [i64(0, `${what}_k0`), T, i64(1, `${what}_k1`)], `${what}_keys`);
      const shifted = i32(b.reshape(b.op('Add', [cols, S], `${what}_keys_shifted`), [1, -1], `${what}_keys_row`), `${what}_keys_i32`);
      const c = b.op('Sub', [shifted, i32(b.reshape(rows, [-1, 1], `${what}_rows_col`), `${what}_rows_i32`)], `${what}_columns`);
      return b.unsqueeze(gather(c, what), [0], `${what}_4d`, 3);
    },
    maxOutside(lo, hi, what) {
      const inBand = b.op('And', [b.op('Not', [b.op('Less', [offsets, lo], `${what}_below`)], `${what}_from_lo`), b.op('Not', [b.op('Greater', [offsets, hi], `${what}_above`)], `${what}_to_hi`)], `${what}_in_band`);
      const f32 = dtype === 'f32' ? table : b.cast(table, 'f32', `${what}_f32`);
      const outside = b.op('Where', [inBand, b.scalar(`${what}_minus_inf`, 'f32', -Infinity), f32], `${what}_outside`);
      const max = reduceAt(b, opset, 'ReduceMax', outside, [1], `${what}_max`);
      return b.reshape(max, [1, -1, 1, 1], `${what}_4d`);
    },
  };
}
