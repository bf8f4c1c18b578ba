// The key bias's part of the guarded score bound: per query row and key block, the largest bias over the keys of
// the block the row drops (the same quantity the chooser's certificate estimate uses, evaluate.ts), not over the
// whole block, so a block that holds both kept and dropped keys is not bounded by the kept keys' bias (with ALiBi
// the nearest keys' bias is the largest: the whole-block max would make every such row fall back).
//
//   key bias [Bb, Hb, 1, T] -edge pad, blocks-> [Bb, Hb, nKB, kb]
//   P = prefix max, Q = suffix max inside each block (log2 kb steps of Max with a shifted copy)
//   the dropped keys of (row i, block c) are at most two intervals [a, b) inside the block (before the band,
//   after it), each bounded by min(P[b - 1], Q[a]): exact when the interval touches an end of the block (every
//   interval but a block-0 one that starts after the sinks), an upper bound otherwise; -inf when empty
//   -> [Bb, Hb, S, nKB], added to U
// Padding keys (kvLength) may count as dropped here: only looser.

import type { Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

/** The keys [lo, hi) of one row and block, as float [S, nKB] (or broadcastable) positions. */
export interface KeyInterval {
  readonly lo: Value;
  readonly hi: Value;
}

export interface DroppedBiasInputs {
  /** The key bias [Bb, Hb, 1, T], float32. */
  readonly keyBias: Value;
  readonly blockSize: number;
  /** Keys added to T to fill whole blocks (int64 scalar). */
  readonly padT: Value;
  /** T as a float scalar. */
  readonly keys: Value;
  /** The dropped intervals of each row and block (clamped into the block). */
  readonly parts: readonly KeyInterval[];
}

/** The largest key bias over the dropped keys of each row and block [Bb, Hb, S, nKB] (see the comment at the top). */
export function droppedKeyBiasMax(b: NodeBuilder, x: DroppedBiasInputs): Value {
  const kb = x.blockSize;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const minusInf = b.scalar('guard_bias_minus_inf', 'f32', -Infinity);
  const pads = b.op('Concat', [b.ints('guard_bias_pads_head', [0, 0, 0, 0, 0, 0, 0]), b.reshape(x.padT, [1], 'guard_bias_pad_1')], 'guard_bias_pads', axis(0));
  const padded = b.op('Pad', [x.keyBias, pads], 'guard_bias_padded', { mode: { type: 'string', value: 'edge' } });
  const blocks = b.reshape(padded, [0, 0, -1, kb], 'guard_bias_blocks');
  const shifted = (t: Value, s: number, fromEnd: boolean, what: string) => {
    const p = b.op('Pad', [t, b.ints(`${what}_pads`, fromEnd ? [0, 0, 0, 0, 0, 0, 0, s] : [0, 0, 0, s, 0, 0, 0, 0]), minusInf], `${what}_padded`);
    return b.op('Slice', [p, b.ints(`${what}_start`, [fromEnd ? s : 0]), b.ints(`${what}_end`, [fromEnd ? s + kb : kb]), b.ints(`${what}_axis`, [3])], what);
  };
  let prefix = blocks;
  let suffix = blocks;
  for (let s = 1; s < kb; s *= 2) {
    prefix = b.op('Max', [prefix, shifted(prefix, s, false, `guard_bias_prefix_shift${s}`)], `guard_bias_prefix${s}`);
    suffix = b.op('Max', [suffix, shifted(suffix, s, true, `guard_bias_suffix_shift${s}`)], `guard_bias_suffix${s}`);
  }
  const flat = (t: Value, what: string) => b.reshape(t, [0, 0, -1], what);
  const prefixKeys = flat(prefix, 'guard_bias_prefix_keys');
  const suffixKeys = flat(suffix, 'guard_bias_suffix_keys');
  const lastKey = b.op('Sub', [x.keys, b.scalar('guard_bias_one', 'f32', 1)], 'guard_bias_last_key');
  const index = (t: Value, what: string) =>
    b.cast(b.op('Max', [b.op('Min', [t, lastKey], `${what}_min`), b.scalar(`${what}_zero`, 'f32', 0)], `${what}_clamped`), 'i64', what);
  const parts = x.parts.map(({ lo, hi }, k) => {
    const what = `guard_bias_part${k}`;
    const last = index(b.op('Sub', [hi, b.scalar(`${what}_one`, 'f32', 1)], `${what}_last_f`), `${what}_last`);
    const first = index(lo, `${what}_first`);
    const atLast = b.op('Gather', [prefixKeys, last], `${what}_prefix`, axis(2));
    const atFirst = b.op('Gather', [suffixKeys, first], `${what}_suffix`, axis(2));
    return b.op('Where', [b.op('Less', [lo, hi], `${what}_nonempty`), b.op('Min', [atLast, atFirst], `${what}_bound`), minusInf], `${what}_max`);
  });
  return parts.length === 1 ? parts[0]! : b.op('Max', parts, 'guard_bias_dropped_max');
}
