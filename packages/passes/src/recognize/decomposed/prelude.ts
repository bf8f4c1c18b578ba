// The nodes a lifted decomposed site adds around the Attention node: Q, K, V and the bias brought to the layout
// the Attention node reads (prelude), and the output folded back to the model's layout (postlude). Names are
// `<base>__attnopt<n>`, unique in the graph. They run at the model's own opset, where Unsqueeze takes its axes
// as an attribute (< 13) or an input (13+): new axes come from Expand (which prepends 1s) and Transpose
// instead, the same at every opset.

import { type Graph, intAttr, intsAttr, Node, ONNX_DOMAIN, Tensor, tensorAttr, tensorType, Value } from '@attnopt/ir';
import { attrInts, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferDtype, staticShape, symbolicShape } from '../../shape-inference/shapes.js';
import { type MaskStep, onnxOp, stripOperandScale } from './chain.js';
import { isIdentity } from './einsum.js';

// counted per graph, so the names (and every report that prints them) depend on the model alone, not on what
// else the process recognized before
const counters = new WeakMap<Graph, number>();
export const freshName = (graph: Graph, base: string): string => {
  const taken = new Set([...graph.definedValues()].map((x) => x.name));
  let fresh = counters.get(graph) ?? 0;
  let name = `${base}__attnopt${fresh++}`;
  while (taken.has(name)) name = `${base}__attnopt${fresh++}`;
  counters.set(graph, fresh);
  return name;
};

/** A prelude node computing one new value. */
export function preludeNode(graph: Graph, op: string, inputs: readonly Value[], base: string, attrs: Record<string, ReturnType<typeof intsAttr>> = {}): Node {
  return new Node({ domain: ONNX_DOMAIN, op, inputs, outputs: [new Value(freshName(graph, base))], attrs });
}

export function constNode(graph: Graph, base: string, t: Tensor): Node {
  return new Node({ op: 'Constant', outputs: [new Value(freshName(graph, base))], attrs: { value: tensorAttr(t) } });
}

/** An int64 vector constant, its node appended to `prelude`. */
export const i64 = (graph: Graph, base: string, xs: readonly number[], prelude: Node[]): Value => {
  const c = constNode(graph, base, Tensor.fromValues('i64', [xs.length], xs.map(BigInt)));
  prelude.push(c);
  return c.outputs[0]!;
};

/** `x` with its axes permuted (no node for the identity). */
export function permuted(graph: Graph, x: Value, perm: readonly number[] | undefined, base: string, prelude: Node[]): Value {
  if (perm === undefined || isIdentity(perm)) return x;
  const t = preludeNode(graph, 'Transpose', [x], base, { perm: intsAttr(perm) });
  prelude.push(t);
  return t.outputs[0]!;
}

/** [B·H, S, D] -> [B, H, S, D]: Reshape(Expand(x, [1, 1, 1, 1]) = [1, B·H, S, D], [-1, H, 0, 0]). */
export function unfoldHeads(graph: Graph, x: Value, heads: number, base: string, prelude: Node[]): Value {
  const e = preludeNode(graph, 'Expand', [x, i64(graph, 'ones', [1, 1, 1, 1], prelude)], base);
  const r = preludeNode(graph, 'Reshape', [e.outputs[0]!, i64(graph, 'shape', [-1, heads, 0, 0], prelude)], base);
  prelude.push(e, r);
  return r.outputs[0]!;
}

/** [a, S, T] -> [a, 1, S, T]: Transpose(Expand(x, [1, 1, 1, 1]) = [1, a, S, T], [1, 0, 2, 3]). */
export function insertHeadsAxis(graph: Graph, x: Value, base: string, prelude: Node[]): Value {
  const e = preludeNode(graph, 'Expand', [x, i64(graph, 'ones', [1, 1, 1, 1], prelude)], base);
  const t = preludeNode(graph, 'Transpose', [e.outputs[0]!], base, { perm: intsAttr([1, 0, 2, 3]) });
  prelude.push(e, t);
  return t.outputs[0]!;
}

/**
 * A bias over 3D scores [b, S, T] (b = 1 or B·H) -> over [B, H, S, T]: rank <= 2 broadcasts as is, b = 1
 * gets a heads axis, otherwise Expand to [B·H, ., .] (read from Q) and unfold like Q.
 */
export function biasOverHeads(graph: Graph, bias: Value, q3: Value, heads: number, prelude: Node[]): Value {
  const s = staticShape(bias);
  if (s && s.length <= 2) return bias;
  const sq = staticShape(q3);
  if (s?.[0] === 1) return insertHeadsAxis(graph, bias, 'bias_bhst', prelude);
  let full = bias;
  if (!(typeof s?.[0] === 'number' && s[0] === sq?.[0])) {
    const shape = preludeNode(graph, 'Shape', [q3], 'bh');
    const first = preludeNode(graph, 'Slice', [shape.outputs[0]!, i64(graph, 'starts', [0], prelude), i64(graph, 'ends', [1], prelude)], 'bh');
    const target = preludeNode(graph, 'Concat', [first.outputs[0]!, i64(graph, 'ones', [1, 1], prelude)], 'bh11', { axis: intAttr(0) as never });
    const ex = preludeNode(graph, 'Expand', [bias, target.outputs[0]!], 'bias_bh');
    prelude.push(shape, first, target, ex);
    full = ex.outputs[0]!;
  }
  return unfoldHeads(graph, full, heads, 'bias_bhst', prelude);
}

/** A mask step over the [B·H, S, T] view of the scores, its operand unfolded to [B, H, S, T] (see biasOverHeads). */
export function unfoldMask(graph: Graph, m: MaskStep, q3: Value, heads: number, prelude: Node[]): MaskStep {
  return m.kind === 'additive' ? { ...m, bias: biasOverHeads(graph, m.bias, q3, heads, prelude) } : { ...m, cond: biasOverHeads(graph, m.cond, q3, heads, prelude) };
}

/**
 * Postlude [B, H, S, Dv] -> [B·H, S, Dv]: Gather(Reshape(y4, [-1, 1, 0, 0]), 0, axis 1) (a Squeeze of axis 1 at
 * any opset), the last output typed like y3.
 */
export function foldHeads(graph: Graph, y4: Value, y3: Value): Node[] {
  const nodes: Node[] = [];
  const r = preludeNode(graph, 'Reshape', [y4, i64(graph, 'shape', [-1, 1, 0, 0], nodes)], 'y_bh1sd');
  const zero = constNode(graph, 'index', Tensor.fromValues('i64', [], [0n]));
  const sq = new Node({ domain: ONNX_DOMAIN, op: 'Gather', inputs: [r.outputs[0]!, zero.outputs[0]!], outputs: [new Value(y3.name, y3.type)], attrs: { axis: intAttr(1) as never } });
  nodes.push(r, zero, sq);
  return nodes;
}

/**
 * Combines the mask steps into one Attention bias: one additive mask as is, a keep-mask alone as a boolean,
 * several combined (additive ones summed, keep-masks and-ed, then Where(keep, sum, -inf)); with a fill of
 * finfo.min, the model's masks in order as one additive bias (absorbingFillBias), unless `fills` says keep-masks. Over 3D scores,
 * `heads` says what the bias is over: one head (it gets the heads axis here), [B·H, S, T] to unfold later,
 * or the already unfolded [B, H, S, T].
 */
export function assembleBias(
  graph: Graph,
  masks: readonly MaskStep[],
  rank: number,
  prelude: Node[],
  heads: 'single-head' | 'heads-in-batch' | 'unfolded',
  k: Value,
  fills: 'as-written' | 'keep-masks' = 'as-written',
): MatchResult<Value | undefined> {
  if (masks.length === 0) return matched(undefined);
  // a mask subtracted, or scaled with the scores after it: factor · M in the prelude
  const additive = masks
    .filter((m) => m.kind === 'additive')
    .map((m) => {
      if (m.factor === undefined || m.factor === 1) return m.bias;
      const dtype = inferDtype(m.bias) ?? 'f32';
      const f = m.factor === -1 ? undefined : constNode(graph, 'mask_factor', Tensor.fromValues(dtype, [], [m.factor]));
      const n = f ? preludeNode(graph, 'Mul', [m.bias, f.outputs[0]!], 'bias_scaled') : preludeNode(graph, 'Neg', [m.bias], 'bias_negated');
      prelude.push(...(f ? [f] : []), n);
      return n.outputs[0]!;
    });
  const keeps: Value[] = [];
  const keepOf = (m: MaskStep & { kind: 'masked-fill' }): Value => {
    // a keep-mask of 0s and 1s (multiplied in): as bool, nonzero keeps (a Where's condition is bool already)
    const condType = inferDtype(m.cond);
    const cond = condType === undefined || condType === 'bool' ? m.cond : castToBool(graph, m.cond, prelude);
    if (!m.inverted) return cond;
    const not = preludeNode(graph, 'Not', [cond], 'keep');
    prelude.push(not);
    return not.outputs[0]!;
  };
  for (const m of masks) if (m.kind === 'masked-fill') keeps.push(keepOf(m));
  const ordered = fills === 'as-written' ? absorbingFillBias(graph, masks, keeps, additive, prelude) : undefined;
  let sum = ordered;
  let keep: Value | undefined;
  if (!ordered) {
    sum = additive[0];
    for (const b of additive.slice(1)) {
      const add = preludeNode(graph, 'Add', [sum!, b], 'bias');
      prelude.push(add);
      sum = add.outputs[0]!;
    }
    keep = keeps[0];
    for (const b of keeps.slice(1)) {
      const and = preludeNode(graph, 'And', [keep!, b], 'keep');
      prelude.push(and);
      keep = and.outputs[0]!;
    }
  }
  let bias: Value;
  if (keep !== undefined && sum !== undefined) {
    const dtype = inferDtype(sum);
    if (dtype === undefined) return noMatch('the dtype of the additive mask is not known');
    const negInf = constNode(graph, 'neg_inf', Tensor.fromValues(dtype, [], [-Infinity]));
    const w = preludeNode(graph, 'Where', [keep, sum, negInf.outputs[0]!], 'bias');
    prelude.push(negInf, w);
    bias = w.outputs[0]!;
  } else bias = (keep ?? sum)!;
  const overKeys = overEveryKey(graph, bias, k, prelude);
  if (!overKeys.ok) return overKeys;
  bias = overKeys.value;
  // 3D scores are [batch·heads, nq, nk]: a rank-3 bias gets the (single) heads axis
  const bShape = staticShape(bias);
  if (rank === 3 && heads !== 'single-head') {
    if (!bShape && heads === 'heads-in-batch') return noMatch('the rank of the mask over 3D scores is not known');
  } else if (rank === 3 && bShape && bShape.length === 3) {
    bias = insertHeadsAxis(graph, bias, 'bias4d', prelude);
  } else if (rank === 3 && !bShape) return noMatch('the rank of the mask over 3D scores is not known');
  // a keep-mask the graph does not type: Cast(to = bool) with a declared type, so every consumer (lowering,
  // export) reads it as a keep-mask rather than an additive bias
  if (keep !== undefined && sum === undefined && !(bias.type?.kind === 'tensor' && bias.type.dtype === 'bool')) bias = castToBool(graph, bias, prelude);
  return matched(bias);
}

/** A finite fill no score moves in float32 or float64 (finfo.min): x + fill == fill for any |x| below 1e22. */
const absorbs = (fill: number): boolean => Number.isFinite(fill) && fill <= -1e30;

/**
 * With a masked fill of finfo.min among the masks: the masks in the model's order, innermost first, each masked
 * fill Where(keep, acc, fill), each additive mask added. Where(keep, x, fill) and x + Where(keep, 0, fill) then
 * agree on every element, a row whose keys are all filled included (the model's softmax is uniform over its
 * filled keys there; a keep-mask would leave the row no key, 0 by the IR's definition). Other fills (-inf, or
 * -10000, which the scores move) stay keep-masks; undefined when no fill absorbs.
 */
function absorbingFillBias(graph: Graph, masks: readonly MaskStep[], keeps: readonly Value[], additive: readonly Value[], prelude: Node[]): Value | undefined {
  if (!masks.some((m) => m.kind === 'masked-fill' && absorbs(m.fill))) return undefined;
  const dtype = masks.map((m) => inferDtype(m.over)).find((d) => d !== undefined);
  if (dtype === undefined || (dtype !== 'f32' && dtype !== 'f64')) return undefined;
  let acc: Value | undefined;
  let [keep, add] = [keeps.length, additive.length];
  for (const m of [...masks].reverse()) {
    if (m.kind === 'additive') {
      const a = additive[--add]!;
      if (!acc) acc = a;
      else {
        const n = preludeNode(graph, 'Add', [acc, a], 'bias');
        prelude.push(n);
        acc = n.outputs[0]!;
      }
      continue;
    }
    const zero = acc ? undefined : constNode(graph, 'bias_zero', Tensor.fromValues(dtype, [], [0]));
    const fill = constNode(graph, 'mask_fill', Tensor.fromValues(dtype, [], [absorbs(m.fill) ? m.fill : -Infinity]));
    const n = preludeNode(graph, 'Where', [keeps[--keep]!, acc ?? zero!.outputs[0]!, fill.outputs[0]!], 'bias');
    prelude.push(...(zero ? [zero] : []), fill, n);
    acc = n.outputs[0]!;
  }
  return acc;
}

/** Cast(x, to = bool) with a declared type, in the prelude. */
export function castToBool(graph: Graph, x: Value, prelude: Node[]): Value {
  const cast = new Node({ domain: ONNX_DOMAIN, op: 'Cast', inputs: [x], outputs: [new Value(freshName(graph, 'keep_bool'), tensorType('bool'))], attrs: { to: intAttr(9) } });
  prelude.push(cast);
  return cast.outputs[0]!;
}

/**
 * A bias that the scores' Add or Where broadcasts along the keys (a scalar, or a key axis of 1 over more keys),
 * expanded to the key count T: the IR reads a key axis shorter than T as masked keys (ONNX Attention's padding),
 * not as broadcast.
 *   bias [.., 1] -Expand(Gather(Shape(K), key axis))-> [.., T]
 */
function overEveryKey(graph: Graph, bias: Value, k: Value, prelude: Node[]): MatchResult<Value> {
  const bShape = staticShape(bias);
  const kShape = staticShape(k);
  if (!bShape) return matched(bias);
  const width = bShape.length === 0 ? 1 : bShape[bShape.length - 1];
  const keys = kShape?.[kShape.length - 2];
  if (width !== 1 || keys === 1) return matched(bias);
  if (!kShape) return noMatch('the mask is broadcast over the keys and the rank of K is not known');
  const shape = preludeNode(graph, 'Shape', [k], 'k_shape');
  prelude.push(shape);
  const count = preludeNode(graph, 'Gather', [shape.outputs[0]!, i64(graph, 'key_axis', [kShape.length - 2], prelude)], 'key_count', { axis: intAttr(0) as never });
  const expand = preludeNode(graph, 'Expand', [bias, count.outputs[0]!], 'bias_over_keys');
  prelude.push(count, expand);
  return matched(expand.outputs[0]!);
}

export interface KeyFromTransposed {
  readonly k: Value;
  /** The nodes that transposed K for the scores product, now part of the site. */
  readonly matched: readonly Node[];
  readonly variant?: string;
  /** Static scalar scales between K and that Transpose (folded into the site's scale), and their nodes. */
  readonly factor: number;
  readonly scaleNodes: readonly Node[];
}

/**
 * Kᵀ as onnxscript's scaled_dot_product_attention writes it (torch.onnx's dynamo exporter): the leading axes
 * merged, the last two swapped in 3D, the leading axes split again, proven from the shapes (the Reshapes keep
 * the elements' order, only the Transpose moves them):
 *   Reshape(Transpose(Reshape(K, [-1, T, D]), [0, 2, 1]), [..., D, T]) -> Transpose(K) of the last two axes
 */
function lastTwoSwappedThroughReshapes(kt: Value): { k: Value; nodes: Node[] } | undefined {
  const outer = onnxOp(kt, 'Reshape');
  const tr = outer && onnxOp(outer.inputs[0], 'Transpose');
  const inner = tr && attrInts(tr, 'perm')?.join(',') === '0,2,1' ? onnxOp(tr.inputs[0], 'Reshape') : undefined;
  if (!outer || !tr || !inner) return undefined;
  const k = inner.inputs[0]!;
  const [ks, merged, out] = [symbolicShape(k), symbolicShape(inner.outputs[0]), symbolicShape(kt)];
  if (!ks || !merged || !out || merged.length !== 3 || ks.length < 3 || out.length !== ks.length) return undefined;
  const n = ks.length;
  if (merged[1] !== ks[n - 2] || merged[2] !== ks[n - 1]) return undefined;
  if (ks.slice(0, n - 2).some((d, i) => out[i] !== d) || out[n - 2] !== ks[n - 1] || out[n - 1] !== ks[n - 2]) return undefined;
  return { k, nodes: [outer, tr, inner] };
}

/**
 * K in Q's layout from the Kᵀ operand of the scores product: the input of a Transpose swapping the last two
 * axes (or of onnxscript's Reshape-Transpose-Reshape doing the same); Transpose(K in bshd / sbd) re-permuted in
 * the prelude; an Einsum's key permutation; else Kᵀ transposed back in the prelude. A static scalar scale on K
 * under the Transpose (ONNX's FlexAttention and Attention functions scale Q and K by sqrt(scale) each, K after
 * its heads are repeated) is stripped:
 *   Transpose(Mul(K, s)) -> K, scale s
 * a scalar Mul commutes with the Transpose, so the product is the same.
 */
export function keyFromTransposed(graph: Graph, kt: Value, rank: number, einsumKPerm: readonly number[] | undefined, prelude: Node[]): KeyFromTransposed {
  if (einsumKPerm !== undefined) return { k: permuted(graph, kt, einsumKPerm, 'k_bhsd', prelude), matched: [], factor: 1, scaleNodes: [] };
  const scaleNodes: Node[] = [];
  const sandwich = lastTwoSwappedThroughReshapes(kt);
  if (sandwich) {
    const under = stripOperandScale(sandwich.k, scaleNodes);
    return { k: under.value, matched: sandwich.nodes, variant: 'k-transposed-through-reshapes', factor: under.factor, scaleNodes };
  }
  const tr = onnxOp(kt, 'Transpose');
  const perm = tr && attrInts(tr, 'perm')?.join(',');
  const under = tr && stripOperandScale(tr.inputs[0]!, scaleNodes);
  const factor = under?.factor ?? 1;
  if (tr && under && (perm === '0,1,3,2' || perm === '0,2,1')) return { k: under.value, matched: [tr], factor, scaleNodes };
  if (tr && under && perm === '0,2,3,1') return { k: permuted(graph, under.value, [0, 2, 1, 3], 'k_bhsd', prelude), matched: [tr], variant: 'k-bshd', factor, scaleNodes };
  if (tr && under && perm === '1,2,0') return { k: permuted(graph, under.value, [1, 0, 2], 'k_bsd', prelude), matched: [tr], variant: 'k-sbd', factor, scaleNodes };
  return { k: permuted(graph, kt, rank === 4 ? [0, 1, 3, 2] : [0, 2, 1], 'k', prelude), matched: [], variant: 'k-transposed-input', factor: 1, scaleNodes: [] };
}
