// Beam-search self attention over a fixed-size K/V buffer, as onnxruntime's CPU kernels compute it
// (DecoderMaskedMultiHeadAttention, and MultiHeadAttention given past_sequence_length + cache_indirection),
// for one new token per batch-beam row bb, past length P and buffer size M:
//   keys j < P: past_key[(bb / W) * W + cache_indirection[bb / W, bb % W, j], :, j]   (the beam the token came from)
//   key  j = P: the new key;   keys j > P: not attended
//   present_key = past_key with the new key written at position P (not re-gathered through the indirection)
// and the same for values. Built from standard ops: GatherElements along the batch axis (indices from a Where
// on j < P, so garbage indirection entries past P are never read), a Where on the position mask j == P, and
// kvLength = P + 1 for the attnopt::Attention over the whole buffer.

import type { Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

export interface BeamCacheInputs {
  /** [BB, 1, N H] with the projection bias already added, as are `k` and `v` ([BB, 1, N Hv]). */
  readonly k: Value;
  readonly v: Value;
  /** [BB, N, M, H] and [BB, N, M, Hv]. */
  readonly pastKey: Value;
  readonly pastValue: Value;
  /** int32 [1]: P, the filled length of the buffers. */
  readonly pastLength: Value;
  /** int32 [batch, W, M]; absent: row bb reads its own past (no beams). */
  readonly cacheIndirection?: Value;
  /** int64 [1] or []: W. */
  readonly beamWidth?: Value;
  /** A value whose dim 0 is BB (the query). */
  readonly rows: Value;
}

export interface BeamCacheAttention {
  /** [BB, M, N H] and [BB, M, N Hv]: the keys and values each row attends, bsd. */
  readonly k: Value;
  readonly v: Value;
  /** int64 [BB]: P + 1. */
  readonly kvLength: Value;
  readonly presentKey: Value;
  readonly presentValue: Value;
}

const axis0 = { axis: { type: 'int', value: 0n } } as const;

/** The prelude of a beam-search self-attention step; see the file comment. */
export function beamCache(b: NodeBuilder, x: BeamCacheInputs, heads: number, headDim: number, vHeadDim: number): BeamCacheAttention {
  const dim = (v: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [v], `${what}_shape`), b.scalar(`${what}_index`, 'i64', k)], what, axis0);
  const zero = b.scalar('zero', 'i64', 0);
  const one = b.scalar('one', 'i64', 1);
  const past = b.cast(x.pastLength, 'i64', 'past_length');
  const positions = b.op('Range', [zero, dim(x.pastKey, 2, 'max_length'), one], 'position');
  const isNew = b.op('Equal', [b.reshape(positions, [-1, 1], 'position_col'), past], 'is_new_position');
  const bhsd = (t: Value, d: number, what: string) => b.transpose(b.reshape(t, [0, 0, heads, d], `${what}_bshd`), [0, 2, 1, 3], `${what}_bhsd`);
  const kNew = bhsd(x.k, headDim, 'new_key');
  const vNew = bhsd(x.v, vHeadDim, 'new_value');
  const presentKey = b.op('Where', [isNew, kNew, x.pastKey], 'present_key');
  const presentValue = b.op('Where', [isNew, vNew, x.pastValue], 'present_value');
  let pastK = x.pastKey;
  let pastV = x.pastValue;
  if (x.cacheIndirection) {
    const row = b.reshape(b.op('Range', [zero, dim(x.rows, 0, 'batch_beam'), one], 'row'), [-1, 1], 'row_col');
    const width = x.beamWidth ?? one;
    const first = b.op('Mul', [b.op('Div', [row, width], 'batch_index'), width], 'first_beam_row');
    const beam = b.cast(b.op('Flatten', [x.cacheIndirection], 'cache_indirection_rows', { axis: { type: 'int', value: 2n } }), 'i64', 'cache_indirection_i64');
    const filled = b.op('Less', [positions, past], 'is_past_position');
    const source = b.op('Where', [filled, b.op('Add', [first, beam], 'source_row_past'), row], 'source_row');
    const index = b.reshape(source, [0, 1, -1, 1], 'source_row_4d');
    const gather = (buffer: Value, what: string) =>
      b.op('GatherElements', [buffer, b.op('Expand', [index, b.op('Shape', [buffer], `${what}_shape`)], `${what}_index`)], what, axis0);
    pastK = gather(x.pastKey, 'beam_past_key');
    pastV = gather(x.pastValue, 'beam_past_value');
  }
  const bsd = (t: Value, d: number, what: string) => b.reshape(b.transpose(t, [0, 2, 1, 3], `${what}_bshd`), [0, 0, heads * d], what);
  const k = bsd(b.op('Where', [isNew, kNew, pastK], 'attended_key_bhsd'), headDim, 'attended_key');
  const v = bsd(b.op('Where', [isNew, vNew, pastV], 'attended_value_bhsd'), vHeadDim, 'attended_value');
  const kvLength = b.op('Expand', [b.op('Add', [past, one], 'kv_length_1'), b.op('Slice', [b.op('Shape', [x.rows], 'rows_shape'), b.ints('rows_start', [0]), b.ints('rows_end', [1])], 'rows_count')], 'kv_length', {}, {
    kind: 'tensor',
    dtype: 'i64',
    shape: ['batch_beam'],
  });
  return { k, v, kvLength, presentKey, presentValue };
}

/** The present K/V outputs a fused node writes (live slots 1 and 2 of `live`), replaced by the cache's. */
export function presentFromCache(
  live: readonly (Value | undefined)[],
  outputs: readonly Value[],
  cache: BeamCacheAttention,
): { replaced: Value; by: Value }[] {
  const pairs: { replaced: Value; by: Value }[] = [];
  if (live[1] !== undefined) pairs.push({ replaced: outputs[1]!, by: cache.presentKey });
  if (live[2] !== undefined) pairs.push({ replaced: outputs[2]!, by: cache.presentValue });
  return pairs;
}
