// GroupQueryAttention's cache as onnxruntime writes it, for every seqlens_k: batch row b holds p_b =
// seqlens_k[b] + 1 - S cached keys (fewer than the buffer's P where the batch is padded), the S new keys go right
// after them, and the rest of the present buffer, of max(P, total_sequence_length) keys, is zeros:
//   present[b, :, j] = past[b, :, j]          for j < p_b
//                      new[b, :, j - p_b]      for p_b <= j < p_b + S
//                      0                       after
// (onnxruntime 1.30's CPU kernel, checked key by key by the GQA combination test). Reading the cache as
// Concat(past, new) is the same only where every row is full (p_b = P).

import type { DType, Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

export interface GqaCacheInputs {
  /** [B, KV, P, H]. */
  readonly past: Value;
  /** [B, KV, S, H]. */
  readonly fresh: Value;
  /** seqlens_k + 1 as i64 [B]: the keys each batch row attends to. */
  readonly kvLength: Value;
  /** total_sequence_length as an i64 scalar. */
  readonly total: Value;
  /** The cache's element type. */
  readonly dtype: DType;
}

/** The present buffer [B, KV, max(P, total), H] as onnxruntime fills it; `what` prefixes the node names. */
export function placedCache(b: NodeBuilder, x: GqaCacheInputs, what: string): Value {
  const P = b.dim(x.past, 2, `${what}_past_length`);
  const S = b.dim(x.fresh, 2, `${what}_new_length`);
  const T = b.op('Max', [P, x.total], `${what}_present_length`);
  const j = b.op('Range', [b.scalar(`${what}_zero`, 'i64', 0), T, b.scalar(`${what}_one`, 'i64', 1)], `${what}_slot`);
  const cached = b.op('Sub', [b.reshape(x.kvLength, [-1, 1], `${what}_kv_length_col`), S], `${what}_cached`); // p_b, [B, 1]
  const fromPast = b.op('Less', [j, cached], `${what}_from_past`); // [B, T]
  const filled = b.op('Less', [j, b.op('Add', [cached, S], `${what}_filled_end`)], `${what}_filled`);
  // in Concat(past, new) along the keys, new key j - p_b sits at P + j - p_b; empty slots read slot 0
  const fromNew = b.op('Add', [b.op('Sub', [j, cached], `${what}_new_offset`), P], `${what}_new_slot`);
  const src = b.op('Where', [filled, b.op('Where', [fromPast, j, fromNew], `${what}_src_any`), b.scalar(`${what}_slot0`, 'i64', 0)], `${what}_src`);
  const both = b.op('Concat', [x.past, x.fresh], `${what}_concat`, { axis: { type: 'int', value: 2n } });
  // the source slot per [B, 1, T, 1], expanded over the heads and the head size
  const src4 = b.unsqueeze(src, [1, 3], `${what}_src_4d`, 2);
  const shape = b.op('Concat', [b.dim(both, 0, `${what}_b`), b.dim(both, 1, `${what}_kv`), T, b.dim(both, 3, `${what}_h`)].map((d, k) => b.unsqueeze(d, [0], `${what}_dim${k}`, 0)), `${what}_gather_shape`, { axis: { type: 'int', value: 0n } });
  const index = b.op('Expand', [src4, shape], `${what}_index`);
  const gathered = b.op('GatherElements', [both, index], `${what}_gathered`, { axis: { type: 'int', value: 2n } });
  return b.op('Where', [b.unsqueeze(filled, [1, 3], `${what}_filled_4d`, 2), gathered, b.scalar(`${what}_empty`, x.dtype, 0)], `${what}_present`);
}

export interface ShiftedCache {
  /** [B, KV, P, H]: row b's p_b cached keys moved to the buffer's end, slot 0's key copied before them. */
  readonly past: Value;
  /** Boolean [B, 1, 1, P + S]: false on the P - p_b slots before row b's cached keys (when asked for). */
  readonly keep?: Value;
}

/**
 * Row b's cache moved right by P - p_b, so that Concat(past, new) holds onnxruntime's keys at the same distance
 * from each query as the placed cache does (every position, the queries' included, shifted by P - p_b: causal
 * and windows aligned past read the same keys), the slots in front masked out. A full row moves by 0.
 */
export function shiftedCache(b: NodeBuilder, past: Value, kvLength: Value, newLength: Value, what: string, withKeep: boolean): ShiftedCache {
  const P = b.dim(past, 2, `${what}_past_length`);
  const zero = b.scalar(`${what}_zero`, 'i64', 0);
  const one = b.scalar(`${what}_one`, 'i64', 1);
  // P - p_b = P + S - kvLength_b, as [B, 1]
  const shift = b.op('Sub', [b.op('Add', [P, newLength], `${what}_all_keys`), b.reshape(kvLength, [-1, 1], `${what}_kv_length_col`)], `${what}_shift`);
  const slots = b.op('Range', [zero, P, one], `${what}_slot`);
  const src = b.op('Max', [b.op('Sub', [slots, shift], `${what}_src_raw`), zero], `${what}_src`);
  const index = b.op('Expand', [b.unsqueeze(src, [1, 3], `${what}_src_4d`, 2), b.op('Shape', [past], `${what}_shape`)], `${what}_index`);
  const moved = b.op('GatherElements', [past, index], `${what}_moved`, { axis: { type: 'int', value: 2n } });
  if (!withKeep) return { past: moved };
  const keys = b.op('Range', [zero, b.op('Add', [P, newLength], `${what}_key_count`), one], `${what}_key`);
  const keep = b.unsqueeze(b.op('GreaterOrEqual', [keys, shift], `${what}_keep_2d`), [1, 2], `${what}_keep`, 2);
  return { past: moved, keep };
}
