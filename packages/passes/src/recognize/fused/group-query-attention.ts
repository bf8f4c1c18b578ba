// com.microsoft GroupQueryAttention -> attnopt::Attention. Causal from the bottom right (the new tokens
// follow the cache); local_window_size w > 0 keeps the w keys before each query and the query's own key
// (onnxruntime gqa_attention_base.h keeps keys [pos - w, pos]); seqlens_k holds total length - 1 per batch.
// With a cache, onnxruntime puts row b's new keys right after its p_b = seqlens_k[b] + 1 - S cached ones (fewer
// than the buffer's where the batch is padded: gqa-cache.ts). The site reads past ⊕ new with each row's cache
// shifted to end at the buffer's end and the slots before it masked by a boolean key bias: every key at the same
// distance from its query as in onnxruntime, so causal and windows aligned past are exact for every seqlens_k,
// and a full cache is past ⊕ new as it stands. The present outputs are the cache as onnxruntime fills it. With an
// attention_bias (laid over onnxruntime's key positions) the site reads that filled cache itself, in bhsd, the
// causal offset per row read from kvLength.

import {
  type AttentionParams,
  causal,
  type Graph,
  intersect,
  type Node,
  slidingWindow,
  type Value,
} from '@attnopt/ir';
import { attrFloat, attrInt, baseName, liveOutputs, matched, MS_DOMAIN, NodeBuilder, noMatch, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { liftSite } from '../lift.js';
import { inferDtype, inferShape, staticDim, staticShape } from '../../shape-inference/shapes.js';
import { placedCache, shiftedCache } from './gqa-cache.js';

const KNOWN = [
  'num_heads',
  'kv_num_heads',
  'scale',
  'softcap',
  'local_window_size',
  'do_rotary',
  'rotary_interleaved',
  'smooth_softmax',
  'qk_output',
];

export interface GqaMatch {
  readonly params: AttentionParams;
  readonly outputs: (Value | undefined)[];
}

// GroupQueryAttention(q, k, v, past_k, past_v, seqlens_k, total_len) {num_heads, kv_num_heads, local_window_size}
//   -> attnopt::Attention(q, cache(past_k, k), cache(past_v, v), kvLength = seqlens_k + 1) {spec = causal ∩ window(w - 1, 0)}
export const groupQueryAttentionRule: RewriteRule<GqaMatch> = {
  name: 'ms-group-query-attention',
  summary: 'com.microsoft::GroupQueryAttention(q, k, v, past, seqlens_k) -> attnopt::Attention(causal, kvLength = seqlens_k + 1)',
  roots: [`${MS_DOMAIN}::GroupQueryAttention`],
  match(node: Node, graph: Graph) {
    const extra = unknownAttrs(node, KNOWN);
    if (extra.length > 0) return noMatch(`unknown attributes ${extra.join(', ')}`);
    if ((attrInt(node, 'do_rotary') ?? 0) !== 0) return noMatch('rotary embedding inside GroupQueryAttention is not lifted');
    if ((attrInt(node, 'smooth_softmax') ?? 0) !== 0) return noMatch('smooth_softmax (an extra zero logit) is not expressible');
    const [q, k, v, pastKey, pastValue, seqlens] = node.inputs;
    const more = node.inputs.slice(7).map((x, i) => (x ? i + 7 : -1)).filter((i) => i >= 0);
    if (more.some((i) => i !== 9 && i !== 10)) return noMatch(`inputs ${more.join(', ')} (rotary caches, head_sink...) are not lifted`);
    if (!seqlens) return noMatch('seqlens_k is missing');
    const outputs = liveOutputs(graph, node);
    if (outputs[3] !== undefined) return noMatch('the output_qk output is not lifted');
    const numHeads = attrInt(node, 'num_heads');
    const kvNumHeads = attrInt(node, 'kv_num_heads');
    if (numHeads === undefined || kvNumHeads === undefined) return noMatch('num_heads and kv_num_heads are required');
    if (numHeads % kvNumHeads !== 0) return noMatch('num_heads is not a multiple of kv_num_heads');
    const hidden = staticDim(q, 2);
    if (staticShape(q)?.length !== 3 || hidden === undefined) return noMatch('query must be 3D with a static hidden size');
    const packed = k === undefined;
    if (packed !== (v === undefined)) return noMatch('key and value must both be given or both be absent (packed QKV)');
    const heads = packed ? numHeads + 2 * kvNumHeads : numHeads;
    if (hidden % heads !== 0) return noMatch(`query hidden size ${hidden} is not a multiple of ${heads} heads`);
    const headDim = hidden / heads;
    if (!packed) {
      const kh = staticDim(k, 2);
      if (staticShape(k)?.length !== 3 || kh !== kvNumHeads * headDim) return noMatch('key must be [B, S, kv_num_heads * head_size]');
    }
    if ((pastKey === undefined) !== (pastValue === undefined)) return noMatch('past_key and past_value must come together');
    const w = attrInt(node, 'local_window_size') ?? -1;
    if (w === 0) return noMatch('local_window_size 0 is read as "no window" by the CPU kernel and as 0 keys elsewhere');
    const align = pastKey ? 'past' : 'top-left';
    const cacheType = inferDtype(pastKey) ?? inferDtype(q);
    if (pastKey && cacheType !== undefined && cacheType !== 'f32' && cacheType !== 'f16') return noMatch(`a ${cacheType} cache is not lifted (f32 and f16 are)`);
    const scaleAttr = attrFloat(node, 'scale') ?? 0;
    const params: AttentionParams = {
      numHeads,
      kvNumHeads,
      headDim,
      vHeadDim: headDim,
      scale: scaleAttr === 0 ? 1 / Math.sqrt(headDim) : scaleAttr,
      softcap: attrFloat(node, 'softcap') ?? 0,
      layout: pastKey && node.inputs[10] ? 'bhsd' : packed ? 'packed-qkv' : 'bsd',
      spec: w > 0 ? intersect(causal(align), slidingWindow(w - 1, 0, align)) : causal(align),
    };
    return matched({ params, outputs });
  },
  rewrite(graph, node, m) {
    const [q, k, v, pastKey, pastValue, seqlens, total] = node.inputs;
    const bias = node.inputs[10];
    const b = new NodeBuilder(graph, baseName(node));
    const len64 = b.cast(seqlens!, 'i64', 'seqlens_i64');
    const kvLength = b.op('Add', [len64, b.scalar('one', 'i64', 1)], 'kv_length', {}, { kind: 'tensor', dtype: 'i64', shape: inferShape(seqlens) ?? ['?'] });
    const outs = node.outputs;
    const last = m.outputs.reduce((acc, o, i) => (o !== undefined ? i : acc), 0);
    const { numHeads: N, kvNumHeads: KV, headDim: H } = m.params;
    if (pastKey) {
      const dtype = (inferDtype(pastKey) ?? inferDtype(q)) === 'f16' ? 'f16' : 'f32';
      const [qq, kk, vv] = k ? [q!, k, v!] : b.split(q!, 2, [N * H, KV * H, KV * H], 'qkv');
      const heads = (x: Value, n: number, what: string) => b.transpose(b.reshape(x, [0, 0, n, H], `${what}_bsnh`), [0, 2, 1, 3], what);
      let total64: Value | undefined;
      // the present buffer as onnxruntime fills it
      const filled = (past: Value, fresh: Value, what: string) => {
        total64 ??= b.reshape(b.cast(total!, 'i64', 'total_i64'), [], 'total_scalar');
        return placedCache(b, { past, fresh: heads(fresh, KV, `${what}_new`), kvLength, total: total64, dtype }, what);
      };
      const presents = (key: Value | undefined, value: Value | undefined) => [
        ...(m.outputs[1] !== undefined ? [{ replaced: outs[1]!, by: key! }] : []),
        ...(m.outputs[2] !== undefined ? [{ replaced: outs[2]!, by: value! }] : []),
      ];
      if (!bias) {
        // each row's cache shifted to end where the buffer ends, the slots before it masked
        const newLength = b.dim(q!, 1, 'new_length');
        const presentKey = m.outputs[1] !== undefined ? filled(pastKey, kk!, 'key_cache') : undefined;
        const presentValue = m.outputs[2] !== undefined ? filled(pastValue!, vv!, 'value_cache') : undefined;
        const keys = shiftedCache(b, pastKey, kvLength, newLength, 'key_shift', true);
        const values = shiftedCache(b, pastValue!, kvLength, newLength, 'value_shift', false);
        liftSite(graph, 'ms-group-query-attention', {
          params: m.params,
          inputs: { q: q!, ...(k ? { k } : {}), ...(v ? { v } : {}), bias: keys.keep, pastKey: keys.past, pastValue: values.past },
          output: outs[0]!,
          preludeOutputs: presents(presentKey, presentValue),
          matched: [node],
          prelude: b.nodes,
        });
        return;
      }
      // with attention_bias (over onnxruntime's key positions): that filled cache itself, every tensor in bhsd,
      // the causal offset read from kvLength; Y back to [B, S, N * H] after the node
      const presentKey = filled(pastKey, kk!, 'key_cache');
      const presentValue = filled(pastValue!, vv!, 'value_cache');
      const query = heads(qq!, N, 'query');
      const prelude = b.nodes.splice(0);
      const yBhsd = b.fresh('attention_bhsd');
      b.reshape(b.transpose(yBhsd, [0, 2, 1, 3], 'y_bsnh'), [0, 0, N * H], 'y');
      liftSite(graph, 'ms-group-query-attention', {
        params: m.params,
        inputs: { q: query, k: presentKey, v: presentValue, bias, kvLength },
        output: outs[0]!,
        preludeOutputs: presents(presentKey, presentValue),
        matched: [node],
        prelude,
        postlude: b.nodes,
        attentionOutput: yBhsd,
      });
      return;
    }
    liftSite(graph, 'ms-group-query-attention', {
      params: m.params,
      inputs: {
        q: q!,
        ...(k ? { k } : {}),
        ...(v ? { v } : {}),
        ...(bias ? { bias } : {}),
        kvLength,
      },
      output: outs[0]!,
      ...(last >= 1 ? { presentKey: outs[1]! } : {}),
      ...(last >= 2 ? { presentValue: outs[2]! } : {}),
      matched: [node],
      prelude: b.nodes,
    });
  },
};
