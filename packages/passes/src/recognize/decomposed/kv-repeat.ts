// GQA as exporters repeat K/V heads (Llama's repeat_kv):
//   Reshape(Expand(Unsqueeze(K, axis 2), [B, kvH, g, T, D]), [B, kvH·g, T, D]) -> K with kvNumHeads = kvH
// or the same repeat in another layout before the Transpose to [B, H, T, D] (MPT over [B, T, kvH, D], ChatGLM
// over [T, B, kvH, D]):
//   Transpose(Reshape(Expand(Unsqueeze(K', h + 1)), ..), perm) with perm[1] = h -> Transpose(K', perm)
// (each group of g consecutive query heads reads one key/value head); MQA as K and V with one head that the
// MatMuls broadcast over the query heads.

import type { Graph, Node, Value } from '@attnopt/ir';
import { attrInts, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { onnxOp } from './chain.js';
import { permuted } from './prelude.js';
import { staticNumbers, staticShape, symbolicShape } from '../../shape-inference/shapes.js';

export interface KvRepeat {
  readonly source: Value;
  readonly kvNumHeads: number;
  readonly nodes: readonly Node[];
}

/**
 * The un-repeated K (or V) behind a repeat-interleave of heads along axis `h` of a rank-4 value, when the
 * (symbolic) shapes prove it exactly: Reshape(Expand(Unsqueeze(x, h + 1), [.., g at h + 1, ..]), merging h and h + 1).
 */
function repeatAlong(v: Value, h: number): KvRepeat | undefined {
  const reshape = onnxOp(v, 'Reshape');
  const expand = reshape && onnxOp(reshape.inputs[0], 'Expand');
  const unsq = expand && onnxOp(expand.inputs[0], 'Unsqueeze');
  if (!reshape || !expand || !unsq) return undefined;
  const axes = attrInts(unsq, 'axes') ?? [...(staticNumbers(unsq.inputs[1]) ?? [])];
  if (axes.length !== 1 || (axes[0] !== h + 1 && axes[0] !== h - 4)) return undefined;
  const source = unsq.inputs[0]!;
  const src = symbolicShape(source);
  const expanded = symbolicShape(expand.outputs[0]);
  const out = symbolicShape(v);
  if (!src || !expanded || !out || src.length !== 4 || expanded.length !== 5 || out.length !== 4) return undefined;
  const kvH = src[h]!.constant;
  const heads = out[h]!.constant;
  if (kvH === undefined || heads === undefined || expanded[h] !== src[h] || heads % kvH !== 0) return undefined;
  // the Expand repeats axis h + 1 only, the Reshape merges axes h and h + 1 only: every other axis passes through
  for (let a = 0; a < 4; a++) {
    if (a === h) continue;
    if (expanded[a < h ? a : a + 1] !== src[a] || out[a] !== src[a]) return undefined;
  }
  const g = expanded[h + 1]!.constant;
  if (g !== undefined && g * kvH !== heads) return undefined;
  return { source, kvNumHeads: kvH, nodes: [reshape, expand, unsq] };
}

/** The un-repeated K (or V) of [B, H, T, D] behind a repeat-interleave of heads (Llama's repeat_kv). */
export function matchKvRepeat(v: Value): KvRepeat | undefined {
  return repeatAlong(v, 1);
}

/** Where a repeat in another layout needs its un-repeated K / V transposed to [B, kvH, T, D]. */
export interface LayoutBuild {
  readonly graph: Graph;
  /** The site's prelude: the Transpose is added to it (and a prelude Transpose the repeat made dead leaves it). */
  readonly prelude: Node[];
}

/**
 * A repeat of heads in another layout brought to [B, H, T, D] by a Transpose (MPT's and ChatGLM's repeat over
 * [B, T, kvH, D] or [T, B, kvH, D]): Transpose(repeat along the axis the Transpose moves to 1) -> the
 * un-repeated value under the same Transpose.
 */
function matchLayoutRepeat(v: Value, build: LayoutBuild): KvRepeat | undefined {
  const tr = onnxOp(v, 'Transpose');
  const perm = tr && attrInts(tr, 'perm');
  if (!tr || perm?.length !== 4 || perm[1] === 1) return undefined;
  const inner = repeatAlong(tr.inputs[0]!, perm[1]!);
  if (!inner) return undefined;
  const inPrelude = build.prelude.indexOf(tr);
  const source = permuted(build.graph, inner.source, perm, 'kv_heads_bhsd', build.prelude);
  if (inPrelude >= 0) build.prelude.splice(inPrelude, 1);
  return { source, kvNumHeads: inner.kvNumHeads, nodes: [...(inPrelude >= 0 ? [] : [tr]), ...inner.nodes] };
}

export interface KvHeads {
  readonly k: Value;
  readonly v: Value;
  readonly kvNumHeads: number;
  readonly nodes: readonly Node[];
  readonly variants: readonly string[];
}

/** The key/value heads of 4D K and V read by `numHeads` query heads: repeated (GQA), broadcast (MQA) or as many. */
export function matchKvHeads(k: Value, v: Value, numHeads: number, build?: LayoutBuild): MatchResult<KvHeads> {
  const kr = matchKvRepeat(k);
  const vr = matchKvRepeat(v);
  if (kr && vr && kr.kvNumHeads === vr.kvNumHeads) {
    return matched({ k: kr.source, v: vr.source, kvNumHeads: kr.kvNumHeads, nodes: [...kr.nodes, ...vr.nodes], variants: ['gqa-expand'] });
  }
  if (build && !kr && !vr) {
    // both repeated in another layout; the prelude changes only once both are found
    const trial = { graph: build.graph, prelude: [...build.prelude] };
    const kl = matchLayoutRepeat(k, trial);
    const vl = kl && matchLayoutRepeat(v, trial);
    if (kl && vl && kl.kvNumHeads === vl.kvNumHeads) {
      build.prelude.splice(0, build.prelude.length, ...trial.prelude);
      return matched({ k: kl.source, v: vl.source, kvNumHeads: kl.kvNumHeads, nodes: [...kl.nodes, ...vl.nodes], variants: ['gqa-expand-other-layout'] });
    }
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
