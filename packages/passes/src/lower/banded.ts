// Banded (blocked) lowering of window-like specs: cost grows as n · (window + block), never n².
//
//   queries, padded to nBlocks · b and reshaped                                  [B, H, nBlocks, b, D]
//   keys K'' = [X extra rows | F zeros | K | zeros], viewed as granules of g keys [B, H, nG, g, D]:
//     the X extra rows are a zero "empty row" key, the E fixed extra keys (sinks, global tokens) and zeros;
//     F = (-shift) mod g aligns the band start shift = offset + lo to a granule;
//   one Gather of granules per block: the X extra rows, then the L keys [r·b + shift, r·b + shift + L)
//     (L = b + hi - lo rounded up to g)                                          [B, H, nBlocks, W = X + L, D]
//   scores = one MatMul Q Kᵀ, scale (softcap); + an additive bias (0 / -inf) shared by batch and heads;
//   Softmax over the last axis; one MatMul P V; reshape back and slice the padding off.
// The bias [nBlocks, b, W]: away from the sequence ends (keys past every absolute term of the spec, all
// keys inside [0, T)) the band's keep-pattern depends on the query-key distance alone: a constant [b, L]
// evaluated once here, expanded, with the few other blocks (head and tail) computed from the spec at run time
// and scattered in. The extra keys' columns are computed at run time for every block (n · E), masked where
// the band already holds the key, so no key counts twice. The empty-row key gets bias 0 exactly on rows that
// keep no key: its zero key and value make such a row's softmax finite and its output 0, as the IR defines.
// With kvLength (valid keys per batch) every block is computed from the spec, per batch.
// Global queries (a query position that is a global token sees every key) get dense rows of their own,
// placed with Where over the banded output: |G| · n work.
// Every length is read with Shape at run time: one model serves every sequence length.
// keySupport, bandBlockSize and bandedKeysPerQuery are properties of the spec: they live in @attnopt/ir
// (spec/support.ts) and are re-exported here for compatibility.

import { absoluteReach, bandGranule, type DType, keeps, type KeySupport, type MaskSpec, Tensor, tensorAttr, type Value } from '@attnopt/ir';
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
  /** The softmax's dtype (softmaxPrecision); default `dtype`. */
  readonly softmaxType?: DType;
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

/** The widths of the banded form: X extra rows (empty-row key + extra keys, whole granules), L band keys (bandedKeysPerQuery = X + L). */
export function bandedWidths(s: KeySupport, blockSize: number): { granule: number; extraRows: number; band: number; width: number } {
  const g = bandGranule(blockSize);
  const extraRows = Math.ceil((s.extra.length + 1) / g) * g;
  const band = s.lo <= s.hi ? Math.ceil((blockSize + s.hi - s.lo) / g) * g : 0;
  return { granule: g, extraRows, band, width: extraRows + band };
}

/** The band's keep-pattern [b, L] away from the sequence ends: query i of a block, key t of its band. */
export function bandPattern(spec: MaskSpec, s: KeySupport, blockSize: number, band: number): boolean[] {
  const p0 = absoluteReach(spec) - Math.min(s.lo, 0);
  const n = p0 + blockSize + band + Math.abs(s.lo) + Math.abs(s.hi) + 1;
  const dims = { nq: n, nk: n, past: 0 };
  const out: boolean[] = [];
  for (let i = 0; i < blockSize; i++) for (let t = 0; t < band; t++) out.push(keeps(spec, p0 + i, p0 + s.lo + t, dims));
  return out;
}

/** The banded attention output [B, H, S, Dv] (see the comment at the top). */
export function bandedAttention(b: NodeBuilder, x: BandedInputs): Value {
  const { support: s, blockSize: bs } = x;
  const sm = x.softmaxType ?? x.dtype;
  const { granule: g, extraRows: X, band: L } = bandedWidths(s, bs);
  const E = s.extra.length;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const vec = (t: Value, what: string) => b.reshape(t, [1], what);
  const shapeK = b.op('Shape', [x.k], 'band_k_shape');
  const dim = (shape: Value, k: number, what: string) => b.op('Gather', [shape, i64(k, `${what}_axis`)], what, axis(0));
  const S = dim(b.op('Shape', [x.q], 'band_q_shape'), 2, 'band_nq');
  const T = dim(shapeK, 2, 'band_nk');
  const and = (ms: (Value | undefined)[], what: string): Value | undefined => {
    const defined = ms.filter((m): m is Value => m !== undefined);
    return defined.length === 0 ? undefined : defined.reduce((acc, m) => b.op('And', [acc, m], what));
  };
  const ge = (p: Value, q: Value, what: string) => b.op('Not', [b.op('Less', [p, q], `${what}_lt`)], what);
  const clamp = (v: Value, lo: Value, hi: Value, what: string) => b.op('Min', [b.op('Max', [v, lo], `${what}_max`), hi], what);
  const zero = i64(0, 'band_zero');
  const offset = (): Value | undefined => {
    const align = s.aligns[0] ?? 'top-left';
    return align === 'bottom-right' ? x.bottomRight : align === 'past' ? x.past : undefined;
  };
  const off = offset() ?? zero;
  const kvLen5 = x.kvLength ? b.reshape(x.kvLength, [-1, 1, 1, 1, 1], 'band_kv_length') : undefined;
  const ix = (rows: Value, cols: Value) => ({ rows, cols, bottomRight: x.bottomRight, ...(x.past ? { past: x.past } : {}) });
  const negInf = b.scalar('band_minus_inf', sm, -Infinity);
  const zeroF = b.scalar('band_zero_bias', sm, 0);
  const toBias = (keep: Value, what: string) => b.op('Where', [keep, zeroF, negInf], what);

  // query blocks
  const nBlocks = b.op('Div', [b.op('Add', [S, i64(bs - 1, 'band_round')], 'band_nq_up'), i64(bs, 'band_block')], 'band_blocks');
  const padS = b.op('Sub', [b.op('Mul', [nBlocks, i64(bs, 'band_block2')], 'band_nq_padded'), S], 'band_pad');
  const pads = b.op('Concat', [b.ints('band_pads_head', [0, 0, 0, 0, 0, 0]), vec(padS, 'band_pad_1'), b.ints('band_pads_tail', [0])], 'band_pads', axis(0));
  const qBlocks = b.reshape(b.op('Pad', [x.q, pads], 'band_q_padded'), [0, 0, -1, bs, x.headDim], 'band_q_blocks');
  const blockIndex = b.op('Range', [zero, nBlocks, i64(1, 'band_r1')], 'band_block_index');
  const inBlock = b.constant('band_in_block', tensorI64([1, bs, 1], Array.from({ length: bs }, (_, t) => t)));
  /** Query indices [m, b, 1] of the blocks `blocks` [m]. */
  const queryRows = (blocks: Value, what: string) =>
    b.op('Add', [b.reshape(b.op('Mul', [blocks, i64(bs, `${what}_b`)], `${what}_start`), [-1, 1, 1], `${what}_start_3d`), inBlock], what);

  // K'' and V'': the extra rows, then the keys shifted so that every band starts on a granule
  const shift = L > 0 ? b.op('Add', [off, i64(s.lo, 'band_lo')], 'band_shift') : undefined;
  const front = shift ? b.op('Mod', [b.op('Neg', [shift], 'band_minus_shift'), i64(g, 'band_granule')], 'band_front') : undefined;
  const back = front ? b.op('Mod', [b.op('Neg', [b.op('Add', [T, front], 'band_keys_front')], 'band_minus_keys'), i64(g, 'band_granule2')], 'band_back') : undefined;
  const headsShape = b.op('Slice', [shapeK, b.ints('band_bh_start', [0]), b.ints('band_bh_end', [2]), b.ints('band_bh_axis', [0])], 'band_batch_heads');
  const zerosRows = (rows: Value, d: number, what: string) =>
    b.node(
      { op: 'ConstantOfShape', inputs: [b.op('Concat', [headsShape, vec(rows, `${what}_rows`), b.ints(`${what}_dim`, [d])], `${what}_shape`, axis(0))], attrs: { value: tensorAttr(Tensor.fromValues(x.dtype, [1], [0])) } },
      what,
    )[0]!;
  const extraAt = b.constant('band_extra_index', tensorI64([E], [...s.extra]));
  const clampedExtra = b.op('Min', [extraAt, b.op('Sub', [T, i64(1, 'band_one')], 'band_last_key')], 'band_extra_clamped');
  const keysOf = (t: Value, d: number, what: string): Value => {
    const parts: Value[] = [];
    // the extra rows: the empty-row key (zeros), the extra keys, zeros up to whole granules
    const extra = E > 0 ? b.op('Gather', [t, clampedExtra], `${what}_extra`, axis(2)) : undefined;
    parts.push(extra ? b.op('Pad', [extra, b.ints(`${what}_extra_pads`, [0, 0, 1, 0, 0, 0, X - 1 - E, 0])], `${what}_extra_rows`) : zerosRows(i64(X, `${what}_x`), d, `${what}_extra_rows`));
    if (front && back) parts.push(zerosRows(front, d, `${what}_front`), t, zerosRows(back, d, `${what}_back`));
    const all = parts.length === 1 ? parts[0]! : b.op('Concat', parts, `${what}_rows`, axis(2));
    return b.reshape(all, [0, 0, -1, g, d], `${what}_granules`);
  };
  const kGranules = keysOf(x.k, x.headDim, 'band_k');
  const vGranules = keysOf(x.v, x.vHeadDim, 'band_v');
  // granule indices [nBlocks, W / g] (without a band: [1, X / g], read by every block)
  const extraGranules = b.constant('band_extra_granules', tensorI64([1, X / g], Array.from({ length: X / g }, (_, u) => u)));
  let granules = extraGranules;
  if (shift && front) {
    const nG = b.op('Add', [b.op('Div', [b.op('Add', [b.op('Add', [T, front], 'band_t_front'), back!], 'band_rows_total'), i64(g, 'band_granule3')], 'band_key_granules'), i64(X / g, 'band_extra_granule_count')], 'band_granule_count');
    const first = b.op(
      'Add',
      [b.op('Div', [b.op('Add', [b.op('Mul', [blockIndex, i64(bs, 'band_block4')], 'band_block_start'), b.op('Add', [shift, front], 'band_aligned_shift')], 'band_key_start'), i64(g, 'band_granule4')], 'band_first_granule'), i64(X / g, 'band_granule_base')],
      'band_first_granule_row',
    );
    const bandGranules = b.op('Add', [b.reshape(first, [-1, 1], 'band_first_col'), b.constant('band_granule_steps', tensorI64([1, L / g], Array.from({ length: L / g }, (_, u) => u)))], 'band_granule_index');
    const clamped = clamp(bandGranules, zero, b.op('Sub', [nG, i64(1, 'band_one2')], 'band_last_granule'), 'band_granule_clamped');
    const target = b.op('Concat', [vec(nBlocks, 'band_blocks_1'), b.ints('band_extra_granule_width', [X / g])], 'band_extra_granule_shape', axis(0));
    granules = b.op('Concat', [b.op('Expand', [extraGranules, target], 'band_extra_granules_all'), clamped], 'band_granules', axis(1));
  }
  const window = (t: Value, d: number, what: string) => b.reshape(b.op('Gather', [t, granules], `${what}_gathered`, axis(2)), [0, 0, 0, -1, d], what);
  const kw = window(kGranules, x.headDim, 'band_k_window');
  const vw = window(vGranules, x.vHeadDim, 'band_v_window');

  // the bias, shared by batch and heads: [nBlocks, b, W], or [B, 1, nBlocks, b, W] with kvLength
  const rowsAll = queryRows(blockIndex, 'band_query_index');
  const biasParts: Value[] = [];
  let extraBias: Value | undefined;
  if (E > 0) {
    const cols = b.constant('band_extra_cols', tensorI64([E], [...s.extra]));
    const keyStart = shift ? b.op('Add', [b.op('Mul', [b.reshape(blockIndex, [-1, 1, 1], 'band_block_index_3d'), i64(bs, 'band_block5')], 'band_block_start_3d'), shift], 'band_band_start') : undefined;
    const inBand = keyStart
      ? b.op('And', [ge(cols, keyStart, 'extra_ge_band'), b.op('Less', [cols, b.op('Add', [keyStart, i64(L, 'band_width')], 'band_key_end')], 'extra_lt_band')], 'extra_in_band')
      : undefined;
    const keep = and(
      [
        specMask(b, x.spec, ix(rowsAll, cols)),
        b.op('Less', [cols, T], 'extra_key_lt_nk'),
        kvLen5 ? b.op('Less', [cols, kvLen5], 'extra_kv_length_mask') : undefined,
        inBand ? b.op('Not', [inBand], 'extra_outside_band') : undefined,
      ],
      'extra_keep',
    );
    const all = b.op('Expand', [keep ?? b.constant('extra_all', Tensor.fromValues('bool', [1], [1])), b.op('Shape', [rowsAll], 'band_rows_shape')], 'extra_keep_full');
    extraBias = toBias(all, 'extra_bias');
  }
  let bandBias: Value | undefined;
  if (shift) {
    const exact = (blocks: Value, what: string): Value => {
      const cols = b.op(
        'Add',
        [b.op('Add', [b.reshape(b.op('Mul', [blocks, i64(bs, `${what}_b`)], `${what}_start`), [-1, 1, 1], `${what}_start_3d`), shift], `${what}_key_start`), b.constant(`${what}_steps`, tensorI64([1, 1, L], Array.from({ length: L }, (_, t) => t)))],
        `${what}_key_index`,
      );
      const keep = and(
        [
          specMask(b, x.spec, ix(queryRows(blocks, `${what}_query_index`), cols)),
          ge(cols, zero, `${what}_key_ge0`),
          b.op('Less', [cols, T], `${what}_key_lt_nk`),
          kvLen5 ? b.op('Less', [cols, kvLen5], `${what}_kv_length_mask`) : undefined,
        ],
        `${what}_keep`,
      )!;
      const shape = b.op('Concat', [b.op('Shape', [blocks], `${what}_count`), b.ints(`${what}_dims`, [bs, L])], `${what}_shape`, axis(0));
      return b.op('Expand', [toBias(keep, `${what}_keep_bias`), shape], `${what}_bias`);
    };
    if (kvLen5) {
      bandBias = exact(blockIndex, 'band_exact');
    } else {
      // head blocks read keys before the spec's absolute reach (or below 0), tail blocks keys at or past T
      const reach = absoluteReach(x.spec);
      const low = s.lo < 0 ? shift : off;
      const head = b.op('Min', [b.op('Div', [b.op('Max', [b.op('Sub', [i64(reach + bs - 1, 'band_reach'), low], 'band_head_num'), zero], 'band_head_pos'), i64(bs, 'band_block6')], 'band_head_div'), nBlocks], 'band_head_blocks');
      const tailNum = b.op('Add', [b.op('Sub', [T, shift], 'band_t_minus_shift'), i64(bs - L, 'band_tail_shift')], 'band_tail_num');
      const tail = clamp(b.op('Div', [b.op('Max', [tailNum, zero], 'band_tail_pos'), i64(bs, 'band_block7')], 'band_tail_div'), head, nBlocks, 'band_tail_start');
      const odd = b.op('Concat', [b.op('Range', [zero, head, i64(1, 'band_r2')], 'band_head_index'), b.op('Range', [tail, nBlocks, i64(1, 'band_r3')], 'band_tail_index')], 'band_edge_blocks', axis(0));
      const pattern = bandPattern(x.spec, s, bs, L);
      const constant = b.constant('band_pattern', Tensor.fromValues(sm, [1, bs, L], pattern.map((k) => (k ? 0 : -Infinity))));
      const full = b.op('Expand', [constant, b.op('Concat', [vec(nBlocks, 'band_blocks_2'), b.ints('band_pattern_dims', [bs, L])], 'band_pattern_shape', axis(0))], 'band_pattern_full');
      bandBias = b.op('ScatterND', [full, b.reshape(odd, [-1, 1], 'band_edge_index'), exact(odd, 'band_edge')], 'band_bias');
    }
  }
  // the empty-row key: bias 0 on rows that keep no key, -inf elsewhere
  const ones = (n: number, what: string) => b.constant(what, Tensor.fromValues(sm, [n, 1], Array(n).fill(1)));
  const counts = [extraBias ? b.op('MatMul', [b.op('Exp', [extraBias], 'extra_kept'), ones(E, 'extra_ones')], 'extra_count') : undefined, bandBias ? b.op('MatMul', [b.op('Exp', [bandBias], 'band_kept'), ones(L, 'band_ones')], 'band_count') : undefined].filter(
    (c): c is Value => c !== undefined,
  );
  const kept = counts.length === 1 ? counts[0]! : b.op('Add', counts, 'band_kept_count');
  const emptyBias = b.op('Where', [b.op('Less', [kept, b.scalar('band_half', sm, 0.5)], 'band_row_empty'), zeroF, negInf], 'band_empty_bias');
  biasParts.push(emptyBias);
  if (extraBias) biasParts.push(extraBias);
  if (X - 1 - E > 0) {
    const padShape = b.op('Concat', [b.op('Slice', [b.op('Shape', [emptyBias], 'band_empty_shape'), b.ints('band_ps_start', [0]), b.ints('band_ps_end', [-1]), b.ints('band_ps_axis', [0])], 'band_empty_lead'), b.ints('band_pad_cols', [X - 1 - E])], 'band_pad_shape', axis(0));
    biasParts.push(b.op('Expand', [negInf, padShape], 'band_pad_bias'));
  }
  if (bandBias) biasParts.push(bandBias);
  const bias = b.op('Concat', biasParts, 'band_bias_all', axis(-1));

  const qk = b.op('MatMul', [qBlocks, b.transpose(kw, [0, 1, 2, 4, 3], 'band_k_t')], 'band_qk');
  const logits = sm !== x.dtype ? b.cast(x.score(qk, 'band_scores'), sm, 'band_logits_cast') : x.score(qk, 'band_scores');
  const sm1 = b.op('Softmax', [b.op('Add', [logits, bias], 'band_logits')], 'band_softmax', { axis: { type: 'int', value: -1n } });
  const probs = sm !== x.dtype ? b.cast(sm1, x.dtype, 'band_probs_cast') : sm1;
  const yPadded = b.reshape(b.op('MatMul', [probs, vw], 'band_y_blocks'), [0, 0, -1, x.vHeadDim], 'band_y_padded');
  let y = b.op('Slice', [yPadded, b.ints('band_y_start', [0]), vec(S, 'band_y_end'), b.ints('band_y_axis', [2])], 'band_y');

  if (s.globalQueries.length > 0) {
    // global queries: dense rows, placed over the banded rows
    const qi = b.op('Sub', [b.ints('global_query_position', s.globalQueries), off], 'global_query_index');
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
