// com.microsoft DecoderMaskedMultiHeadAttention (one decoding step, onnxruntime's CPU kernel) -> attnopt::Attention.
// Cross attention (no past_key, no present outputs): key/value are cached projections [B, N, L, H]; only the
// query gets its bias; mask_index [B, L] becomes the additive bias onnxruntime builds; the qk output holds
// the softmax input (scale Q Kᵀ + that bias). Self attention (past_key/value [BB, N, M, H] shared with the
// present outputs, past_sequence_length P, optional beam_width W and cache_indirection): the prelude of
// beam-cache.ts (past K/V gathered per beam, the new K/V at position P, kvLength = P + 1), then one
// attnopt::Attention over the buffer; present_key/value are the buffers with the new K/V written at P. Without
// cache_indirection, mask_index [BB, P + 1] and attention_bias [.., 1, P + 1] cover this step's keys: a bias
// shorter than the buffer, as the IR allows.

import { type AttentionParams, dense, type Graph, type Node, type Value } from '@attnopt/ir';
import { attrFloat, attrInt, baseName, liveOutputs, matched, MS_DOMAIN, NodeBuilder, noMatch, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { liftSite } from '../lift.js';
import { beamCache, presentFromCache } from './beam-cache.js';
import { inferDtype, staticDim, staticShape } from '../../shape-inference/shapes.js';
import { paddingBias } from './padding-mask.js';

const KNOWN = ['num_heads', 'past_present_share_buffer', 'scale', 'mask_filter_value', 'output_qk'];

export interface DecoderMaskedMatch {
  readonly params: AttentionParams;
  readonly cross: boolean;
  readonly outputs: (Value | undefined)[];
}

/** Whether the node declares output `k` (onnxruntime's kernel sees it even when nothing reads it). */
const declares = (node: Node, k: number) => node.outputs[k] !== undefined && !node.outputs[k]!.annotations.has('onnx.omitted');

// DecoderMaskedMultiHeadAttention(q, k, v, mask, attention_bias, past_k, past_v, P, W, cache_indirection, bias)
//   cross: -> attnopt::Attention(q + bq, k, v (BNSH -> bsd), bias = pad(mask)) {scores = masked}
//   self:  -> beam-cache prelude + attnopt::Attention(q + bq, K_beam, V_beam, kvLength = P + 1)
export const decoderMaskedAttentionRule: RewriteRule<DecoderMaskedMatch> = {
  name: 'ms-decoder-masked-attention',
  summary: 'com.microsoft::DecoderMaskedMultiHeadAttention (cross, or self over a beam-search cache) -> prelude + attnopt::Attention',
  roots: [`${MS_DOMAIN}::DecoderMaskedMultiHeadAttention`],
  match(node: Node, graph: Graph) {
    const extra = unknownAttrs(node, KNOWN);
    if (extra.length > 0) return noMatch(`unknown attributes ${extra.join(', ')}`);
    const [q, k, v, mask, attnBias, pastKey, pastValue, pastLength, , cacheIndirection] = node.inputs;
    const N = attrInt(node, 'num_heads');
    if (N === undefined) return noMatch('num_heads is required');
    const qs = staticShape(q);
    const hidden = staticDim(q, 2);
    if (qs?.length !== 3 || hidden === undefined || hidden % N !== 0) return noMatch('query must be [B, 1, D] with a static D that is a multiple of num_heads');
    if (!k || !v) return noMatch('packed QKV (no key and value) is not lifted');
    const dtype = inferDtype(q);
    if (dtype !== 'f32' && dtype !== 'f16') return noMatch('only f32/f16 inputs are lifted');
    const H = hidden / N;
    const outputs = liveOutputs(graph, node);
    const cross = !pastKey && !declares(node, 1);
    let Hv: number | undefined;
    if (cross) {
      const [ks, vs] = [staticShape(k), staticShape(v)];
      if (ks?.length !== 4 || staticDim(k, 1) !== N || staticDim(k, 3) !== H || vs?.length !== 4) return noMatch('cross attention key/value must be [B, num_heads, L, H]');
      Hv = staticDim(v, 3);
      if (attnBias) return noMatch('attention_bias in cross attention (onnxruntime does not implement it)');
      if (mask && staticShape(mask)?.length !== 2) return noMatch('mask_index other than 2D [B, L] is not lifted');
    } else {
      if (!pastKey || !pastValue) return noMatch('self attention needs past_key and past_value');
      if ((attrInt(node, 'past_present_share_buffer') ?? 0) === 0) return noMatch('past without past_present_share_buffer (onnxruntime requires it)');
      if (!pastLength) return noMatch('past_sequence_length is required with a shared past buffer');
      if (staticShape(pastKey)?.length !== 4) return noMatch('past_key must be [BB, num_heads, M, H]');
      const vh = staticDim(v, 2);
      if (staticShape(k)?.length !== 3 || staticDim(k, 2) !== hidden || vh === undefined || vh % N !== 0) return noMatch('key/value must be [BB, 1, D]');
      Hv = vh / N;
      if ((mask || attnBias) && cacheIndirection) {
        return noMatch("mask_index / attention_bias in a beam-search step (with cache_indirection): onnxruntime's CPU kernel adds them in its beam path otherwise than to each row's scores (another function; checked against onnxruntime)");
      }
      if (mask && staticShape(mask)?.length !== 2) return noMatch('mask_index other than 2D [BB, P + 1] is not lifted');
      if (attnBias && staticShape(attnBias)?.length !== 4) return noMatch('attention_bias other than 4D [BB or 1, N or 1, 1, P + 1] is not lifted');
      if (outputs[3] !== undefined) return noMatch('the qk output of self attention (P + 1 keys of an M-key buffer) is not lifted');
    }
    if (Hv !== H) return noMatch('onnxruntime takes equal Q/K and V head sizes only');
    const scaleAttr = attrFloat(node, 'scale') ?? 0;
    const params: AttentionParams = {
      numHeads: N,
      kvNumHeads: N,
      headDim: H,
      vHeadDim: Hv,
      scale: scaleAttr === 0 ? 1 / Math.sqrt(H) : scaleAttr,
      softcap: 0,
      layout: 'bsd',
      spec: dense,
      ...(outputs[3] !== undefined ? { scoresMode: 'masked' as const } : {}),
    };
    return matched({ params, cross, outputs });
  },
  rewrite(graph, node, m) {
    const [q, k, v, mask, attnBias, pastKey, pastValue, pastLength, beamWidth, cacheIndirection, projBias] = node.inputs;
    const b = new NodeBuilder(graph, baseName(node));
    const { numHeads: N, headDim: H, vHeadDim: Hv } = m.params;
    const dtype = inferDtype(q) === 'f16' ? 'f16' : 'f32';
    const [bq, bk, bv] = projBias ? b.split(projBias, 0, [N * H, N * H, N * Hv], 'bias') : [];
    const query = bq ? b.op('Add', [q, bq], 'q_biased') : q!;
    const outs = node.outputs;
    if (m.cross) {
      const bsd = (t: Value, d: number, what: string) => b.reshape(b.transpose(t, [0, 2, 1, 3], `${what}_bsnh`), [0, 0, N * d], what);
      const bias = mask ? paddingBias(b, mask, 2, attrFloat(node, 'mask_filter_value') ?? -10000, dtype) : undefined;
      liftSite(graph, 'ms-decoder-masked-attention', {
        params: m.params,
        inputs: { q: query, k: bsd(k!, H, 'k'), v: bsd(v!, Hv, 'v'), ...(bias ? { bias } : {}) },
        output: outs[0]!,
        // the Attention node's outputs are positional: scores come after (unused) present K/V slots
        ...(m.outputs[3] !== undefined ? { presentKey: outs[1]!, presentValue: outs[2]!, scores: outs[3]! } : {}),
        matched: [node],
        prelude: b.nodes,
      });
      return;
    }
    const cache = beamCache(
      b,
      {
        k: bk ? b.op('Add', [k, bk], 'k_biased') : k!,
        v: bv ? b.op('Add', [v, bv], 'v_biased') : v!,
        pastKey: pastKey!,
        pastValue: pastValue!,
        pastLength: pastLength!,
        ...(cacheIndirection ? { cacheIndirection } : {}),
        ...(cacheIndirection && beamWidth ? { beamWidth: b.cast(beamWidth, 'i64', 'beam_width') } : {}),
        rows: q!,
      },
      N,
      H,
      Hv,
    );
    // mask_index and attention_bias cover this step's P + 1 keys: a bias shorter than the buffer's M keys, whose
    // missing keys the IR masks (they lie at or past kvLength = P + 1 anyway)
    const pad = mask ? paddingBias(b, mask, 2, attrFloat(node, 'mask_filter_value') ?? -10000, dtype) : undefined;
    const bias = attnBias && pad ? b.op('Add', [attnBias, pad], 'attention_bias_padded') : (attnBias ?? pad);
    liftSite(graph, 'ms-decoder-masked-attention', {
      params: m.params,
      inputs: { q: query, k: cache.k, v: cache.v, ...(bias ? { bias } : {}), kvLength: cache.kvLength },
      output: outs[0]!,
      preludeOutputs: presentFromCache(m.outputs, outs, cache),
      matched: [node],
      prelude: b.nodes,
    });
  },
};
