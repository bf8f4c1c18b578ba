// Banded (blocked) lowering of window-like specs: cost grows as n · (window + block), never n².
//
//   queries, padded to nBlocks · b and reshaped    [B, H, nBlocks, b, D]
//   keys of block r: Gather(K, r·b + offset + lo + t), t < L = b + hi - lo   [B, H, nBlocks, L, D]
//   + a few fixed "extra" keys (sinks, global tokens) shared by every block    [B, H, 1, E, D]
//   scores [B, H, nBlocks, b, L + E], masked by the spec itself (specMask on the block's query and key
//   indices), by the key range [0, T) (padding, clamped gathers) and kvLength; softmax; weighted sum;
//   reshape back and slice the padding off. Extra keys already inside a block's band are masked in the
//   extra part, so no key counts twice.
//   Global queries (a query position that is a global token sees every key) get dense rows of their own,
//   placed with Where over the banded output: |G| · n work.
// Every length is read with Shape at run time: one model serves every sequence length.
// keySupport, bandBlockSize and bandedKeysPerQuery are properties of the spec: they live in @attnopt/ir
// (spec/support.ts) and are re-exported here for compatibility.

import { type DType, type KeySupport, type MaskSpec, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '../recognize/fused/common.js';
import { specMask } from './mask.js';

export { bandBlockSize, bandedKeysPerQuery, keySupport, type KeySupport } from '@attnopt/ir';

export interface BandedInputs {
  readonly spec: MaskSpec;
  readonly support: KeySupport;
  readonly blockSize: number;
  /** [B, H, S, D], [B, H, T, D], [B, H, T, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly headDim: number;
  readonly vHeadDim: number;
  /** The dtype of the scores (Q's). */
  readonly dtype: DType;
  /** The scores after scale and softcap, for any scores tensor. */
  readonly score: (qk: Value, what: string) => Value;
  /** The masked softmax (Where(keep, x, -inf), Softmax, NaN -> 0, precision casts) over the last axis. */
  readonly softmax: (logits: Value, keep: Value | undefined, what: string) => Value;
  /** T - S and the cached key count (scalars; undefined = 0). */
  readonly bottomRight: Value;
  readonly past?: Value;
  /** [B] int64 valid key counts. */
  readonly kvLength?: Value;
}

/** The banded attention output [B, H, S, Dv] (see the comment at the top). */
export function bandedAttention(b: NodeBuilder, x: BandedInputs): Value {
  const { support: s, blockSize: bs } = x;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));
  const and = (ms: (Value | undefined)[], what: string): Value | undefined => {
    const defined = ms.filter((m): m is Value => m !== undefined);
    return defined.length === 0 ? undefined : defined.reduce((acc, m) => b.op('And', [acc, m], what));
  };
  const ge = (p: Value, q: Value, what: string) => b.op('Not', [b.op('Less', [p, q], `${what}_lt`)], what);
  const S = dim(x.q, 2, 'band_nq');
  const T = dim(x.k, 2, 'band_nk');
  const lastKey = b.op('Sub', [T, i64(1, 'band_one')], 'band_last_key');
  const clampKey = (j: Value, what: string) => b.op('Max', [b.op('Min', [j, lastKey], `${what}_min`), i64(0, 'band_zero')], what);
  const offset = (): Value | undefined => {
    const align = s.aligns[0] ?? 'top-left';
    return align === 'bottom-right' ? x.bottomRight : align === 'past' ? x.past : undefined;
  };
  const off = offset();
  const withOffset = (t: Value, what: string) => (off ? b.op('Add', [t, off], what) : t);
  const kvLen5 = x.kvLength ? b.reshape(x.kvLength, [-1, 1, 1, 1, 1], 'band_kv_length') : undefined;
  const ix = (rows: Value, cols: Value) => ({ rows, cols, bottomRight: x.bottomRight, ...(x.past ? { past: x.past } : {}) });

  // query blocks
  const nBlocks = b.op('Div', [b.op('Add', [S, i64(bs - 1, 'band_round')], 'band_nq_up'), i64(bs, 'band_block')], 'band_blocks');
  const padS = b.op('Sub', [b.op('Mul', [nBlocks, i64(bs, 'band_block2')], 'band_nq_padded'), S], 'band_pad');
  const pads = b.op('Concat', [b.ints('band_pads_head', [0, 0, 0, 0, 0, 0]), b.reshape(padS, [1], 'band_pad_1'), b.ints('band_pads_tail', [0])], 'band_pads', axis(0));
  const qBlocks = b.reshape(b.op('Pad', [x.q, pads], 'band_q_padded'), [0, 0, -1, bs, x.headDim], 'band_q_blocks');
  const blockStart = b.op('Mul', [b.op('Range', [i64(0, 'band_r0'), nBlocks, i64(1, 'band_r1')], 'band_block_index'), i64(bs, 'band_block3')], 'band_block_start');
  const rows = b.op('Add', [b.reshape(blockStart, [-1, 1, 1], 'band_block_start_3d'), b.constant('band_in_block', tensorI64([1, bs, 1], Array.from({ length: bs }, (_, t) => t)))], 'band_query_index');

  const parts: { logits: Value; keep: Value | undefined; v: Value; width: number }[] = [];
  let keyStart: Value | undefined;
  let L = 0;
  if (s.lo <= s.hi) {
    // the band: keys [r·b + offset + lo, r·b + offset + lo + L) for block r
    L = bs + s.hi - s.lo;
    keyStart = b.reshape(withOffset(b.op('Add', [blockStart, i64(s.lo, 'band_lo')], 'band_key_start0'), 'band_key_start1'), [-1, 1, 1], 'band_key_start');
    const cols = b.op('Add', [keyStart, b.constant('band_in_keys', tensorI64([1, 1, L], Array.from({ length: L }, (_, t) => t)))], 'band_key_index');
    const gatherAt = b.reshape(clampKey(cols, 'band_key_clamped'), [-1, L], 'band_gather_index');
    const kb = b.op('Gather', [x.k, gatherAt], 'band_k', axis(2));
    const vb = b.op('Gather', [x.v, gatherAt], 'band_v', axis(2));
    const qk = b.op('MatMul', [qBlocks, b.transpose(kb, [0, 1, 2, 4, 3], 'band_k_t')], 'band_qk');
    const keep = and(
      [
        specMask(b, x.spec, ix(rows, cols)),
        ge(cols, i64(0, 'band_zero2'), 'band_key_ge0'),
        b.op('Less', [cols, T], 'band_key_lt_nk'),
        kvLen5 ? b.op('Less', [cols, kvLen5], 'band_kv_length_mask') : undefined,
      ],
      'band_keep',
    );
    parts.push({ logits: x.score(qk, 'band_scores'), keep, v: vb, width: L });
  }
  if (s.extra.length > 0) {
    // fixed keys every block reads (sinks, global tokens), masked where the band already holds them
    const E = s.extra.length;
    const cols = b.ints('extra_key_index', s.extra);
    const at = clampKey(cols, 'extra_key_clamped');
    const ke = b.reshape(b.op('Gather', [x.k, at], 'extra_k_bhed', axis(2)), [0, 0, 1, E, x.headDim], 'extra_k');
    const ve = b.reshape(b.op('Gather', [x.v, at], 'extra_v_bhed', axis(2)), [0, 0, 1, E, x.vHeadDim], 'extra_v');
    const qk = b.op('MatMul', [qBlocks, b.transpose(ke, [0, 1, 2, 4, 3], 'extra_k_t')], 'extra_qk');
    const inBand = keyStart
      ? b.op('And', [ge(cols, keyStart, 'extra_ge_band'), b.op('Less', [cols, b.op('Add', [keyStart, i64(L, 'band_width')], 'band_key_end')], 'extra_lt_band')], 'extra_in_band')
      : undefined;
    const keep = and(
      [
        specMask(b, x.spec, ix(rows, cols)),
        b.op('Less', [cols, T], 'extra_key_lt_nk'),
        kvLen5 ? b.op('Less', [cols, kvLen5], 'extra_kv_length_mask') : undefined,
        inBand ? b.op('Not', [inBand], 'extra_outside_band') : undefined,
      ],
      'extra_keep',
    );
    parts.push({ logits: x.score(qk, 'extra_scores'), keep, v: ve, width: E });
  }
  if (parts.length === 0) throw new Error('banded lowering of a spec that keeps no key: use the dense lowering');
  // one softmax over the band and the extra keys together
  const masked = parts.map((p, k) => (p.keep ? b.op('Where', [p.keep, p.logits, b.scalar(`part${k}_minus_inf`, x.dtype, -Infinity)], `part${k}_masked`) : p.logits));
  const probs = x.softmax(masked.length === 1 ? masked[0]! : b.op('Concat', masked, 'band_logits', axis(-1)), undefined, 'band');
  const pieces = parts.length === 1 ? [probs] : b.split(probs, 4, parts.map((p) => p.width), 'band_probs');
  const yBlocks = parts.map((p, k) => b.op('MatMul', [pieces[k]!, p.v], `part${k}_y`)).reduce((acc, y) => b.op('Add', [acc, y], 'band_y_sum'));
  const yPadded = b.reshape(yBlocks, [0, 0, -1, x.vHeadDim], 'band_y_padded');
  let y = b.op('Slice', [yPadded, b.ints('band_y_start', [0]), b.reshape(S, [1], 'band_y_end'), b.ints('band_y_axis', [2])], 'band_y');

  if (s.globalQueries.length > 0) {
    // global queries: dense rows, placed over the banded rows
    const qi = b.op('Sub', [b.ints('global_query_position', s.globalQueries), off ?? i64(0, 'global_zero')], 'global_query_index');
    const lastQuery = b.op('Sub', [S, i64(1, 'global_one')], 'global_last_query');
    const qAt = b.op('Max', [b.op('Min', [qi, lastQuery], 'global_query_min'), i64(0, 'global_zero2')], 'global_query_clamped');
    const qg = b.op('Gather', [x.q, qAt], 'global_q', axis(2));
    const qk = b.op('MatMul', [qg, b.transpose(x.k, [0, 1, 3, 2], 'global_k_t')], 'global_qk');
    const cols = b.op('Range', [i64(0, 'global_r0'), T, i64(1, 'global_r1')], 'global_key_index');
    const keep = and(
      [
        specMask(b, x.spec, ix(b.reshape(qi, [-1, 1], 'global_rows'), cols)),
        kvLen5 ? b.op('Less', [cols, b.reshape(x.kvLength!, [-1, 1, 1, 1], 'global_kv_length')], 'global_kv_length_mask') : undefined,
      ],
      'global_keep',
    );
    const yg = b.op('MatMul', [x.softmax(x.score(qk, 'global_scores'), keep, 'global'), x.v], 'global_y');
    const queries = b.op('Range', [i64(0, 'global_r2'), S, i64(1, 'global_r3')], 'global_all_queries');
    const hit = b.cast(b.op('Equal', [b.reshape(queries, [-1, 1], 'global_queries_col'), b.reshape(qi, [1, -1], 'global_index_row')], 'global_hit'), 'f32', 'global_hit_f');
    const which = b.op('ArgMax', [hit], 'global_which', { axis: { type: 'int', value: 1n }, keepdims: { type: 'int', value: 0n } });
    const isGlobal = b.reshape(b.op('Equal', [b.op('Gather', [qi, which], 'global_which_index', axis(0)), queries], 'global_is'), [-1, 1], 'global_is_col');
    y = b.op('Where', [isGlobal, b.op('Gather', [yg, which], 'global_y_rows', axis(2)), y], 'banded_y');
  }
  return y;
}

function tensorI64(shape: number[], values: number[]): Tensor {
  return Tensor.fromValues('i64', shape, values.map((v) => BigInt(v)));
}
