// Block-gathered lowering of block-sparse specs: each query block of bq queries reads only m chosen key blocks
// of bk keys, cost n · m · bk.
//
//   blocks(bq, bk, rows):   the chosen blocks are a constant table (rows padded to the longest row, a validity
//                           mask for the padding; query blocks past the layout read nothing);
//   topkBlocks(block, k):   block scores as the reference defines them (Quest: relu(q)·kmax - relu(-q)·kmin
//                           summed over d, max over the block's queries; mean: mean q · mean k), TopK over key
//                           blocks per query block (ties to the lower index, as ONNX TopK orders them);
//                           with causal = align, Where(c · block <= last query of block r + offset, score, -inf)
//                           first (offset 0 top-left, T - S otherwise: the IR's rule, spec/semantics/topk.ts).
// Then K, V padded to whole blocks, GatherND(batch_dims = 2) of the chosen blocks, scores
// [B, H, nQB, bq, m·bk], a key-index mask (padding, kvLength, invalid slots), softmax, weighted sum,
// reshape back and slice the padding off.
//   causal ∩ (blocks | topkBlocks):  the same gather, the causal mask j <= i + offset applied inside the gathered
//                           blocks (the diagonal block partly masked); a top-k leaf without `causal` ranks every
//                           key block, the future ones included (the cut comes after the choice), so a query
//                           block may spend some of its k on blocks it cannot see; sparsify writes the leaf with
//                           `causal` on a causal site
//   key bias [Bb, Hb, 1, T]: padded and blocked like K, gathered by the same indices, added to the scores
//                           (a boolean keep-mask arrives as 0 / -inf); the top-k scores ignore it, as the IR's do

import { type Blocks, type DType, Tensor, type TopKBlocks, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

export interface BlockGatherInputs {
  readonly spec: Blocks | TopKBlocks;
  /** [B, H, S, D], [B, H, T, D], [B, H, T, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly dtype: DType;
  readonly scale: number;
  readonly opset: number;
  readonly score: (qk: Value, what: string) => Value;
  readonly softmax: (logits: Value, keep: Value | undefined, what: string) => Value;
  readonly kvLength?: Value;
  /**
   * The keys the spec's selection reads (top-k block scores) when they differ from `k`: the raw keys, padding
   * included, as the IR defines the selection; `k` has padding out of reach (padding.ts). Default `k`.
   */
  readonly selectionK?: Value;
  /**
   * The causal cut, when the spec is causal ∩ (blocks | topkBlocks): query i sees keys j <= i + offset (int64: a
   * scalar, or [B, 1, 1, 1] per batch).
   */
  readonly causalOffset?: Value;
  /** A key bias [Bb, Hb, 1, T] in the scores' type (key-bias.ts), added to the gathered scores. */
  readonly keyBias?: Value;
}

const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;

/** The block-sparse attention output [B, H, S, Dv]. */
export function blockGatherAttention(b: NodeBuilder, x: BlockGatherInputs): Value {
  return blockGatherParts(b, x).y;
}

/** The block-gathered output and what a guarded form reads from it (see BlockGatherParts). */
export interface BlockGatherParts {
  readonly y: Value;
  /** The scores over the gathered keys [B, H, nQB, bq, m·bk] (before the mask) and the keep-mask over them. */
  readonly scores: Value;
  readonly keep: Value;
  /** The softmax over the gathered keys [B, H, nQB, bq, m·bk] (0 outside `keep`; a row keeping nothing is 0). */
  readonly probs: Value;
  /** The chosen key block of each slot [B, H, nQB, m] (possibly past the keys) and which slots are real. */
  readonly chosen: Value;
  readonly slotValid?: Value;
  /** The query and key block counts (int64 scalars). */
  readonly nQB: Value;
  readonly nKB: Value;
}

/** The block-gathered output, its scores, keep-mask and softmax, and the chosen blocks (see the comment at the top). */
export function blockGatherParts(b: NodeBuilder, x: BlockGatherInputs): BlockGatherParts {
  const spec = x.spec;
  const bq = spec.kind === 'blocks' ? spec.blockQ : spec.block;
  const bk = spec.kind === 'blocks' ? spec.blockK : spec.block;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const shapeQ = b.op('Shape', [x.q], 'blk_q_shape');
  const dim = (shape: Value, k: number, what: string) => b.op('Gather', [shape, i64(k, `${what}_axis`)], what, { axis: int(0) });
  const S = dim(shapeQ, 2, 'blk_nq');
  const T = dim(b.op('Shape', [x.k], 'blk_k_shape'), 2, 'blk_nk');
  const ceilDiv = (n: Value, d: number, what: string) => b.op('Div', [b.op('Add', [n, i64(d - 1, `${what}_round`)], `${what}_up`), i64(d, `${what}_size`)], what);
  const padTo = (t: Value, n: Value, blocks: Value, size: number, what: string, value?: Value): Value => {
    const extra = b.op('Sub', [b.op('Mul', [blocks, i64(size, `${what}_block`)], `${what}_padded_len`), n], `${what}_pad`);
    const pads = b.op('Concat', [b.ints(`${what}_pads_head`, [0, 0, 0, 0, 0, 0]), b.reshape(extra, [1], `${what}_pad_1`), b.ints(`${what}_pads_tail`, [0])], `${what}_pads`, { axis: int(0) });
    return b.op('Pad', value ? [t, pads, value] : [t, pads], `${what}_padded`);
  };
  const nQB = ceilDiv(S, bq, 'blk_query_blocks');
  const nKB = ceilDiv(T, bk, 'blk_key_blocks');
  const qBlocks = b.reshape(padTo(x.q, S, nQB, bq, 'blk_q'), [0, 0, -1, bq, x.headDim], 'blk_q_blocks');
  const blocked = (t: Value, d: number, what: string, value?: Value) => b.reshape(padTo(t, T, nKB, bk, what, value), [0, 0, -1, bk, d], `${what}_blocks`);
  const kBlocks = blocked(x.k, x.headDim, 'blk_k');
  const vBlocks = blocked(x.v, x.vHeadDim, 'blk_v');
  const batchHeads = b.op('Slice', [shapeQ, b.ints('blk_bh_start', [0]), b.ints('blk_bh_end', [2]), b.ints('blk_bh_axis', [0])], 'blk_batch_heads');

  let chosen: Value; // [B, H, nQB, m] key block indices, possibly past the keys (masked below)
  let slotValid: Value | undefined; // broadcastable to [B, H, nQB, m]
  if (spec.kind === 'blocks') {
    const m = Math.max(1, ...spec.rows.map((r) => r.length));
    const R = spec.rows.length;
    const table = [...spec.rows, []].flatMap((r) => Array.from({ length: m }, (_, s) => r[s] ?? 0));
    const valid = [...spec.rows, []].flatMap((r) => Array.from({ length: m }, (_, s) => (s < r.length ? 1 : 0)));
    const row = b.op('Min', [b.op('Range', [i64(0, 'blk_r0'), nQB, i64(1, 'blk_r1')], 'blk_query_block'), i64(R, 'blk_rows')], 'blk_layout_row');
    const idx = b.op('Gather', [b.constant('blk_table', Tensor.fromValues('i64', [R + 1, m], table.map(BigInt))), row], 'blk_row_blocks', { axis: int(0) });
    slotValid = b.op('Gather', [b.constant('blk_valid', Tensor.fromValues('bool', [R + 1, m], valid)), row], 'blk_row_valid', { axis: int(0) });
    const target = b.op('Concat', [batchHeads, b.op('Shape', [idx], 'blk_idx_shape')], 'blk_idx_target', { axis: int(0) });
    chosen = b.op('Expand', [idx, target], 'blk_chosen');
  } else {
    // block scores [B, H, nQB, nKB] as the reference defines them
    let scores: Value;
    const qRows = b.op('Range', [i64(0, 'blk_r2'), b.op('Mul', [nQB, i64(bq, 'blk_bq')], 'blk_nq_padded'), i64(1, 'blk_r3')], 'blk_query_index');
    const realRow = b.reshape(b.op('Less', [qRows, S], 'blk_real_query'), [-1, bq, 1], 'blk_real_query_blocks'); // [nQB, bq, 1]
    const reduce = (op: string, t: Value, axis: number, what: string) =>
      x.opset >= 18 ? b.op(op, [t, b.ints(`${what}_axes`, [axis])], what, { keepdims: int(0) }) : b.op(op, [t], what, { axes: { type: 'ints', value: [BigInt(axis)] }, keepdims: int(0) });
    if (spec.score === 'quest') {
      const inf = (sign: number, what: string) => b.scalar(what, x.dtype, sign * Infinity);
      const kmin = reduce('ReduceMin', blocked(x.selectionK ?? x.k, x.headDim, 'blk_kmin_src', inf(1, 'blk_pos_inf')), 3, 'blk_kmin'); // [B, H, nKB, D]
      const kmax = reduce('ReduceMax', blocked(x.selectionK ?? x.k, x.headDim, 'blk_kmax_src', inf(-1, 'blk_neg_inf')), 3, 'blk_kmax');
      const qPos = b.op('Relu', [qBlocks], 'blk_q_pos');
      const qNeg = b.op('Sub', [qBlocks, qPos], 'blk_q_neg');
      const bound = b.op(
        'Add',
        [
          b.op('MatMul', [qPos, b.unsqueeze(b.transpose(kmax, [0, 1, 3, 2], 'blk_kmax_t'), [2], 'blk_kmax_u', 4)], 'blk_bound_pos'),
          b.op('MatMul', [qNeg, b.unsqueeze(b.transpose(kmin, [0, 1, 3, 2], 'blk_kmin_t'), [2], 'blk_kmin_u', 4)], 'blk_bound_neg'),
        ],
        'blk_bound',
      ); // [B, H, nQB, bq, nKB]
      const real = b.op('Where', [realRow, bound, inf(-1, 'blk_neg_inf2')], 'blk_bound_real');
      scores = b.op('Mul', [reduce('ReduceMax', real, 3, 'blk_bound_max'), b.scalar('blk_scale', x.dtype, x.scale)], 'blk_scores');
    } else {
      const zero = b.scalar('blk_zero', x.dtype, 0);
      const count = (n: Value, blocks: Value, size: number, what: string) => {
        const start = b.op('Mul', [b.op('Range', [i64(0, `${what}_r0`), blocks, i64(1, `${what}_r1`)], `${what}_index`), i64(size, `${what}_size`)], `${what}_start`);
        const len = b.op('Min', [b.op('Sub', [n, start], `${what}_left`), i64(size, `${what}_size2`)], `${what}_len`);
        return b.cast(len, x.dtype, `${what}_count`);
      };
      const qSum = reduce('ReduceSum', b.op('Where', [realRow, qBlocks, zero], 'blk_q_real'), 3, 'blk_q_sum'); // [B, H, nQB, D]
      const kSum = reduce('ReduceSum', x.selectionK ? blocked(x.selectionK, x.headDim, 'blk_k_selection') : kBlocks, 3, 'blk_k_sum'); // padding is 0
      const qMean = b.op('Div', [qSum, b.reshape(count(S, nQB, bq, 'blk_qc'), [-1, 1], 'blk_qc_col')], 'blk_q_mean');
      const kMean = b.op('Div', [kSum, b.reshape(count(T, nKB, bk, 'blk_kc'), [-1, 1], 'blk_kc_col')], 'blk_k_mean');
      scores = b.op('Mul', [b.op('MatMul', [qMean, b.transpose(kMean, [0, 1, 3, 2], 'blk_k_mean_t')], 'blk_mean_dot'), b.scalar('blk_scale', x.dtype, x.scale)], 'blk_scores');
    }
    if (spec.causal !== undefined) scores = rankVisibleOnly(b, scores, spec, S, T, nQB, nKB, x.dtype);
    const kk = b.reshape(b.op('Min', [nKB, i64(spec.k, 'blk_k')], 'blk_kept'), [1], 'blk_kept_1');
    const top = b.node({ op: 'TopK', inputs: [scores, kk], attrs: { axis: int(-1), largest: int(1), sorted: int(1) } }, 'blk_topk', 2);
    chosen = top[1]!;
  }
  const at = b.op('Min', [chosen, b.op('Sub', [nKB, i64(1, 'blk_one')], 'blk_last_block')], 'blk_chosen_clamped');
  const nd = b.unsqueeze(at, [4], 'blk_nd_index', 4);
  const gather = (t: Value, d: number, what: string) =>
    b.reshape(b.op('GatherND', [t, nd], `${what}_chosen`, { batch_dims: int(2) }), [0, 0, 0, -1, d], `${what}_gathered`);
  const kg = gather(kBlocks, x.headDim, 'blk_k');
  const vg = gather(vBlocks, x.vHeadDim, 'blk_v');
  const qk = b.op('MatMul', [qBlocks, b.transpose(kg, [0, 1, 2, 4, 3], 'blk_k_t')], 'blk_qk');
  // key index of every gathered column [B, H, nQB, 1, m·bk]
  const inBlock = b.constant('blk_in_block', Tensor.fromValues('i64', [1, 1, 1, 1, bk], Array.from({ length: bk }, (_, t) => BigInt(t))));
  const keyAt = (idx: Value, what: string) => b.reshape(b.op('Add', [b.op('Mul', [b.unsqueeze(idx, [4], `${what}_u`, 4), i64(bk, `${what}_bk`)], `${what}_start`), inBlock], `${what}_keys`), [0, 0, 0, 1, -1], what);
  const cols = keyAt(chosen, 'blk_key_index');
  const parts: Value[] = [b.op('Less', [cols, T], 'blk_key_lt_nk')];
  if (slotValid) {
    const validCols = b.reshape(b.op('Expand', [b.unsqueeze(slotValid, [2], 'blk_valid_u', 2), b.ints('blk_valid_bk', [1, 1, bk])], 'blk_valid_keys'), [1, 1, -1, 1, spec.kind === 'blocks' ? Math.max(1, ...spec.rows.map((r) => r.length)) * bk : -1], 'blk_valid_cols');
    parts.push(validCols);
  }
  if (x.kvLength) parts.push(b.op('Less', [cols, b.reshape(x.kvLength, [-1, 1, 1, 1, 1], 'blk_kv_length')], 'blk_kv_length_mask'));
  if (x.causalOffset) {
    // query i of block r at i = r bq + t sees keys j <= i + offset: [nQB, bq, 1] (+ [B, 1, 1, 1, 1] per batch)
    const rows = b.reshape(b.op('Range', [i64(0, 'blk_c0'), b.op('Mul', [nQB, i64(bq, 'blk_c_bq')], 'blk_c_rows_end'), i64(1, 'blk_c1')], 'blk_c_rows'), [-1, bq, 1], 'blk_c_row_index');
    const limit = b.op('Add', [rows, b.reshape(x.causalOffset, [-1, 1, 1, 1, 1], 'blk_c_offset')], 'blk_c_limit');
    parts.push(b.op('Not', [b.op('Greater', [cols, limit], 'blk_c_future')], 'blk_causal_mask'));
  }
  const keep = parts.reduce((acc, m) => b.op('And', [acc, m], 'blk_keep'));
  const plain = x.score(qk, 'blk_scores');
  // the key bias of the gathered keys: [Bb, Hb, 1, T] -pad, blocks-> [B, H, nKB, bk] -GatherND-> [B, H, nQB, 1, m·bk]
  const scores = x.keyBias ? b.op('Add', [plain, gatherKeyBias(b, x.keyBias, nd, T, nKB, bk, batchHeads)], 'blk_scores_key_bias') : plain;
  const probs = x.softmax(scores, keep, 'blk');
  const yPadded = b.reshape(b.op('MatMul', [probs, vg], 'blk_y_blocks'), [0, 0, -1, x.vHeadDim], 'blk_y_padded');
  const y = b.op('Slice', [yPadded, b.ints('blk_y_start', [0]), b.reshape(S, [1], 'blk_y_end'), b.ints('blk_y_axis', [2])], 'blk_y');
  return { y, scores, keep, probs, chosen, ...(slotValid ? { slotValid } : {}), nQB, nKB };
}

/**
 * Block scores [B, H, nQB, nKB] -> the same with -inf where key block c starts after the last query of block r can
 * see, c · block > min(S, (r + 1) · block) - 1 + offset (offset 0 top-left, T - S bottom-right and past).
 */
function rankVisibleOnly(b: NodeBuilder, scores: Value, spec: TopKBlocks, S: Value, T: Value, nQB: Value, nKB: Value, dtype: DType): Value {
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const ends = b.op('Mul', [b.op('Range', [i64(1, 'blk_v0'), b.op('Add', [nQB, i64(1, 'blk_v1')], 'blk_v_end'), i64(1, 'blk_v2')], 'blk_v_blocks'), i64(spec.block, 'blk_v_size')], 'blk_v_ends');
  let last = b.op('Sub', [b.op('Min', [ends, S], 'blk_v_last_end'), i64(1, 'blk_v3')], 'blk_v_last_query'); // [nQB]
  if (spec.causal !== 'top-left') last = b.op('Add', [last, b.op('Sub', [T, S], 'blk_v_offset')], 'blk_v_last_aligned');
  const starts = b.op('Mul', [b.op('Range', [i64(0, 'blk_v4'), nKB, i64(1, 'blk_v5')], 'blk_v_key_blocks'), i64(spec.block, 'blk_v_size2')], 'blk_v_starts'); // [nKB]
  const future = b.op('Greater', [starts, b.reshape(last, [-1, 1], 'blk_v_last_col')], 'blk_v_future'); // [nQB, nKB]
  return b.op('Where', [future, b.scalar('blk_v_neg_inf', dtype, -Infinity), scores], 'blk_scores_visible');
}

/** The key bias [Bb, Hb, 1, T] at the gathered keys [B, H, nQB, 1, m·bk] (padding keys get 0: they are masked). */
function gatherKeyBias(b: NodeBuilder, bias: Value, nd: Value, T: Value, nKB: Value, bk: number, batchHeads: Value): Value {
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const pad = b.op('Sub', [b.op('Mul', [nKB, i64(bk, 'blk_bias_bk')], 'blk_bias_padded_len'), T], 'blk_bias_pad');
  const pads = b.op('Concat', [b.ints('blk_bias_pads_head', [0, 0, 0, 0, 0, 0, 0]), b.reshape(pad, [1], 'blk_bias_pad_1')], 'blk_bias_pads', { axis: int(0) });
  const blocks = b.reshape(b.op('Pad', [bias, pads], 'blk_bias_padded'), [0, 0, -1, bk], 'blk_bias_blocks'); // [Bb, Hb, nKB, bk]
  const target = b.op('Concat', [batchHeads, b.ints('blk_bias_block_dims', [1, 1])], 'blk_bias_target', { axis: int(0) });
  const full = b.op('Expand', [blocks, target], 'blk_bias_heads'); // [B, H, nKB, bk]
  return b.reshape(b.op('GatherND', [full, nd], 'blk_bias_chosen', { batch_dims: int(2) }), [0, 0, 0, 1, -1], 'blk_bias_gathered');
}
