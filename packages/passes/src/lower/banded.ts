// Banded (blocked) lowering of window-like specs: cost grows as n · (window + block), never n².
//
//   queries, padded to nBlocks · b and reshaped                                  [B, H, nBlocks, b, D]
//   keys K'' = [X extra rows | F zeros | K | zeros], viewed as granules of g keys [B, H, nG, g, D]:
//     the X extra rows are a zero "empty row" key, the E fixed extra keys (sinks, global tokens) and zeros;
//     F = (-shift) mod g aligns the band start shift = offset + lo to a granule;
//   one Gather of granules per block: the X extra rows, then the L keys [r·b + shift, r·b + shift + L)
//     (L = b + hi - lo rounded up to g)                                          [B, H, nBlocks, W = X + L, D]
//   scores = one MatMul Q Kᵀ, scale (softcap); + a key bias [Bb, Hb, 1, T] gathered like K (as a key of width 1);
//            + an additive bias (0 / -inf) shared by batch and heads;
//   Softmax over the last axis; one MatMul P V; reshape back and slice the padding off.
// The blocks, the granules each block reads and the bias (0 / -inf over [nBlocks, b, W], the empty-row key
// that makes a row keeping nothing give 0) come from band-window.ts, shared with the onnxruntime form
// (banded-native.ts).
// Global queries (a query position that is a global token sees every key) get dense rows of their own,
// placed with Where over the banded output: |G| · n work.
// Every length is read with Shape at run time: one model serves every sequence length.
// keySupport, bandBlockSize and bandedKeysPerQuery are properties of the spec: they live in @attnopt/ir
// (spec/support.ts) and are re-exported here for compatibility.

import { type DType, type KeySupport, type MaskSpec, Tensor, tensorAttr, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { bandedWidths, bandFrame } from './band-window.js';
import { specMask } from './mask.js';
import type { RelativeRows } from './relative-bias.js';

export { bandBlockSize, bandedKeysPerQuery, keySupport, type KeySupport } from '@attnopt/ir';
export { bandedWidths, bandPattern } from './band-window.js';

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
  /** A key bias [Bb, Hb, 1, T] in `dtype` (key-bias.ts), added to the scores: gathered per key like K. */
  readonly keyBias?: Value;
  /** A relative-position bias (relative-bias.ts), added to the scores: read on each gathered key's offset. */
  readonly relative?: RelativeRows;
}

/** The banded attention output [B, H, S, Dv] (see the comment at the top). */
export function bandedAttention(b: NodeBuilder, x: BandedInputs): Value {
  return bandedAttentionParts(b, x).y;
}

/**
 * The banded output and what a guarded form reads from it: the softmax input over the gathered keys
 * [B, H, nBlocks, b, W] (column 0 is the empty-row key, the others the extra keys and the band), its softmax, and
 * the blocks.
 */
export function bandedAttentionParts(b: NodeBuilder, x: BandedInputs): { y: Value; logits: Value; probs: Value; nBlocks: Value; offset: Value } {
  const { support: s, blockSize: bs } = x;
  const sm = x.softmaxType ?? x.dtype;
  const { granule: g, extraRows: X } = bandedWidths(s, bs);
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
  const kvLen5 = x.kvLength ? b.reshape(x.kvLength, [-1, 1, 1, 1, 1], 'band_kv_length') : undefined;
  const ix = (rows: Value, cols: Value) => ({ rows, cols, bottomRight: x.bottomRight, ...(x.past ? { past: x.past } : {}) });
  const frame = bandFrame(b, {
    spec: x.spec,
    support: s,
    blockSize: bs,
    S,
    T,
    dtype: sm,
    bottomRight: x.bottomRight,
    ...(x.past ? { past: x.past } : {}),
    ...(x.kvLength ? { kvLength: x.kvLength } : {}),
  });
  const { nBlocks, front, back, granules, bias, offset: off } = frame;

  // query blocks
  const padS = b.op('Sub', [b.op('Mul', [nBlocks, i64(bs, 'band_block2')], 'band_nq_padded'), S], 'band_pad');
  const pads = b.op('Concat', [b.ints('band_pads_head', [0, 0, 0, 0, 0, 0]), vec(padS, 'band_pad_1'), b.ints('band_pads_tail', [0])], 'band_pads', axis(0));
  const qBlocks = b.reshape(b.op('Pad', [x.q, pads], 'band_q_padded'), [0, 0, -1, bs, x.headDim], 'band_q_blocks');

  // K'' and V'': the extra rows, then the keys shifted so that every band starts on a granule
  const headsShape = b.op('Slice', [shapeK, b.ints('band_bh_start', [0]), b.ints('band_bh_end', [2]), b.ints('band_bh_axis', [0])], 'band_batch_heads');
  const zerosRows = (rows: Value, d: number, what: string, heads = headsShape) =>
    b.node(
      { op: 'ConstantOfShape', inputs: [b.op('Concat', [heads, vec(rows, `${what}_rows`), b.ints(`${what}_dim`, [d])], `${what}_shape`, axis(0))], attrs: { value: tensorAttr(Tensor.fromValues(x.dtype, [1], [0])) } },
      what,
    )[0]!;
  const extraAt = b.constant('band_extra_index', tensorI64([E], [...s.extra]));
  const clampedExtra = b.op('Min', [extraAt, b.op('Sub', [T, i64(1, 'band_one')], 'band_last_key')], 'band_extra_clamped');
  const keysOf = (t: Value, d: number, what: string, heads = headsShape): Value => {
    const parts: Value[] = [];
    // the extra rows: the empty-row key (zeros), the extra keys, zeros up to whole granules
    const extra = E > 0 ? b.op('Gather', [t, clampedExtra], `${what}_extra`, axis(2)) : undefined;
    parts.push(extra ? b.op('Pad', [extra, b.ints(`${what}_extra_pads`, [0, 0, 1, 0, 0, 0, X - 1 - E, 0])], `${what}_extra_rows`) : zerosRows(i64(X, `${what}_x`), d, `${what}_extra_rows`, heads));
    if (front && back) parts.push(zerosRows(front, d, `${what}_front`, heads), t, zerosRows(back, d, `${what}_back`, heads));
    const all = parts.length === 1 ? parts[0]! : b.op('Concat', parts, `${what}_rows`, axis(2));
    return b.reshape(all, [0, 0, -1, g, d], `${what}_granules`);
  };
  const kGranules = keysOf(x.k, x.headDim, 'band_k');
  const vGranules = keysOf(x.v, x.vHeadDim, 'band_v');
  const window = (t: Value, d: number, what: string) => b.reshape(b.op('Gather', [t, granules], `${what}_gathered`, axis(2)), [0, 0, 0, -1, d], what);
  const kw = window(kGranules, x.headDim, 'band_k_window');
  const vw = window(vGranules, x.vHeadDim, 'band_v_window');

  // the key bias as keys of width 1 [Bb, Hb, T, 1], gathered like K -> [Bb, Hb, nBlocks, 1, W]
  const keyBiasWindow = x.keyBias
    ? (() => {
        const column = b.transpose(x.keyBias, [0, 1, 3, 2], 'band_key_bias_column');
        const heads = b.op('Slice', [b.op('Shape', [column], 'band_key_bias_shape'), b.ints('band_key_bias_bh_start', [0]), b.ints('band_key_bias_bh_end', [2]), b.ints('band_key_bias_bh_axis', [0])], 'band_key_bias_heads');
        return b.reshape(window(keysOf(column, 1, 'band_key_bias', heads), 1, 'band_key_bias_gathered'), [0, 0, 0, 1, -1], 'band_key_bias_window');
      })()
    : undefined;
  const qk = b.op('MatMul', [qBlocks, b.transpose(kw, [0, 1, 2, 4, 3], 'band_k_t')], 'band_qk');
  const scores = x.score(qk, 'band_scores');
  const logits = sm !== x.dtype ? b.cast(scores, sm, 'band_logits_cast') : scores;
  // the key bias joins the band's 0 / -inf bias before the scores (a pass over [Bb, Hb, nBlocks, b, W], not over
  // every head's scores; bit for bit the same: kb + 0 = kb, kb - inf = -inf)
  const keyBias = keyBiasWindow && (sm !== x.dtype ? b.cast(keyBiasWindow, sm, 'band_key_bias_cast') : keyBiasWindow);
  const relShift = x.relative && front ? b.op('Add', [off, i64(s.lo, 'band_rel_lo')], 'band_rel_shift') : undefined;
  const relative = x.relative && relativeWindow(b, x.relative, { blockSize: bs, X, E, L: bandedWidths(s, bs).band, extra: s.extra, ...(relShift ? { shift: relShift } : {}), blockIndex: frame.blockIndex });
  const relBias = relative && (sm !== x.dtype ? b.cast(relative, sm, 'band_rel_cast') : relative);
  const allBias = [keyBias, relBias].reduce<Value>((acc, t) => (t ? b.op('Add', [t, acc], 'band_bias_terms') : acc), bias);
  const biased = b.op('Add', [logits, allBias], 'band_logits');
  const sm0 = b.op('Softmax', [biased], 'band_softmax', { axis: { type: 'int', value: -1n } });
  const probs = sm !== x.dtype ? b.cast(sm0, x.dtype, 'band_probs_cast') : sm0;
  // a key bias may be -inf on every key a row keeps: its softmax and output row are NaN, the IR's row is 0 (set on
  // the output, Dv wide, not on the probabilities, W wide)
  const yRaw = b.op('MatMul', [probs, vw], 'band_y_blocks');
  const yBlocks = x.keyBias ? b.op('Where', [b.op('IsNaN', [yRaw], 'band_y_isnan'), b.scalar('band_zero_y', x.dtype, 0), yRaw], 'band_y_finite') : yRaw;
  const yPadded = b.reshape(yBlocks, [0, 0, -1, x.vHeadDim], 'band_y_padded');
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
    const gKeyScores = x.keyBias ? b.op('Add', [x.score(qk, 'global_scores'), x.keyBias], 'global_scores_key_bias') : x.score(qk, 'global_scores');
    const gScores = x.relative ? b.op('Add', [gKeyScores, x.relative.rows(qAt, 'global_rel')], 'global_scores_rel') : gKeyScores;
    const yg = b.op('MatMul', [x.softmax(gScores, keep, 'global'), x.v], 'global_y');
    const queries = b.op('Range', [i64(0, 'global_r2'), S, i64(1, 'global_r3')], 'global_all_queries');
    const hit = b.cast(b.op('Equal', [b.reshape(queries, [-1, 1], 'global_queries_col'), b.reshape(qi, [1, -1], 'global_index_row')], 'global_hit'), 'f32', 'global_hit_f');
    const which = b.op('ArgMax', [hit], 'global_which', { axis: { type: 'int', value: 1n }, keepdims: { type: 'int', value: 0n } });
    const isGlobal = b.reshape(b.op('Equal', [b.op('Gather', [qi, which], 'global_which_index', axis(0)), queries], 'global_is'), [-1, 1], 'global_is_col');
    y = b.op('Where', [isGlobal, b.op('Gather', [yg, which], 'global_y_rows', axis(2)), y], 'banded_y');
  }
  return { y, logits: biased, probs: sm0, nBlocks, offset: off };
}

interface RelativeWindowShape {
  readonly blockSize: number;
  /** Extra rows (the empty-row key, the E extra keys, zeros), the band's width. */
  readonly X: number;
  readonly E: number;
  readonly L: number;
  readonly extra: readonly number[];
  /** The band's first key offset from its block's first query (offset + lo; int64 scalar); undefined without a band. */
  readonly shift?: Value;
  readonly blockIndex: Value;
}

/**
 * The relative bias over the gathered keys [1, C, 1 | nBlocks, b, W]: column X + c of row t in every block holds
 * key r·b + shift + c for query r·b + t, offset shift + c - t (the same in every block: one [b, W] pattern without
 * extra keys); an extra key e, offset e - (r·b + t), per block; the empty-row key and zero rows get 0.
 */
function relativeWindow(b: NodeBuilder, rel: RelativeRows, w: RelativeWindowShape): Value {
  const { blockSize: bs, X, E, L } = w;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  // the table's columns [1 | nBlocks, b, W] (column 0, zeros, where a column holds no key)
  const blocks = E > 0 ? b.op('Shape', [w.blockIndex], 'band_rel_block_count') : undefined;
  const spread = (t: Value, cols: number, what: string) => (blocks ? b.op('Expand', [t, b.op('Concat', [blocks, b.ints(`${what}_dims`, [bs, cols])], `${what}_shape`, axis(0))], what) : t);
  const zeroCols = (cols: number, what: string) => spread(b.constant(what, tensorI64([1, bs, cols], new Array<number>(bs * cols).fill(0))), cols, `${what}_all`);
  const parts: Value[] = [zeroCols(1, 'band_rel_empty_row')];
  if (E > 0) {
    const rows = b.op('Add', [b.op('Mul', [b.reshape(w.blockIndex, [-1, 1, 1], 'band_rel_blocks'), i64(bs, 'band_rel_b')], 'band_rel_block_start'), b.constant('band_rel_in_block', tensorI64([1, bs, 1], Array.from({ length: bs }, (_, t) => t)))], 'band_rel_rows');
    parts.push(rel.column(b.op('Sub', [b.constant('band_rel_extra', tensorI64([1, 1, E], [...w.extra])), rows], 'band_rel_extra_offsets'), 'band_rel_extra'));
  }
  if (X - 1 - E > 0) parts.push(zeroCols(X - 1 - E, 'band_rel_pad_rows'));
  if (w.shift) {
    const steps = b.constant('band_rel_steps', tensorI64([1, bs, L], Array.from({ length: bs * L }, (_, k) => (k % L) - Math.floor(k / L))));
    parts.push(spread(rel.column(b.op('Add', [steps, w.shift], 'band_rel_band_offsets'), 'band_rel_band'), L, 'band_rel_band_all'));
  }
  const values = rel.gather(b.op('Concat', parts, 'band_rel_columns', axis(-1)), 'band_rel_window');
  return b.unsqueeze(values, [0], 'band_rel_5d', 4);
}

function tensorI64(shape: number[], values: number[]): Tensor {
  return Tensor.fromValues('i64', shape, values.map((v) => BigInt(v)));
}
