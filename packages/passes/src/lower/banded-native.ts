// The banded lowering in the form onnxruntime runs fastest (LowerOptions.native 'onnxruntime'): the blocks, key
// windows and bias of banded.ts (band-window.ts), but each block's attention computed by one ONNX Attention
// (opset 23) over the batch of blocks, in the heads-in-the-last-axis layout so that no Transpose is needed:
//
//   Q [B, S, H·D] padded to nBlocks · b                                   -> [B · nBlocks, b, H·D]
//   K'' = [X extra rows | F zeros | K | zeros] [B, ., Hkv·D] as granules of g rows, one Gather per block
//                                                                         -> [B · nBlocks, W, Hkv·D] (V alike)
//   bias [nBlocks, b, W] (0 / -inf, the empty-row key included)           -> [B · nBlocks, 1, b, W]
//   Attention(q_num_heads H, kv_num_heads Hkv, scale, softcap)            -> [B · nBlocks, b, H·Dv], reshaped
//                                                                            back, the padding sliced off.
// onnxruntime's CPU Attention computes scores, bias, softmax and P V per (block, head) in one kernel: no Add,
// Softmax or layout Transpose over the n · W scores, and the K/V heads are shared in place (GQA without
// repeating them). The two GEMMs per block and head are the same as banded.ts's, and they dominate both: measured
// (tools/bench/banded-native.ts, n = 4096, 8 heads, d 64, window 256 + 4 sinks) about 1.2x the banded form.
// Global queries get dense rows from a second Attention over all keys, placed with Where.
// What it cannot take (opset < 23, a dtype other than f32, a softmax precision other than f32) lowers by
// banded.ts; nativeBandedBlocker says why.

import { attentionParams, type Graph, type MaskSpec, type Node, Tensor, tensorAttr, type Value } from '@attnopt/ir';
import { liveOutputs, NodeBuilder, redirect } from '@attnopt/rewrite';
import { inferDtype } from '../shape-inference/shapes.js';
import { bandedWidths, bandFrame } from './band-window.js';
import { specMask } from './mask.js';
import { padOutOfReach } from './padding.js';
import type { LowerOptions, LoweringPlan } from './attention.js';

/** The default-domain opset whose Attention op the onnxruntime form emits. */
export const NATIVE_ATTENTION_OPSET = 23;

/** Why `node`, planned as `plan` (loweringPlan), cannot take the onnxruntime banded form, or undefined. */
export function nativeBandedBlocker(node: Node, options: LowerOptions, plan: LoweringPlan): string | undefined {
  if (plan.strategy !== 'banded') return `not banded (${plan.why})`;
  if (options.opset < NATIVE_ATTENTION_OPSET) return `opset ${options.opset} < ${NATIVE_ATTENTION_OPSET} has no Attention op`;
  const p = attentionParams(node);
  if (p.guard !== undefined) return 'a guarded site takes the standard-op form (its certificate reads the banded scores)';
  if (node.inputs[3] !== undefined) return 'a bias input: the standard-op form gathers it per key';
  const [qIn, , , , pastKey] = node.inputs;
  const dtype = inferDtype(qIn) ?? inferDtype(pastKey);
  if (dtype !== 'f32') return `dtype ${dtype ?? 'unknown'}: the onnxruntime form is built and measured for f32`;
  if (p.softmaxPrecision !== undefined && p.softmaxPrecision !== 'f32') return `softmax precision ${p.softmaxPrecision}: Attention computes the softmax in f32`;
  return undefined;
}

/** Replaces one banded Attention node by the onnxruntime form (see the comment at the top). Throws where nativeBandedBlocker says no. */
export function lowerBandedNative(graph: Graph, node: Node, options: LowerOptions, plan: LoweringPlan): Node[] {
  const why = nativeBandedBlocker(node, options, plan);
  if (why !== undefined) throw new Error(`${node.describe()}: onnxruntime banded form does not apply: ${why}`);
  const p = attentionParams(node);
  const support = plan.support!;
  const bs = plan.blockSize!;
  const spec = p.spec as MaskSpec;
  const { numHeads: H, kvNumHeads: Hkv, headDim: D, vHeadDim: Dv } = p;
  const b = new NodeBuilder(graph, node.name || `${node.outputs[0]!.name}_attention`);
  const [qIn, kIn, vIn, , pastKey, pastValue, kvLength] = node.inputs;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const vec = (t: Value, what: string) => b.reshape(t, [1], what);
  const dim = (t: Value, k: number, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(k, `${what}_axis`)], what, axis(0));

  // Q, K, V with the heads in the last axis [B, S, heads · d]; K and V in bhsd for the present outputs
  const toBsd = (x: Value, heads: number, d: number, what: string): Value => {
    switch (p.layout) {
      case 'bhsd':
        return b.reshape(b.transpose(x, [0, 2, 1, 3], `${what}_bshd`), [0, 0, heads * d], `${what}_bsd`);
      case 'bshd':
        return b.reshape(x, [0, 0, heads * d], `${what}_bsd`);
      default:
        return x;
    }
  };
  let q: Value;
  let k: Value;
  let v: Value;
  if (p.layout === 'packed-qkv') {
    [q, k, v] = b.split(qIn!, 2, [H * D, Hkv * D, Hkv * D], 'qkv') as [Value, Value, Value];
  } else {
    q = toBsd(qIn!, H, D, 'q');
    k = toBsd(kIn!, Hkv, D, 'k');
    v = toBsd(vIn!, Hkv, Dv, 'v');
  }
  // present K/V [B, Hkv, past + T, d], computed only where something reads them
  const live = liveOutputs(graph, node);
  const present = (input: Value | undefined, bsd: Value, past: Value | undefined, d: number, what: string): Value => {
    const now =
      p.layout === 'bhsd' ? input! : b.transpose(p.layout === 'bshd' ? input! : b.reshape(bsd, [0, 0, Hkv, d], `${what}_split_heads`), [0, 2, 1, 3], `${what}_bhsd`);
    return past ? b.op('Concat', [past, now], what, axis(2)) : now;
  };
  const presentK = live[1] ? present(kIn, k, pastKey, D, 'present_key') : undefined;
  const presentV = live[2] ? present(vIn, v, pastValue, Dv, 'present_value') : undefined;
  // the cached keys go in front, in the bsd layout
  const withPast = (x: Value, past: Value | undefined, d: number, what: string): Value =>
    past ? b.op('Concat', [b.reshape(b.transpose(past, [0, 2, 1, 3], `${what}_past_bshd`), [0, 0, Hkv * d], `${what}_past_bsd`), x], `${what}_all`, axis(1)) : x;
  const kCat = withPast(k, pastKey, D, 'k');
  const vCat = withPast(v, pastValue, Dv, 'v');
  // keys and values at or past kvLength[b] (padding, which may hold anything) out of reach before the blocks read
  // them (padding.ts: the bias masks them by adding -inf, and P V gives 0 · NaN = NaN), sliced to the longest
  // kvLength without a scores output (the blocks mask keys at or past their count as padding); the alignment reads
  // the full key count
  const outOfReach = kvLength ? padOutOfReach(b, kCat, kvLength, 1, options.opset, p.scoresMode === undefined) : undefined;
  const unpadded = (x: Value, what: string): Value => (outOfReach ? outOfReach(x, what) : x);
  const kAll = unpadded(kCat, 'k_unpadded');
  const vAll = unpadded(vCat, 'v_unpadded');

  const S = dim(q, 1, 'band_nq');
  const T = dim(kAll, 1, 'band_nk');
  const batch = dim(q, 0, 'band_batch');
  const bottomRight = b.op('Sub', [outOfReach ? dim(kCat, 1, 'band_nk_all') : T, S], 'bottom_right');
  const past = pastKey ? dim(pastKey, 2, 'past_length') : undefined;
  const frame = bandFrame(b, { spec, support, blockSize: bs, S, T, dtype: 'f32', bottomRight, ...(past ? { past } : {}), ...(kvLength ? { kvLength } : {}) });
  const { nBlocks, front, back, offset } = frame;
  const { granule: g, extraRows: X, width: W } = bandedWidths(support, bs);
  const E = support.extra.length;

  // query blocks [B · nBlocks, b, H·D]
  const padS = b.op('Sub', [b.op('Mul', [nBlocks, i64(bs, 'band_block2')], 'band_nq_padded'), S], 'band_pad');
  const pads = b.op('Concat', [b.ints('band_pads_head', [0, 0, 0, 0]), vec(padS, 'band_pad_1'), b.ints('band_pads_tail', [0])], 'band_pads', axis(0));
  const qBlocks = b.reshape(b.op('Pad', [q, pads], 'band_q_padded'), [-1, bs, H * D], 'band_q_blocks');

  // K'' and V'' [B, rows, Hkv·d] as granules [B, nG, g·Hkv·d]; one Gather per block: [B · nBlocks, W, Hkv·d]
  const zerosRows = (rows: Value, width: number, what: string) =>
    b.node(
      { op: 'ConstantOfShape', inputs: [b.op('Concat', [vec(batch, `${what}_batch`), vec(rows, `${what}_rows`), b.ints(`${what}_dim`, [width])], `${what}_shape`, axis(0))], attrs: { value: tensorAttr(Tensor.fromValues('f32', [1], [0])) } },
      what,
    )[0]!;
  const extraAt = b.constant('band_extra_index', Tensor.fromValues('i64', [E], support.extra.map((t) => BigInt(t))));
  const clampedExtra = b.op('Min', [extraAt, b.op('Sub', [T, i64(1, 'band_one')], 'band_last_key')], 'band_extra_clamped');
  const granules = front ? frame.granules : b.op('Expand', [frame.granules, b.op('Concat', [vec(nBlocks, 'band_blocks_n'), b.ints('band_extra_granule_width', [X / g])], 'band_granules_shape', axis(0))], 'band_granules_all');
  const window = (t: Value, width: number, what: string): Value => {
    const parts: Value[] = [];
    const extra = E > 0 ? b.op('Gather', [t, clampedExtra], `${what}_extra`, axis(1)) : undefined;
    parts.push(extra ? b.op('Pad', [extra, b.ints(`${what}_extra_pads`, [0, 1, 0, 0, X - 1 - E, 0])], `${what}_extra_rows`) : zerosRows(i64(X, `${what}_x`), width, `${what}_extra_rows`));
    if (front && back) parts.push(zerosRows(front, width, `${what}_front`), t, zerosRows(back, width, `${what}_back`));
    const rows = parts.length === 1 ? parts[0]! : b.op('Concat', parts, `${what}_rows`, axis(1));
    const gathered = b.op('Gather', [b.reshape(rows, [0, -1, g * width], `${what}_granules`), granules], `${what}_gathered`, axis(1));
    return b.reshape(gathered, [-1, W, width], `${what}_window`);
  };
  const kw = window(kAll, Hkv * D, 'band_k');
  const vw = window(vAll, Hkv * Dv, 'band_v');

  // the bias per block batch [B · nBlocks, 1, b, W]
  const bias = kvLength
    ? b.reshape(frame.bias, [-1, 1, bs, W], 'band_bias_blocks')
    : b.reshape(b.op('Expand', [b.reshape(frame.bias, [1, -1, bs, W], 'band_bias_1'), b.op('Concat', [vec(batch, 'band_bias_batch'), b.ints('band_bias_ones', [1, 1, 1])], 'band_bias_shape', axis(0))], 'band_bias_batches'), [-1, 1, bs, W], 'band_bias_blocks');
  const attention = (qq: Value, kk: Value, vv: Value, mask: Value, what: string) =>
    b.op('Attention', [qq, kk, vv, mask], what, {
      q_num_heads: { type: 'int', value: BigInt(H) },
      kv_num_heads: { type: 'int', value: BigInt(Hkv) },
      scale: { type: 'float', value: p.scale },
      ...(p.softcap > 0 ? { softcap: { type: 'float', value: p.softcap } } : {}),
    });
  const yBlocks = attention(qBlocks, kw, vw, bias, 'band_attention');
  const yShape = b.op('Concat', [vec(batch, 'band_y_batch'), b.ints('band_y_dims', [-1, H * Dv])], 'band_y_shape', axis(0));
  const yPadded = b.op('Reshape', [yBlocks, yShape], 'band_y_padded');
  let y = b.op('Slice', [yPadded, b.ints('band_y_start', [0]), vec(S, 'band_y_end'), b.ints('band_y_axis', [1])], 'band_y');

  if (support.globalQueries.length > 0) {
    // global queries: dense rows over every key, placed over the banded rows
    const qi = b.op('Sub', [b.ints('global_query_position', support.globalQueries), offset], 'global_query_index');
    const lastQuery = b.op('Sub', [S, i64(1, 'global_one')], 'global_last_query');
    const qAt = b.op('Max', [b.op('Min', [qi, lastQuery], 'global_query_min'), i64(0, 'global_zero')], 'global_query_clamped');
    const qg = b.op('Gather', [q, qAt], 'global_q', axis(1));
    const cols = b.op('Range', [i64(0, 'global_r0'), T, i64(1, 'global_r1')], 'global_key_index');
    const ix = { rows: b.reshape(qi, [-1, 1], 'global_rows'), cols, bottomRight, ...(past ? { past } : {}) };
    const parts = [specMask(b, spec, ix), kvLength ? b.op('Less', [cols, b.reshape(kvLength, [-1, 1, 1, 1], 'global_kv_length')], 'global_kv_length_mask') : undefined].filter((m): m is Value => m !== undefined);
    const keep = parts.length === 0 ? undefined : parts.reduce((acc, m) => b.op('And', [acc, m], 'global_keep'));
    // [B or 1, 1, |G|, T]; a row that keeps no key gives 0 (onnxruntime's kernel gives 0 there already, the
    // ONNX definition a softmax over -inf: NaN)
    const keep4 = keep ? b.op('Expand', [keep, b.ints('global_keep_rank', [1, 1, 1, 1])], 'global_keep_4d') : b.constant('global_keep_all', Tensor.fromValues('bool', [1, 1, 1, 1], [1]));
    const mask = b.op('Where', [keep4, b.scalar('global_zero_bias', 'f32', 0), b.scalar('global_minus_inf', 'f32', -Infinity)], 'global_bias');
    const yg = attention(qg, kAll, vAll, mask, 'global_attention');
    const anyKept = b.op('Transpose', [b.op('ReduceMax', [b.cast(keep4, 'f32', 'global_keep_f'), b.ints('global_reduce_axes', [3])], 'global_any_kept', { keepdims: { type: 'int', value: 1n } })], 'global_any_kept_bsd', { perm: { type: 'ints', value: [0n, 2n, 1n, 3n] } });
    const ygSafe = b.op('Where', [b.cast(b.reshape(anyKept, [0, 0, -1], 'global_any_kept_3d'), 'bool', 'global_row_kept'), yg, b.scalar('global_zero_y', 'f32', 0)], 'global_y');
    const queries = b.op('Range', [i64(0, 'global_r2'), S, i64(1, 'global_r3')], 'global_all_queries');
    const hit = b.cast(b.op('Equal', [b.reshape(queries, [-1, 1], 'global_queries_col'), b.reshape(qi, [1, -1], 'global_index_row')], 'global_hit'), 'f32', 'global_hit_f');
    const which = b.op('ArgMax', [hit], 'global_which', { axis: { type: 'int', value: 1n }, keepdims: { type: 'int', value: 0n } });
    const isGlobal = b.reshape(b.op('Equal', [b.op('Gather', [qi, which], 'global_which_index', axis(0)), queries], 'global_is'), [-1, 1], 'global_is_col');
    y = b.op('Where', [isGlobal, b.op('Gather', [ygSafe, which], 'global_y_rows', axis(1)), y], 'banded_y');
  }

  // Y back to the layout; present K/V as they are
  const yOut = p.layout === 'bhsd' ? b.transpose(b.reshape(y, [0, 0, H, Dv], 'y_bshd'), [0, 2, 1, 3], 'y') : p.layout === 'bshd' ? b.reshape(y, [0, 0, H, Dv], 'y') : y;
  return place(graph, node, b, [yOut, presentK, presentV]);
}

/** The nodes placed where `node` was, its outputs redirected to `values` (an input passed through gets an Identity). */
function place(graph: Graph, node: Node, b: NodeBuilder, values: (Value | undefined)[]): Node[] {
  const finals = node.outputs.map((old, k) => {
    const x = values[k];
    if (x === undefined) return undefined;
    return x.producer === undefined || !b.nodes.includes(x.producer) ? b.op('Identity', [x], `output_${k}`) : x;
  });
  const at0 = graph.nodes.indexOf(node);
  b.nodes.forEach((n, k) => graph.addNode(n, at0 + k));
  node.outputs.forEach((old, k) => {
    if (finals[k]) redirect(graph, old, finals[k]!);
  });
  graph.removeNode(node);
  return b.nodes;
}

