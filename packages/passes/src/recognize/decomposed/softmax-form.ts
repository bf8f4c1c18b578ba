// The softmax of an attention site, as the Softmax op or spelled in elementary ops (ONNX's own Softmax function
// body, JAX's softmax through tf2onnx, hand-written softmaxes), read as one softmax over the last axis:
//   Div(Exp(Sub(x, c)), ReduceSum(Exp(Sub(x, c)), last axis, keepdims))   -> Softmax(x)
//   Div(Exp(x), ReduceSum(Exp(x), last axis, keepdims))                   -> Softmax(x)
//   Mul(e, Reciprocal(ReduceSum(e)))                                       -> the same as Div(e, ReduceSum(e))
//   Exp(LogSoftmax(x))                                                     -> Softmax(x), LogSoftmax's axis
//   Reshape(softmax(Flatten | Reshape(x)), x's shape)                      -> Softmax(x) when the view keeps x's last dim
//   softmax(Sub(x, c))                                                     -> Softmax(x) (a stabilizer before the Softmax op)
// c is anything constant along the last axis (ReduceMax(x) with keepdims, the usual stabilizer, possibly behind a
// stop-gradient Identity): exp(x - c) / sum(exp(x - c)) = softmax(x) for every such c, so the product is the
// same function. The op form computes it without overflow where exp(x) alone would overflow.

import type { Node, Value } from '@attnopt/ir';
import { attrInt, attrInts } from '@attnopt/rewrite';
import { sameDim, staticNumbers, staticShape, symbolicShape } from '../../shape-inference/shapes.js';
import { onnxOp } from './chain.js';

export interface SoftmaxForm {
  /** The scores the softmax normalizes. */
  readonly input: Value;
  /** The probabilities. */
  readonly output: Value;
  /** The nodes that compute it (the Softmax op, or the elementary ops). */
  readonly nodes: readonly Node[];
  /** True when spelled in elementary ops (or as Exp of a LogSoftmax). */
  readonly spelled: boolean;
  /** The Softmax or LogSoftmax whose axis attribute (and the opset's default) decides the axis; undefined: spelled over the last. */
  readonly axisOp: Node | undefined;
}

/** Whether axis `axis` of a value of rank `rank` (undefined: not known) is its last. */
const isLast = (axis: number, rank: number | undefined) => axis === -1 || (rank !== undefined && axis === rank - 1);

/** A ReduceSum / ReduceMax over the last axis alone, keeping it (axes as the attribute before opset 13/18, or the input). */
function reducesLastAxis(n: Node): boolean {
  if (attrInt(n, 'keepdims') === 0) return false;
  const axes = attrInts(n, 'axes') ?? (n.inputs[1] ? [...(staticNumbers(n.inputs[1]) ?? [])] : undefined);
  return axes?.length === 1 && isLast(axes[0]!, staticShape(n.inputs[0])?.length);
}

/** The stabilizer c of exp(x - c): the value subtracted when it is constant along the last axis. */
function constantAlongLastAxis(c: Value, x: Value): Node[] | undefined {
  const through = onnxOp(c, 'Identity');
  const m = through ? through.inputs[0]! : c;
  const max = onnxOp(m, 'ReduceMax');
  if (max && max.inputs[0] === x && reducesLastAxis(max)) return [max, ...(through ? [through] : [])];
  // any other value broadcast along the keys: a scalar, or a last axis of 1 (a lower-rank value aligns to the
  // right, so its last axis is still the keys')
  const shape = staticShape(c);
  if (shape && (shape.length === 0 || shape[shape.length - 1] === 1)) return [];
  return undefined;
}

/**
 * The softmax computed by `root` (a Softmax, the Div / Mul ending a spelled one, an Exp of a LogSoftmax), or
 * undefined; taken over a view of the scores and reshaped back, it reads as the softmax of the scores themselves.
 */
export function softmaxForm(root: Node): SoftmaxForm | undefined {
  const form = softmaxAt(root);
  const viewed = form && (throughView(form) ?? form);
  return viewed && (withoutShift(viewed) ?? viewed);
}

/**
 * A softmax of x - c, c constant along the last axis (the row max a hand-written softmax subtracts before calling
 * Softmax, w - w.max(-1, keepdim=True)), is the softmax of x:
 *   Softmax(Sub(x, ReduceMax(x, last axis, keepdims)))  -> Softmax(x)
 * Undefined when the form's input is no such shift (or something else reads it).
 */
function withoutShift(form: SoftmaxForm): SoftmaxForm | undefined {
  const sub = onnxOp(form.input, 'Sub');
  if (!sub || form.input.uses().length !== 1) return undefined;
  const stabilizer = constantAlongLastAxis(sub.inputs[1]!, sub.inputs[0]!);
  return stabilizer && { ...form, input: sub.inputs[0]!, nodes: [...form.nodes, sub, ...stabilizer], spelled: true };
}

/**
 * A softmax over a view of x that keeps x's last dim (x of [B, H, S, T] as [B·H·S, T] by Flatten or Reshape, as
 * tf2onnx and hand-written code write it), reshaped back to x's shape, is the softmax of x: a row-major reshape
 * that keeps the last dim maps each row to one row. Both shapes are compared as the shape engine's expressions,
 * so the form holds for every size the graph allows. Undefined when `form` is not so wrapped.
 */
function throughView(form: SoftmaxForm): SoftmaxForm | undefined {
  const inside = new Set(form.nodes);
  const view = onnxOp(form.input, 'Flatten') ?? onnxOp(form.input, 'Reshape');
  if (!view || !form.input.uses().every((u) => inside.has(u.node))) return undefined;
  const x = view.inputs[0]!;
  if (!sameDim(x, -1, form.input, -1)) return undefined;
  const uses = form.output.uses();
  const back = uses.length === 1 && uses[0]!.index === 0 ? uses[0]!.node : undefined;
  if (!back || back.op !== 'Reshape' || (back.domain !== '' && back.domain !== 'ai.onnx')) return undefined;
  const xShape = symbolicShape(x);
  const backShape = symbolicShape(back.outputs[0]);
  if (!xShape || !backShape || xShape.length !== backShape.length || xShape.some((d, k) => d !== backShape[k])) return undefined;
  // the target read from x's own shape goes with the form (nothing else reads it)
  const target = onnxOp(back.inputs[1], 'Shape');
  const ownShape = target && target.inputs[0] === x && target.attrs.size === 0 && back.inputs[1]!.uses().length === 1 ? [target] : [];
  return { input: x, output: back.outputs[0]!, nodes: [...form.nodes, view, back, ...ownShape], spelled: true, axisOp: form.axisOp };
}

function softmaxAt(root: Node): SoftmaxForm | undefined {
  if (root.domain !== '' && root.domain !== 'ai.onnx') return undefined;
  if (root.op === 'Softmax') return { input: root.inputs[0]!, output: root.outputs[0]!, nodes: [root], spelled: false, axisOp: root };
  if (root.op === 'Exp') {
    // exp(log softmax(x)) = softmax(x): the log-probabilities exponentiated
    const log = onnxOp(root.inputs[0], 'LogSoftmax');
    return log ? { input: log.inputs[0]!, output: root.outputs[0]!, nodes: [root, log], spelled: true, axisOp: log } : undefined;
  }
  let e: Value | undefined;
  let sum: Node | undefined;
  const extra: Node[] = [];
  if (root.op === 'Div') {
    e = root.inputs[0];
    sum = onnxOp(root.inputs[1], 'ReduceSum');
  } else if (root.op === 'Mul') {
    for (const [a, b] of [[0, 1], [1, 0]] as const) {
      const rec = onnxOp(root.inputs[b], 'Reciprocal');
      const s = rec && onnxOp(rec.inputs[0], 'ReduceSum');
      if (s) {
        e = root.inputs[a];
        sum = s;
        extra.push(rec);
        break;
      }
    }
  }
  const exp = onnxOp(e, 'Exp');
  if (!exp || !sum || sum.inputs[0] !== e || !reducesLastAxis(sum)) return undefined;
  const z = exp.inputs[0]!;
  const sub = onnxOp(z, 'Sub');
  const stabilizer = sub && constantAlongLastAxis(sub.inputs[1]!, sub.inputs[0]!);
  const input = sub && stabilizer ? sub.inputs[0]! : z;
  const nodes = [root, ...extra, sum, exp, ...(sub && stabilizer ? [sub, ...stabilizer] : [])];
  return { input, output: root.outputs[0]!, nodes, spelled: true, axisOp: undefined };
}
