// Masks added over a view of the scores that splits their batch axis, as Swin's shifted windows write it:
//   scores [B·nW, H, N, N] -> Reshape [B, nW, H, N, N] -> + mask [1, nW, 1, N, N] -> Reshape [B·nW, H, N, N]
// Both Reshapes keep the trailing axes and regroup only the leading one, so the view is the scores themselves,
// and a mask over it is a bias over the scores once broadcast to the view and reshaped back:
//   M -> Reshape(Reshape(zeros of the scores' shape, view) + M, back)   (a keep-mask: And with trues)

import { type Graph, Node, ONNX_DOMAIN, Tensor, tensorAttr, tensorType, Value } from '@attnopt/ir';
import { type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferDtype, symbolicShape } from '../../shape-inference/shapes.js';
import type { MaskStep } from './chain.js';
import { onnxOp } from './onnx-op.js';
import { freshName, i64, preludeNode } from './prelude.js';

/** The two Reshapes of a batch view: `split` takes the scores to the view, `back` returns them. */
export interface BatchView {
  readonly back: Node;
  split?: Node;
}

const sameDims = (a: readonly unknown[] | undefined, b: readonly unknown[] | undefined) => a !== undefined && b !== undefined && a.length === b.length && a.every((d, k) => d === b[k]);

/** The Reshape producing `v` from a view of higher rank with the same trailing axes (all but the leading one). */
export function batchViewBack(v: Value): BatchView | undefined {
  const back = onnxOp(v, 'Reshape');
  const out = symbolicShape(v);
  const view = symbolicShape(back?.inputs[0]);
  if (!back || !out || !view || out.length < 3 || view.length <= out.length) return undefined;
  return sameDims(out.slice(1), view.slice(view.length - out.length + 1)) ? { back } : undefined;
}

/**
 * The Reshape producing `v` (a value of the view, below its masks) from scores shaped like the view's return:
 * the same rank and trailing axes as `back`'s output, and `v` shaped exactly as `back`'s input (the masks
 * between broadcast nothing up).
 */
export function batchViewSplit(v: Value, view: BatchView): Node | undefined {
  const split = onnxOp(v, 'Reshape');
  const scores = symbolicShape(split?.inputs[0]);
  const out = symbolicShape(view.back.outputs[0]);
  if (!split || !scores || !out || scores.length !== out.length) return undefined;
  return sameDims(scores.slice(1), out.slice(1)) && sameDims(symbolicShape(v), symbolicShape(view.back.inputs[0])) ? split : undefined;
}

/** A Reshape like `like` (its allowzero kept) of `x` to `like`'s own target, in the prelude. */
function reshapeLike(graph: Graph, x: Value, like: Node, base: string, prelude: Node[]): Value {
  const r = new Node({ domain: ONNX_DOMAIN, op: 'Reshape', inputs: [x, like.inputs[1]!], outputs: [new Value(freshName(graph, base))], attrs: like.attrs });
  prelude.push(r);
  return r.outputs[0]!;
}

/**
 * A mask step over a batch view, as a step over the scores: its operand broadcast to the view (Add to zeros, And
 * with trues, of the scores' shape read from Q and K) and reshaped back. `scores` is the value the view split;
 * its shape must be Q's leading axes and K's key axis, which is what Q and K give in the prelude.
 */
export function maskOverScores(graph: Graph, m: MaskStep, view: BatchView, q: Value, k: Value, prelude: Node[]): MatchResult<MaskStep> {
  const split = view.split!;
  const s = symbolicShape(split.inputs[0]);
  const qs = symbolicShape(q);
  const ks = symbolicShape(k);
  if (!s || !qs || !ks || !sameDims(s, [...qs.slice(0, -1), ks[ks.length - 2]])) {
    return noMatch(`${view.back.describe()} views scores whose shape is not Q's leading axes and K's keys: the mask over the view cannot be read from Q and K`);
  }
  const r = s.length;
  const shapeOf = (x: Value, from: number, to: number, base: string) => {
    const shape = preludeNode(graph, 'Shape', [x], base);
    const slice = preludeNode(graph, 'Slice', [shape.outputs[0]!, i64(graph, 'starts', [from], prelude), i64(graph, 'ends', [to], prelude)], base);
    prelude.push(shape, slice);
    return slice.outputs[0]!;
  };
  const target = preludeNode(graph, 'Concat', [shapeOf(q, 0, r - 1, 'scores_lead'), shapeOf(k, r - 2, r - 1, 'scores_keys')], 'scores_shape', { axis: { type: 'int', value: 0n } as never });
  prelude.push(target);
  const operand = m.kind === 'additive' ? m.bias : m.cond;
  const dtype = m.kind === 'additive' ? inferDtype(operand) : 'bool';
  if (dtype === undefined) return noMatch(`the dtype of the mask over ${view.back.describe()}'s view is not known`);
  let x = operand;
  if (m.kind === 'masked-fill' && inferDtype(operand) !== 'bool') {
    const cast = new Node({ domain: ONNX_DOMAIN, op: 'Cast', inputs: [operand], outputs: [new Value(freshName(graph, 'keep_bool'), tensorType('bool'))], attrs: { to: { type: 'int', value: 9n } } });
    prelude.push(cast);
    x = cast.outputs[0]!;
  }
  const fill = Tensor.fromValues(dtype, [1], [m.kind === 'additive' ? 0 : 1]);
  const base = new Node({ domain: ONNX_DOMAIN, op: 'ConstantOfShape', inputs: [target.outputs[0]!], outputs: [new Value(freshName(graph, 'view_base'))], attrs: { value: tensorAttr(fill) } });
  prelude.push(base);
  const viewed = reshapeLike(graph, base.outputs[0]!, split, 'view_base', prelude);
  const combined = preludeNode(graph, m.kind === 'additive' ? 'Add' : 'And', [viewed, x], 'view_mask');
  prelude.push(combined);
  const back = reshapeLike(graph, combined.outputs[0]!, view.back, 'mask_over_scores', prelude);
  return matched(m.kind === 'additive' ? { kind: 'additive', bias: back, over: view.back.outputs[0]!, ...(m.factor !== undefined ? { factor: m.factor } : {}) } : { ...m, cond: back, over: view.back.outputs[0]! });
}
