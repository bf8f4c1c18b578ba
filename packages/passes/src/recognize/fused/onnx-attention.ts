// ONNX Attention (opset 23/24) -> attnopt::Attention: the op the IR's Attention generalizes, so every
// attribute and input maps one to one.

import {
  type AttentionParams,
  causal,
  dense,
  dtypeFromOnnx,
  type Graph,
  type Node,
  scoresModeFromOnnx,
  type Value,
} from '@attnopt/ir';
import { attrFloat, attrInt, liveOutputs, matched, type MatchResult, noMatch, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { liftSite } from '../lift.js';
import { staticDim, staticShape } from '../../shape-inference/shapes.js';

export interface OnnxAttentionMatch {
  readonly params: AttentionParams;
  readonly outputs: (Value | undefined)[];
}

const KNOWN = ['is_causal', 'kv_num_heads', 'q_num_heads', 'qk_matmul_output_mode', 'scale', 'softcap', 'softmax_precision'];

/** Heads and head sizes from Q/K/V shapes: 3D needs q_num_heads/kv_num_heads and static hidden sizes. */
export function onnxAttentionHeads(
  node: Node,
): MatchResult<Pick<AttentionParams, 'numHeads' | 'kvNumHeads' | 'headDim' | 'vHeadDim' | 'layout'>> {
  const [q, k, v] = node.inputs;
  const qs = staticShape(q);
  const ks = staticShape(k);
  const vs = staticShape(v);
  if (!qs || !ks || !vs) return noMatch('Q, K or V has no known shape');
  if (qs.length !== ks.length || qs.length !== vs.length) return noMatch('Q, K and V ranks differ');
  if (qs.length === 3) {
    const numHeads = attrInt(node, 'q_num_heads');
    const kvNumHeads = attrInt(node, 'kv_num_heads');
    if (numHeads === undefined || kvNumHeads === undefined) return noMatch('3D inputs need q_num_heads and kv_num_heads');
    const qh = staticDim(q, 2);
    const vh = staticDim(v, 2);
    if (qh === undefined || vh === undefined) return noMatch('3D inputs need static hidden sizes (last dims of Q and V)');
    if (qh % numHeads !== 0 || vh % kvNumHeads !== 0) return noMatch('hidden size is not a multiple of the head count');
    return matched({ numHeads, kvNumHeads, headDim: qh / numHeads, vHeadDim: vh / kvNumHeads, layout: 'bsd' });
  }
  if (qs.length === 4) {
    const [numHeads, kvNumHeads, headDim, vHeadDim] = [staticDim(q, 1), staticDim(k, 1), staticDim(q, 3), staticDim(v, 3)];
    if (numHeads === undefined || kvNumHeads === undefined || headDim === undefined || vHeadDim === undefined) {
      return noMatch('4D inputs need static head counts and head sizes');
    }
    return matched({ numHeads, kvNumHeads, headDim, vHeadDim, layout: 'bhsd' });
  }
  return noMatch(`Q has rank ${qs.length}; ONNX Attention takes 3D or 4D inputs`);
}

// Attention(Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen) {is_causal, scale, softcap, ...}
//   -> attnopt::Attention(Q, K, V, bias=attn_mask, past, kvLength) {spec = is_causal ? causal(past) : dense}
export const onnxAttentionRule: RewriteRule<OnnxAttentionMatch> = {
  name: 'onnx-attention',
  summary: 'Attention(Q, K, V, mask, past, nonpad) -> attnopt::Attention(Q, K, V, bias=mask, past, kvLength)',
  roots: ['Attention'],
  match(node: Node, graph: Graph) {
    const extra = unknownAttrs(node, KNOWN);
    if (extra.length > 0) return noMatch(`unknown attributes ${extra.join(', ')}`);
    if (node.inputs.length > 7) return noMatch(`input ${node.inputs.length - 1} is not one ONNX Attention defines`);
    const heads = onnxAttentionHeads(node);
    if (!heads.ok) return heads;
    const outputs = liveOutputs(graph, node);
    const mode = attrInt(node, 'qk_matmul_output_mode') ?? 0;
    if (mode < 0 || mode > 3) return noMatch(`qk_matmul_output_mode ${mode} is not 0..3`);
    const precision = attrInt(node, 'softmax_precision');
    const softmaxPrecision = precision === undefined ? undefined : dtypeFromOnnx(precision);
    if (precision !== undefined && softmaxPrecision === undefined) return noMatch(`unknown softmax_precision ${precision}`);
    const { headDim } = heads.value;
    const scale = attrFloat(node, 'scale') ?? 1 / Math.sqrt(headDim);
    const softcap = attrFloat(node, 'softcap') ?? 0;
    if (!(softcap >= 0)) return noMatch(`softcap ${softcap} is negative`);
    const params: AttentionParams = {
      ...heads.value,
      scale,
      softcap,
      spec: (attrInt(node, 'is_causal') ?? 0) !== 0 ? causal('past') : dense,
      ...(outputs[3] !== undefined ? { scoresMode: scoresModeFromOnnx(mode) } : {}),
      ...(softmaxPrecision !== undefined ? { softmaxPrecision } : {}),
    };
    if ((node.inputs[4] === undefined) !== (node.inputs[5] === undefined)) return noMatch('past_key and past_value must come together');
    return matched({ params, outputs });
  },
  rewrite(graph, node, m) {
    const [q, k, v, mask, pastKey, pastValue, nonpad] = node.inputs;
    const outs = node.outputs;
    const last = m.outputs.reduce((acc, o, i) => (o !== undefined ? i : acc), 0);
    liftSite(graph, 'onnx-attention', {
      params: m.params,
      inputs: {
        q: q!,
        ...(k ? { k } : {}),
        ...(v ? { v } : {}),
        ...(mask ? { bias: mask } : {}),
        ...(pastKey ? { pastKey } : {}),
        ...(pastValue ? { pastValue } : {}),
        ...(nonpad ? { kvLength: nonpad } : {}),
      },
      output: outs[0]!,
      ...(last >= 1 ? { presentKey: outs[1]! } : {}),
      ...(last >= 2 ? { presentValue: outs[2]! } : {}),
      ...(last >= 3 ? { scores: outs[3]! } : {}),
      matched: [node],
    });
  },
};
