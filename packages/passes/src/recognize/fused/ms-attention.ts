// com.microsoft Attention and QAttention (BERT/GPT-2 style, input projection inside; QAttention's in int8 with
// scales and zero points, as MatMulInteger) -> prelude MatMul(X, W) + Add(bias) +
// Split into Q, K, V (bsd) + attnopt::Attention. unidirectional -> causal from the bottom right (after the
// past); mask_index [B, T] or [B, S, T] of 1/0 -> the additive bias onnxruntime builds (mask_filter_value
// where 0); mask_index [B] (key lengths, right padding) -> the same additive bias on keys >= length (onnxruntime
// adds mask_filter_value there rather than dropping the keys: a row with length 0 averages every key);
// mask_index [B, 1, M, M] (Megatron) -> its [past, past + S) x [0, past + S) window, then the same bias;
// past [2, B, N, P, H] -> Gather 0 / 1, present [2, B, N, P + S, H] -> Unsqueeze + Concat after the Attention node.
// unidirectional -> causal(bottom-right): onnxruntime adds mask_filter_value above the diagonal, which is the
// same after softmax unless a row's logits spread over more than about |mask_filter_value| (1e4 by default).
// Weights of symbolic width without qkv_hidden_sizes: the head size is known only at run time -> Q, K, V in
// bhsd with headDim 0 (see runtime-head.ts), the default scale applied to Q at run time.

import { type AttentionParams, causal, dense, type Graph, type Node, RUNTIME_HEAD_DIM, Value } from '@attnopt/ir';
import { appendOutput, attrFloat, attrInt, attrInts, baseName, insertAfter, liveOutputs, matched, MS_DOMAIN, NodeBuilder, noMatch, redirect, removeDead, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { extendLift, liftSite } from '../lift.js';
import { inferDtype, staticDim, staticShape } from '../../shape-inference/shapes.js';
import { lengthsBias, paddingBias } from './padding-mask.js';
import { type RuntimeHeadQkv, runtimeHeadOutput, runtimeHeadQkv } from './runtime-head.js';

const KNOWN = ['num_heads', 'unidirectional', 'scale', 'mask_filter_value', 'qkv_hidden_sizes', 'do_rotary', 'past_present_share_buffer', 'rotary_embedding_dim'];

export interface MsAttentionMatch {
  readonly params: AttentionParams;
  /** Hidden sizes of Q, K, V; undefined when the head size is known only at run time (headDim 0). */
  readonly sizes?: readonly [number, number, number];
  /** Head size at run time without a `scale` attribute: Q is multiplied by 1/sqrt(D) in the prelude. */
  readonly runtimeScale?: boolean;
  readonly mask?: 'lengths' | 2 | 3 | 4;
  readonly present: boolean;
}

/** Key lengths [B] -> filter where key index >= length, as [B, 1, 1, S] (no past: 1D masks come without). */
function lengthBias(b: NodeBuilder, lengths: Value, x: Value, filter: number, dtype: 'f32' | 'f16'): Value {
  return lengthsBias(b, lengths, b.dim(x, 1, 'key_count'), filter, dtype);
}

/** mask[:, :, P : P + S, 0 : P + S] with P the past length (0 without past) and S the query length. */
function megatronWindow(b: NodeBuilder, mask: Value, x: Value, past: Value | undefined): Value {
  const dim = (v: Value, k: number, what: string) =>
    b.op('Slice', [b.op('Shape', [v], `${what}_shape`), b.ints(`${what}_start`, [k]), b.ints(`${what}_end`, [k + 1])], what);
  const S = dim(x, 1, 'query_length');
  const P = past ? dim(past, 3, 'past_length') : b.ints('past_length', [0]);
  const T = b.op('Add', [P, S], 'total_length');
  const zero = b.ints('mask_key_start', [0]);
  return b.op('Slice', [mask, b.op('Concat', [P, zero], 'mask_starts', { axis: { type: 'int', value: 0n } }), b.op('Concat', [T, T], 'mask_ends', { axis: { type: 'int', value: 0n } }), b.ints('mask_axes', [2, 3])], 'mask_window');
}

/** Where a node keeps the inputs the rule reads; a quantized node also its scales and zero points. */
interface Slots {
  readonly x: number;
  readonly w: number;
  readonly bias: number;
  readonly mask: number;
  readonly past: number;
  readonly attentionBias?: number;
  readonly pastLength?: number;
  /** QAttention: input_scale, weight_scale, input_zero_point, weight_zero_point. */
  readonly quantized?: { readonly xScale: number; readonly wScale: number; readonly xZeroPoint: number; readonly wZeroPoint: number };
}

const ATTENTION_SLOTS: Slots = { x: 0, w: 1, bias: 2, mask: 3, past: 4, attentionBias: 5, pastLength: 6 };
const QATTENTION_SLOTS: Slots = { x: 0, w: 1, bias: 2, mask: 5, past: 8, quantized: { xScale: 3, wScale: 4, xZeroPoint: 6, wZeroPoint: 7 } };

/** The inputs of `node` by role, per `slots`. */
function inputsOf(node: Node, slots: Slots) {
  const at = (k: number | undefined) => (k === undefined ? undefined : node.inputs[k]);
  return { x: at(slots.x), w: at(slots.w), bias: at(slots.bias), mask: at(slots.mask), past: at(slots.past), attentionBias: at(slots.attentionBias), pastLength: at(slots.pastLength) };
}

// Attention(X, W, b, mask_index, past, attention_bias) {num_heads, unidirectional}
//   -> Split(X W + b) = Q, K, V; attnopt::Attention(Q, K, V, bias = attention_bias + pad(mask), past)
export const msAttentionRule: RewriteRule<MsAttentionMatch> = msAttentionRuleFor('ms-attention', 'Attention', ATTENTION_SLOTS);

// QAttention(X8, W8, b, x_scale, w_scale, mask_index, x_zero_point, w_zero_point, past) {num_heads, unidirectional}
//   -> Split(Cast(MatMulInteger(X8, W8, zero points)) · x_scale · w_scale + b) = Q, K, V; attnopt::Attention as above
export const qAttentionRule: RewriteRule<MsAttentionMatch> = msAttentionRuleFor('ms-qattention', 'QAttention', QATTENTION_SLOTS);

function msAttentionRuleFor(name: string, op: string, slots: Slots): RewriteRule<MsAttentionMatch> {
  return {
    name,
    summary: `com.microsoft::${op}(X, W, b, mask, past) -> Split(X W + b) + attnopt::Attention`,
    roots: [`${MS_DOMAIN}::${op}`],
    match(node: Node, graph: Graph) {
      const extra = unknownAttrs(node, KNOWN);
      if (extra.length > 0) return noMatch(`unknown attributes ${extra.join(', ')}`);
      if ((attrInt(node, 'do_rotary') ?? 0) !== 0) return noMatch('rotary embedding inside Attention is not lifted');
      if ((attrInt(node, 'past_present_share_buffer') ?? 0) !== 0) return noMatch('past_present_share_buffer is not lifted');
      const { x, w, bias, mask, past, pastLength } = inputsOf(node, slots);
      if (pastLength) return noMatch('past_sequence_length is not lifted');
      const N = attrInt(node, 'num_heads');
      if (N === undefined) return noMatch('num_heads is required');
      const ws = staticShape(w);
      const total = staticDim(w, 1);
      if (ws?.length !== 2) return noMatch('weights must be 2D [input hidden size, output width]');
      const hs = attrInts(node, 'qkv_hidden_sizes');
      // symbolic width, no qkv_hidden_sizes: three equal parts of width / 3, head size (width / 3) / N at run time
      const runtimeHead = total === undefined && !hs;
      const sizes: [number, number, number] | undefined = runtimeHead ? undefined : hs ? [hs[0]!, hs[1]!, hs[2]!] : [total! / 3, total! / 3, total! / 3];
      if (sizes) {
        if (total !== undefined && sizes[0] + sizes[1] + sizes[2] !== total) return noMatch('qkv_hidden_sizes do not add up to the weights');
        if (sizes[0] !== sizes[1]) return noMatch('Q and K hidden sizes differ');
        if (sizes.some((s) => !Number.isInteger(s) || s % N !== 0)) {
          // onnxruntime (which defines com.microsoft::Attention) rejects the node before computing anything
          return noMatch(
            `hidden sizes ${sizes.join(', ')} are not multiples of num_heads ${N}: onnxruntime rejects the node ("hidden_size should be divisible by num_heads"), so the model is not valid ONNX and has no exact meaning to lift`,
          );
        }
      }
      const xr = staticShape(x)?.length;
      if (xr !== undefined && xr !== 3) return noMatch('input must be 3D [B, S, In]');
      if (!bias) return noMatch('the bias input is required');
      const dtype = slots.quantized ? inferDtype(bias) : inferDtype(x) ?? inferDtype(w);
      if (dtype !== 'f32' && dtype !== 'f16') return noMatch('only f32/f16 inputs are lifted');
      if (slots.quantized && total === undefined) return noMatch('quantized weights of a width known only at run time are not lifted');
      let maskKind: MsAttentionMatch['mask'];
      if (mask) {
        const r = staticShape(mask)?.length;
        const s0 = staticShape(mask)?.[0];
        const xb = staticShape(x)?.[0];
        if (r === 1 && (s0 === xb || s0 === 'batch' || typeof s0 !== 'number')) maskKind = 'lengths';
        else if (r === 2) maskKind = 2;
        else if (r === 3) maskKind = 3;
        else if (r === 4) maskKind = 4;
        else return noMatch(`mask_index of rank ${r ?? 'unknown'} (start/end positions, 4D) is not lifted`);
        if (r === 1 && typeof s0 === 'number' && typeof xb === 'number' && s0 !== xb) return noMatch('1D mask_index with start positions is not lifted');
      }
      if (maskKind === 'lengths' && past) return noMatch('1D mask_index together with past is not lifted');
      const outputs = liveOutputs(graph, node);
      if (past && staticShape(past)?.length !== 5) return noMatch('past must be [2, B, N, P, H]');
      if (outputs[1] !== undefined && sizes && sizes[1] !== sizes[2]) return noMatch('present with different K and V head sizes');
      const scaleAttr = attrFloat(node, 'scale') ?? 0;
      const spec = (attrInt(node, 'unidirectional') ?? 0) !== 0 ? causal('bottom-right') : dense;
      const rest = { present: outputs[1] !== undefined, ...(maskKind !== undefined ? { mask: maskKind } : {}) };
      if (!sizes) {
        // Q arrives scaled by 1/sqrt(D) (computed at run time) unless the node has its own scale
        const params: AttentionParams = {
          numHeads: N,
          kvNumHeads: N,
          headDim: RUNTIME_HEAD_DIM,
          vHeadDim: RUNTIME_HEAD_DIM,
          scale: scaleAttr === 0 ? 1 : scaleAttr,
          softcap: 0,
          layout: 'bhsd',
          spec,
        };
        return matched({ params, runtimeScale: scaleAttr === 0, ...rest });
      }
      const headDim = sizes[0] / N;
      const params: AttentionParams = {
        numHeads: N,
        kvNumHeads: N,
        headDim,
        vHeadDim: sizes[2] / N,
        scale: scaleAttr === 0 ? 1 / Math.sqrt(headDim) : scaleAttr,
        softcap: 0,
        layout: 'bsd',
        spec,
      };
      return matched({ params, sizes, ...rest });
    },
    rewrite(graph, node, m) {
      const { x, w, bias: projBias, mask, past, attentionBias: attnBias } = inputsOf(node, slots);
      const b = new NodeBuilder(graph, baseName(node));
      const dtype = (slots.quantized ? inferDtype(projBias) : inferDtype(x) ?? inferDtype(w)) === 'f16' ? 'f16' : 'f32';
      let q: Value;
      let k: Value;
      let v: Value;
      let runtime: RuntimeHeadQkv | undefined;
      if (m.sizes) {
        // onnxruntime's GenerateQKV accumulates X W onto the broadcast bias (GEMM, beta = 1); Gemm(X2d, W, bias)
        // rounds the same way, MatMul + Add (bias added last) does not.
        const rows = b.op('Flatten', [x], 'x_2d', { axis: { type: 'int', value: 2n } });
        const flat = slots.quantized ? quantizedProjection(b, node, slots.quantized, rows, w!, projBias!, dtype) : b.op('Gemm', [rows, w, projBias], 'qkv_gemm');
        const batchSeq = b.op('Slice', [b.op('Shape', [x], 'x_shape'), b.ints('x_shape_start', [0]), b.ints('x_shape_end', [2])], 'x_batch_seq');
        const total = m.sizes[0] + m.sizes[1] + m.sizes[2];
        const proj = b.op('Reshape', [flat, b.op('Concat', [batchSeq, b.ints('qkv_width', [total])], 'qkv_shape', { axis: { type: 'int', value: 0n } })], 'qkv');
        [q, k, v] = b.split(proj, 2, m.sizes, 'qkv_split') as [Value, Value, Value];
      } else {
        runtime = runtimeHeadQkv(b, x!, w!, projBias!, m.params.numHeads, m.runtimeScale === true, dtype);
        ({ q, k, v } = runtime);
      }
      let pastKey: Value | undefined;
      let pastValue: Value | undefined;
      if (past) {
        const at = (k: number, what: string) => b.op('Gather', [past, b.scalar(`${what}_index`, 'i64', k)], what, { axis: { type: 'int', value: 0n } });
        pastKey = at(0, 'past_key');
        pastValue = at(1, 'past_value');
      }
      let bias: Value | undefined = attnBias;
      if (m.mask === 'lengths') {
        const pad = lengthBias(b, mask!, x!, attrFloat(node, 'mask_filter_value') ?? -10000, dtype);
        bias = bias ? b.op('Add', [bias, pad], 'attention_bias_padded') : pad;
      } else if (m.mask !== undefined) {
        // 4D (Megatron) [B, 1, M, M]: rows past .. past + S, keys 0 .. past + S of a max-length mask
        const window = m.mask === 4 ? megatronWindow(b, mask!, x!, past) : mask!;
        const pad = paddingBias(b, window, m.mask, attrFloat(node, 'mask_filter_value') ?? -10000, dtype);
        bias = bias ? b.op('Add', [bias, pad], 'attention_bias_padded') : pad;
      }
      // head size at run time: the Attention writes Y in bhsd, the postlude gives back [B, S, hidden]
      const prelude = b.nodes.splice(0);
      const yBhsd = runtime ? b.fresh('attention_bhsd') : undefined;
      if (runtime) runtimeHeadOutput(b, yBhsd!, runtime);
      const attention = liftSite(graph, 'ms-attention', {
        params: m.params,
        inputs: {
          q,
          k,
          v,
          ...(bias ? { bias } : {}),
          ...(pastKey ? { pastKey, pastValue: pastValue! } : {}),
        },
        output: node.outputs[0]!,
        matched: [node],
        prelude,
        ...(runtime ? { postlude: b.nodes, attentionOutput: yBhsd! } : {}),
      });
      if (m.present) {
        const post = new NodeBuilder(graph, baseName(node));
        const pk = post.fresh('present_key');
        const pv = post.fresh('present_value');
        appendOutput(attention, pk);
        appendOutput(attention, pv);
        const stacked = post.op('Concat', [post.unsqueeze(pk, [0], 'present_key_2', 4), post.unsqueeze(pv, [0], 'present_value_2', 4)], 'present', {
          axis: { type: 'int', value: 0n },
        }, node.outputs[1]!.type);
        insertAfter(graph, attention, post.nodes);
        redirect(graph, node.outputs[1]!, stacked);
        removeDead(graph, [node]);
        extendLift(attention, { added: post.nodes, replaced: [node.outputs[1]!], fresh: [stacked] });
      }
    },
  };
}

/** QAttention's projection as onnxruntime computes it: the int8 product with zero points, exact in int32, then scaled and biased. */
function quantizedProjection(b: NodeBuilder, node: Node, q: NonNullable<Slots['quantized']>, rows: Value, w: Value, bias: Value, dtype: 'f32' | 'f16'): Value {
  const acc = b.op('MatMulInteger', [rows, w, node.inputs[q.xZeroPoint], node.inputs[q.wZeroPoint]], 'qkv_int32');
  const scale = b.op('Mul', [node.inputs[q.xScale]!, node.inputs[q.wScale]!], 'qkv_scale');
  return b.op('Add', [b.op('Mul', [b.cast(acc, dtype, 'qkv_float'), scale], 'qkv_scaled'), bias], 'qkv_gemm');
}
