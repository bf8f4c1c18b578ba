// GQA as exporters repeat K/V heads (Llama's repeat_kv):
//   Reshape(Expand(Unsqueeze(K, axis 2), [B, kvH, g, T, D]), [B, kvH·g, T, D]) -> K with kvNumHeads = kvH
// (each group of g consecutive query heads reads one key/value head); MQA as K and V with one head that the
// MatMuls broadcast over the query heads.

import type { Node, Value } from '@attnopt/ir';
import { attrInts, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { onnxOp } from './chain.js';
import { staticNumbers, staticShape, symbolicShape } from '../../shape-inference/shapes.js';

export interface KvRepeat {
  readonly source: Value;
  readonly kvNumHeads: number;
  readonly nodes: readonly Node[];
}

/** The un-repeated K (or V) behind a repeat-interleave of heads, when the (symbolic) shapes prove it exactly. */
export function matchKvRepeat(v: Value): KvRepeat | undefined {
  const reshape = onnxOp(v, 'Reshape');
  const expand = reshape && onnxOp(reshape.inputs[0], 'Expand');
  const unsq = expand && onnxOp(expand.inputs[0], 'Unsqueeze');
  if (!reshape || !expand || !unsq) return undefined;
  const axes = attrInts(unsq, 'axes') ?? [...(staticNumbers(unsq.inputs[1]) ?? [])];
  if (axes.length !== 1 || (axes[0] !== 2 && axes[0] !== -3)) return undefined;
  const source = unsq.inputs[0]!;
  const src = symbolicShape(source);
  const expanded = symbolicShape(expand.outputs[0]);
  const out = symbolicShape(v);
  if (!src || !expanded || !out || src.length !== 4 || expanded.length !== 5 || out.length !== 4) return undefined;
  const kvH = src[1]!.constant;
  const heads = out[1]!.constant;
  if (kvH === undefined || heads === undefined || expanded[1] !== src[1] || heads % kvH !== 0) return undefined;
  // the Expand repeats axis 2 only: batch, length and head size pass through unchanged (the same expressions)
  if (expanded[0] !== src[0] || expanded[3] !== src[2] || expanded[4] !== src[3]) return undefined;
  // the Reshape merges axes 1 and 2 only: B · kvH · g · T · D elements into [B, H, T, D] leave g = H / kvH
  if (out[0] !== src[0] || out[2] !== src[2] || out[3] !== src[3]) return undefined;
  const g = expanded[2]!.constant;
  if (g !== undefined && g * kvH !== heads) return undefined;
  return { source, kvNumHeads: kvH, nodes: [reshape, expand, unsq] };
}

export interface KvHeads {
  readonly k: Value;
  readonly v: Value;
  readonly kvNumHeads: number;
  readonly nodes: readonly Node[];
  readonly variants: readonly string[];
}

/** The key/value heads of 4D K and V read by `numHeads` query heads: repeated (GQA), broadcast (MQA) or as many. */
export function matchKvHeads(k: Value, v: Value, numHeads: number): MatchResult<KvHeads> {
  const kr = matchKvRepeat(k);
  const vr = matchKvRepeat(v);
  if (kr && vr && kr.kvNumHeads === vr.kvNumHeads) {
    return matched({ k: kr.source, v: vr.source, kvNumHeads: kr.kvNumHeads, nodes: [...kr.nodes, ...vr.nodes], variants: ['gqa-expand'] });
  }
  // Cast(repeat(V)) beside repeat(K): ONNX's FlexAttention function in fp16 multiplies the fp32 probabilities by
  // V cast to fp32; attnopt::Attention multiplies in Q's type, so that product is not its function
  for (const [what, x, other] of [['V', v, kr], ['K', k, vr]] as const) {
    const cast = other && onnxOp(x, 'Cast');
    if (cast && matchKvRepeat(cast.inputs[0]!)) return noMatch(`${what} is cast by ${cast.describe()} after its heads are repeated: a ${what} of another type than Q is not lifted`);
  }
  if (kr || vr) return noMatch('only one of K and V is repeated over heads, or they repeat differently');
  if (numHeads > 1 && staticShape(k)?.[1] === 1 && staticShape(v)?.[1] === 1) return matched({ k, v, kvNumHeads: 1, nodes: [], variants: ['mqa-broadcast'] });
  return matched({ k, v, kvNumHeads: numHeads, nodes: [], variants: [] });
}
