// com.microsoft MultiHeadAttention -> attnopt::Attention (layout bsd). Packed KV [B, L, N, 2, H], packed QKV
// [B, S, N, 3, H] and BNSH key/value are rearranged to BSD by prelude Split/Reshape/Transpose nodes; the
// projection bias [D + D + Dv] becomes prelude Adds; key_padding_mask [B, T] or [B, S, T] becomes the
// additive bias onnxruntime builds (mask_filter_value where 0), [B] key lengths the same bias on the keys at
// or past each length, added to attention_bias. The qk output is
// the softmax input (scores mode `masked`: onnxruntime copies scale Q Kᵀ + attention_bias + mask out).
// Beam search (past_sequence_length + cache_indirection): with BNSH key/value (cross attention) onnxruntime
// reads neither; with past [BB, N, M, H] it runs DecoderMaskedMultiHeadAttention's step, lifted through
// beam-cache.ts with W = cache_indirection's dim 1. That step is what onnxruntime computes for one query
// token and P > 0; for more tokens or P = 0 its CPU kernel falls back to concatenating the whole M-key
// buffer with the new keys into the M-key present output, which has no meaning to keep.

import { type AttentionParams, causal, dense, type Graph, type Node, type Value } from '@attnopt/ir';
import { attrFloat, attrInt, baseName, liveOutputs, matched, MS_DOMAIN, NodeBuilder, noMatch, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { liftSite } from '../lift.js';
import { beamCache, presentFromCache } from './beam-cache.js';
import { inferDtype, staticDim, staticShape } from '../../shape-inference/shapes.js';
import { lengthsBias, paddingBias } from './padding-mask.js';

const KNOWN = ['num_heads', 'scale', 'mask_filter_value', 'unidirectional'];

type Form = 'separate' | 'bnsh-kv' | 'packed-kv' | 'packed-qkv';

export interface MhaMatch {
  readonly params: AttentionParams;
  readonly form: Form;
  readonly outputs: (Value | undefined)[];
  /** key_padding_mask [B, T] (2), [B, S, T] (3), or [B] key lengths (1). */
  readonly maskRank?: 1 | 2 | 3;
  /** Self attention over a beam-search cache (past_sequence_length + cache_indirection). */
  readonly beam?: boolean;
}

/** The keys' count T as an i64 scalar: the new keys of `k` [B, L, D] and the cached ones of `past` [B, N, P, H]. */
function keyCount(b: NodeBuilder, k: Value, past: Value | undefined): Value {
  const fresh = b.dim(k, 1, 'new_key_count');
  return past ? b.op('Add', [b.dim(past, 2, 'past_key_count'), fresh], 'key_count') : fresh;
}

// MultiHeadAttention(q, k, v, bias, key_padding_mask, attention_bias, past_k, past_v) {num_heads, unidirectional}
//   -> attnopt::Attention(q + bq, k + bk, v + bv, bias = attention_bias + pad(mask), past) {spec = causal?}
// MultiHeadAttention(q, k, v, bias, _, _, past_k, past_v, P, cache_indirection) (a beam-search step)
//   -> beam-cache prelude + attnopt::Attention(q + bq, K_beam, V_beam, kvLength = P + 1)
export const multiHeadAttentionRule: RewriteRule<MhaMatch> = {
  name: 'ms-multi-head-attention',
  summary: 'com.microsoft::MultiHeadAttention(q, k, v, bias, mask, attn_bias, past) -> prelude + attnopt::Attention',
  roots: [`${MS_DOMAIN}::MultiHeadAttention`],
  match(node: Node, graph: Graph) {
    const extra = unknownAttrs(node, KNOWN);
    if (extra.length > 0) return noMatch(`unknown attributes ${extra.join(', ')}`);
    const [q, k, v, bias, mask, attnBias, pastKey, pastValue, pastLength, cacheIndirection] = node.inputs;
    if (node.inputs.slice(10).some((x) => x !== undefined)) return noMatch('inputs after cache_indirection are not MultiHeadAttention inputs');
    const outputs = liveOutputs(graph, node);
    const N = attrInt(node, 'num_heads');
    if (N === undefined) return noMatch('num_heads is required');
    const qs = staticShape(q);
    const ks = staticShape(k);
    let form: Form;
    let headDim: number | undefined;
    let vHeadDim: number | undefined;
    if (qs?.length === 5) {
      if (k || v) return noMatch('packed QKV query comes without key and value');
      if (staticDim(q, 2) !== N || staticDim(q, 3) !== 3) return noMatch('packed QKV must be [B, S, num_heads, 3, H]');
      form = 'packed-qkv';
      headDim = vHeadDim = staticDim(q, 4);
    } else if (qs?.length === 3) {
      const hidden = staticDim(q, 2);
      if (hidden === undefined || hidden % N !== 0) return noMatch('query hidden size must be static and a multiple of num_heads');
      headDim = hidden / N;
      if (ks?.length === 5) {
        if (v) return noMatch('packed KV key comes without value');
        if (staticDim(k, 2) !== N || staticDim(k, 3) !== 2 || staticDim(k, 4) !== headDim) return noMatch('packed KV must be [B, L, num_heads, 2, H]');
        form = 'packed-kv';
        vHeadDim = headDim;
      } else if (ks?.length === 4) {
        const vs = staticShape(v);
        if (staticDim(k, 1) !== N || staticDim(k, 3) !== headDim || vs?.length !== 4) return noMatch('BNSH key/value must be [B, num_heads, L, H]');
        if (pastKey) return noMatch('BNSH key/value with past is not lifted');
        form = 'bnsh-kv';
        vHeadDim = staticDim(v, 3);
      } else if (ks?.length === 3) {
        form = 'separate';
        const vh = staticDim(v, 2);
        if (staticDim(k, 2) !== hidden || vh === undefined || vh % N !== 0) return noMatch('key/value must be [B, L, D] with static D');
        vHeadDim = vh / N;
      } else {
        return noMatch('key has no known rank 3, 4 or 5 shape');
      }
    } else {
      return noMatch('query has no known rank 3 or 5 shape');
    }
    if (headDim === undefined || vHeadDim === undefined) return noMatch('head sizes must be static');
    if (bias && form !== 'separate' && form !== 'bnsh-kv') return noMatch(`the projection bias with ${form} inputs is not lifted`);
    let maskRank: 1 | 2 | 3 | undefined;
    if (mask) {
      const r = staticShape(mask)?.length;
      const rows = staticDim(mask, 0);
      const batch = staticDim(q, 0);
      // [B]: key lengths; [3B + 2] (cu_seqlens and its companions) is not
      const lengths = r === 1 && (rows === batch || (typeof rows !== 'number' && rows !== undefined));
      if (r !== 2 && r !== 3 && !lengths) return noMatch('key_padding_mask other than [B, T], [B, S, T] or [B] key lengths (cu_seqlens [3B + 2]) is not lifted');
      maskRank = r as 1 | 2 | 3;
    }
    if ((pastKey === undefined) !== (pastValue === undefined)) return noMatch('past_key and past_value must come together');
    if (inferDtype(q) !== 'f32' && inferDtype(q) !== 'f16') return noMatch('only f32/f16 inputs are lifted');
    const unidirectional = (attrInt(node, 'unidirectional') ?? 0) !== 0;
    let beam = false;
    if ((pastLength || cacheIndirection) && form !== 'bnsh-kv') {
      if (form !== 'separate' || !pastKey || !pastLength || !cacheIndirection) {
        return noMatch('past_sequence_length / cache_indirection other than a beam-search step (3D key/value, past, both inputs) or cross attention (BNSH key/value) are not lifted');
      }
      if (mask || attnBias) return noMatch('key_padding_mask / attention_bias in a beam-search step are not lifted');
      if (staticShape(pastKey)?.length !== 4) return noMatch('past_key must be [BB, num_heads, M, H]');
      if (outputs[3] !== undefined) return noMatch('the qk output of a beam-search step (P + 1 keys of an M-key buffer) is not lifted');
      beam = true;
    }
    if (unidirectional && !beam) {
      // onnxruntime's CPU kernel keeps keys 0..i + P for query i (P past keys) only while the new keys are as
      // many as the queries; with more (cross attention) its last query sees every key. Without past, fewer
      // keys than queries is top-left too.
      const nq = qs[1];
      const nk = form === 'packed-qkv' ? nq : form === 'bnsh-kv' ? ks?.[2] : ks?.[1];
      const aligned = nk !== undefined && (nk === nq || (!pastKey && typeof nk === 'number' && typeof nq === 'number' && nk <= nq));
      if (!aligned) return noMatch(`unidirectional with ${nk ?? 'unknown'} new keys for ${nq ?? 'unknown'} queries${pastKey ? ' after past' : ' and no past'} is not lifted: onnxruntime's CPU kernel lets its last query see every key there, which no causal alignment computes`);
    }
    if (outputs[3] !== undefined && unidirectional) return noMatch('the qk output with unidirectional (onnxruntime adds mask_filter_value above the diagonal, attnopt masks it out)');
    const scaleAttr = attrFloat(node, 'scale') ?? 0;
    const params: AttentionParams = {
      numHeads: N,
      kvNumHeads: N,
      headDim,
      vHeadDim,
      scale: scaleAttr === 0 ? 1 / Math.sqrt(headDim) : scaleAttr,
      softcap: 0,
      layout: 'bsd',
      // onnxruntime keeps key j for query i where j <= i + P, P the past keys (0 without past): the diagonal
      // follows the cache, not the key count (cross attention with more keys than queries is top-left). A
      // beam-search step has one query, the last key: causal keeps every key
      spec: unidirectional && !beam ? causal('past') : dense,
      ...(outputs[3] !== undefined ? { scoresMode: 'masked' as const } : {}),
    };
    return matched({ params, form, outputs, ...(maskRank !== undefined ? { maskRank } : {}), ...(beam ? { beam } : {}) });
  },
  rewrite(graph, node, m) {
    let [q, k, v] = node.inputs;
    const [, , , projBias, mask, attnBias, pastKey, pastValue] = node.inputs;
    const b = new NodeBuilder(graph, baseName(node));
    const { numHeads: N, headDim: H, vHeadDim: Hv } = m.params;
    const toBsd = (x: Value, what: string) => b.reshape(x, [0, 0, N * H], what);
    if (m.form === 'packed-qkv') {
      const [pq, pk, pv] = b.split(q!, 3, [1, 1, 1], 'qkv');
      [q, k, v] = [toBsd(pq!, 'q'), toBsd(pk!, 'k'), toBsd(pv!, 'v')];
    } else if (m.form === 'packed-kv') {
      const [pk, pv] = b.split(k!, 3, [1, 1], 'kv');
      [k, v] = [toBsd(pk!, 'k'), toBsd(pv!, 'v')];
    } else if (m.form === 'bnsh-kv') {
      k = b.reshape(b.transpose(k!, [0, 2, 1, 3], 'k_bsnh'), [0, 0, N * H], 'k');
      v = b.reshape(b.transpose(v!, [0, 2, 1, 3], 'v_bsnh'), [0, 0, N * Hv], 'v');
    }
    if (projBias) {
      const [bq, bk, bv] = b.split(projBias, 0, [N * H, N * H, N * Hv], 'bias');
      q = b.op('Add', [q, bq], 'q_biased');
      // BNSH key/value are cached projections (cross attention): onnxruntime adds only the query's bias
      if (m.form !== 'bnsh-kv') {
        k = b.op('Add', [k, bk], 'k_biased');
        v = b.op('Add', [v, bv], 'v_biased');
      }
    }
    let bias: Value | undefined = attnBias;
    if (mask) {
      const filter = attrFloat(node, 'mask_filter_value') ?? -10000;
      const dtype = inferDtype(node.inputs[0]) === 'f16' ? 'f16' : 'f32';
      const pad = m.maskRank === 1 ? lengthsBias(b, mask, keyCount(b, k!, pastKey), filter, dtype) : paddingBias(b, mask, m.maskRank!, filter, dtype);
      bias = bias ? b.op('Add', [bias, pad], 'attention_bias_padded') : pad;
    }
    const outs = node.outputs;
    if (m.beam) {
      const [, , , , , , , , pastLength, cacheIndirection] = node.inputs;
      const width = b.op('Slice', [b.op('Shape', [cacheIndirection!], 'cache_indirection_shape'), b.ints('beam_width_start', [1]), b.ints('beam_width_end', [2])], 'beam_width');
      const cache = beamCache(b, { k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue!, pastLength: pastLength!, cacheIndirection: cacheIndirection!, beamWidth: width, rows: q! }, N, H, Hv);
      liftSite(graph, 'ms-multi-head-attention', {
        params: m.params,
        inputs: { q: q!, k: cache.k, v: cache.v, kvLength: cache.kvLength },
        output: outs[0]!,
        preludeOutputs: presentFromCache(m.outputs, outs, cache),
        matched: [node],
        prelude: b.nodes,
      });
      return;
    }
    const last = m.outputs.reduce((acc, o, i) => (o !== undefined ? i : acc), 0);
    liftSite(graph, 'ms-multi-head-attention', {
      params: m.params,
      inputs: {
        q: q!,
        k: k!,
        v: v!,
        ...(bias ? { bias } : {}),
        ...(pastKey ? { pastKey } : {}),
        ...(pastValue ? { pastValue } : {}),
      },
      output: outs[0]!,
      ...(last >= 1 ? { presentKey: outs[1]! } : {}),
      ...(last >= 2 ? { presentValue: outs[2]! } : {}),
      ...(last >= 3 ? { scores: outs[3]! } : {}),
      matched: [node],
      prelude: b.nodes,
    });
  },
};
