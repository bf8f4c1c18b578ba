// A keep-mask applied by multiplication, as GPT-2's original code and Megatron write it:
//   w · b - c · (1 - b)   (or + (-c) · (1 - b))   -> Where(b, w, -c)   for b in {0, 1} everywhere, w finite
// With b = 1 the first term is w and the second 0; with b = 0 they are 0 and -c. For any other b the expression
// scales the scores, which no attnopt::Attention bias expresses, so the step is taken only where b is provably
// 0 or 1 on every input (constants of 0s and 1s, a Cast of a bool, and views, slices or products of those).

import { type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';
import { type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferDtype, staticNumbers, staticScalar } from '../../shape-inference/shapes.js';
import { onnxOp } from './onnx-op.js';

export interface MultipliedMask {
  /** The scores the mask multiplies. */
  readonly scores: Value;
  /** b: 1 keeps a key, 0 fills it. */
  readonly keep: Value;
  /** -c, the value a dropped key's score takes. */
  readonly fill: number;
  readonly nodes: readonly Node[];
}

/** Ops whose output elements are elements of their first input (views, slices, gathers, copies). */
const SELECTS_FROM_FIRST = new Set(['Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Expand', 'Slice', 'Gather', 'GatherElements', 'Tile']);

/** Whether every element of `v` is 0 or 1 whatever the inputs: a proof by the ops that compute it. */
export function zeroOrOne(v: Value | undefined, depth = 0): boolean {
  if (v === undefined || depth > 16) return false;
  const known = staticNumbers(v);
  if (known !== undefined) return known.every((x) => x === 0 || x === 1);
  const n = v.producer;
  if (!n || n.domain !== ONNX_DOMAIN || v.outputIndex !== 0) return false;
  if (n.op === 'Cast') return inferDtype(n.inputs[0]) === 'bool' || zeroOrOne(n.inputs[0], depth + 1);
  if (SELECTS_FROM_FIRST.has(n.op)) return zeroOrOne(n.inputs[0], depth + 1);
  if (n.op === 'Concat' || n.op === 'Mul' || n.op === 'Min' || n.op === 'Max') return n.inputs.every((x) => zeroOrOne(x, depth + 1));
  if (n.op === 'Where') return zeroOrOne(n.inputs[1], depth + 1) && zeroOrOne(n.inputs[2], depth + 1);
  return false;
}

/** The scores and b of Mul(scores, b) when `b` is the given value (either operand order). */
function timesMask(mul: Node | undefined, b: Value): Value | undefined {
  if (!mul) return undefined;
  if (mul.inputs[1] === b) return mul.inputs[0];
  if (mul.inputs[0] === b) return mul.inputs[1];
  return undefined;
}

/** c · (1 - b) or (1 - b) · c with c a static scalar: { b, c, nodes }. */
function penalty(v: Value | undefined): { b: Value; c: number; nodes: Node[] } | undefined {
  const mul = onnxOp(v, 'Mul');
  if (!mul) return undefined;
  for (const [s, c] of [[0, 1], [1, 0]] as const) {
    const sub = onnxOp(mul.inputs[s], 'Sub');
    const factor = staticScalar(mul.inputs[c]);
    if (sub && factor !== undefined && staticScalar(sub.inputs[0]) === 1) return { b: sub.inputs[1]!, c: factor, nodes: [mul, sub] };
  }
  return undefined;
}

/**
 * The multiplied keep-mask producing `v`: Sub(Mul(w, b), c · (1 - b)) or Add(Mul(w, b), -c · (1 - b)) in either
 * operand order. Undefined when `v` is not so written; a no-match with the reason when it is but b is not
 * provably 0 or 1, or -c drowns no score.
 */
export function multipliedMask(v: Value): MatchResult<MultipliedMask> | undefined {
  const n = onnxOp(v, 'Sub', 'Add');
  if (!n) return undefined;
  const orders = n.op === 'Sub' ? ([[0, 1]] as const) : ([[0, 1], [1, 0]] as const);
  for (const [m, p] of orders) {
    const pen = penalty(n.inputs[p]);
    const mul = onnxOp(n.inputs[m], 'Mul');
    const scores = pen && timesMask(mul, pen.b);
    if (!pen || !mul || !scores) continue;
    const fill = n.op === 'Sub' ? -pen.c : pen.c;
    if (!zeroOrOne(pen.b)) {
      return noMatch(`${n.describe()} multiplies the scores by a mask and adds ${fill} · (1 - mask): that is a masked fill only where the mask is 0 or 1, and ${pen.b.producer?.describe() ?? `input ${pen.b.name}`} is not provably so`);
    }
    if (!(fill <= -1e4) || !Number.isFinite(fill)) return noMatch(`${n.describe()} fills masked keys with ${fill}: not a finite mask fill (<= -10000)`);
    return matched({ scores, keep: pen.b, fill, nodes: [n, mul, ...pen.nodes] });
  }
  return undefined;
}
