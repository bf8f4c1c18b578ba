// Masks added over a view of the scores: a Reshape of the scores, masks over the view, and a Reshape back to the
// scores' own shape before the Softmax. Swin's shifted windows split the batch axis,
//   scores [B·nW, H, N, N] -> Reshape [B, nW, H, N, N] -> + mask [1, nW, 1, N, N] -> Reshape [B·nW, H, N, N]
// and SAM's decomposed relative positions (ViTDet, Segment Anything) split the query and key axes,
//   scores [B·H, h·w, h·w] -> Reshape [B·H, h, w, h, w] -> + rel_h [.., 1] + rel_w [.., 1, w] -> Reshape back.
// A Reshape keeps the elements' order, so the view is the scores themselves, and a mask over it is a bias over the
// scores once broadcast to the view and reshaped back:
//   M -> Reshape(Reshape(zeros of the scores' shape, view) + M, back)   (a keep-mask: And with trues)

import { type Graph, Node, ONNX_DOMAIN, Tensor, tensorAttr, Value } from '@attnopt/ir';
import { type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferDtype, symbolicShape } from '../../shape-inference/shapes.js';
import type { MaskStep } from './chain.js';
import { onnxOp } from './onnx-op.js';
import { castToBool, freshName, preludeNode } from './prelude.js';

/** The two Reshapes of a view of the scores: `split` takes the scores to the view, `back` returns them. */
export interface ScoresView {
  readonly back: Node;
  split?: Node;
}

const sameDims = (a: readonly unknown[] | undefined, b: readonly unknown[] | undefined) => a !== undefined && b !== undefined && a.length === b.length && a.every((d, k) => d === b[k]);

/** The Reshape producing `v` (rank 2 or more) from a view of another shape: a candidate, until its split is found. */
export function scoresViewBack(v: Value): ScoresView | undefined {
  const back = onnxOp(v, 'Reshape');
  const out = symbolicShape(v);
  const view = symbolicShape(back?.inputs[0]);
  return back && out && view && out.length >= 2 && !sameDims(out, view) ? { back } : undefined;
}

/**
 * The Reshape producing `v` (a value of the view, below its masks) from the scores `back` returns to: the same
 * shape as `back`'s output (the same rank, and every axis provably the same but at most one, which the element
 * count then fixes), and `v` shaped exactly as `back`'s input (the masks between broadcast nothing up).
 */
export function scoresViewSplit(v: Value, view: ScoresView): Node | undefined {
  const split = onnxOp(v, 'Reshape');
  const scores = symbolicShape(split?.inputs[0]);
  const out = symbolicShape(view.back.outputs[0]);
  if (!split || !scores || !out || scores.length !== out.length) return undefined;
  const differing = scores.filter((d, k) => d !== out[k]).length;
  return differing <= 1 && sameDims(symbolicShape(v), symbolicShape(view.back.inputs[0])) ? split : undefined;
}

/** A Reshape like `like` (its allowzero kept) of `x` to `like`'s own target, in the prelude. */
function reshapeLike(graph: Graph, x: Value, like: Node, base: string, prelude: Node[]): Value {
  const r = new Node({ domain: ONNX_DOMAIN, op: 'Reshape', inputs: [x, like.inputs[1]!], outputs: [new Value(freshName(graph, base))], attrs: like.attrs });
  prelude.push(r);
  return r.outputs[0]!;
}

/**
 * A mask step over a view of the scores, as a step over the scores: its operand broadcast to the view (Add to zeros, And
 * with trues, of the scores' shape) and reshaped back. `scoresShape` gives the shape read from Q and K
 * (score-shape-reads.ts), which must be the shape of the scores the view split.
 */
export function maskOverScores(graph: Graph, m: MaskStep, view: ScoresView, q: Value, k: Value, scoresShape: () => Value, prelude: Node[]): MatchResult<MaskStep> {
  const split = view.split!;
  const s = symbolicShape(split.inputs[0]);
  const qs = symbolicShape(q);
  const ks = symbolicShape(k);
  if (!s || !qs || !ks || !sameDims(s, [...qs.slice(0, -1), ks[ks.length - 2]])) {
    return noMatch(`${view.back.describe()} views scores whose shape is not Q's leading axes and K's keys: the mask over the view cannot be read from Q and K`);
  }
  const operand = m.kind === 'additive' ? m.bias : m.cond;
  const dtype = m.kind === 'additive' ? inferDtype(operand) : 'bool';
  if (dtype === undefined) return noMatch(`the dtype of the mask over ${view.back.describe()}'s view is not known`);
  const x = m.kind === 'masked-fill' && inferDtype(operand) !== 'bool' ? castToBool(graph, operand, prelude) : operand;
  const fill = Tensor.fromValues(dtype, [1], [m.kind === 'additive' ? 0 : 1]);
  const base = new Node({ domain: ONNX_DOMAIN, op: 'ConstantOfShape', inputs: [scoresShape()], outputs: [new Value(freshName(graph, 'view_base'))], attrs: { value: tensorAttr(fill) } });
  prelude.push(base);
  const viewed = reshapeLike(graph, base.outputs[0]!, split, 'view_base', prelude);
  const combined = preludeNode(graph, m.kind === 'additive' ? 'Add' : 'And', [viewed, x], 'view_mask');
  prelude.push(combined);
  const back = reshapeLike(graph, combined.outputs[0]!, view.back, 'mask_over_scores', prelude);
  return matched(m.kind === 'additive' ? { kind: 'additive', bias: back, over: view.back.outputs[0]!, ...(m.factor !== undefined ? { factor: m.factor } : {}) } : { ...m, cond: back, over: view.back.outputs[0]! });
}
