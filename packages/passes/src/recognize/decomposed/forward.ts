// Walking forward from the Softmax to the product with V:
//   Softmax -> [Cast | Identity | Dropout (inference) | fully-masked-row guard (on the bias, or on IsNaN) | IsInf guard | the mask's zeroes | heads-view Reshape]* -> MatMul(P, V)
//   (or Einsum, or onnxruntime's FusedMatMul with alpha 1)
// Reading never mutates the graph; a failed step says why.

import type { Node, Value } from '@attnopt/ir';
import { attrInt, attrInts, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { staticNumbers, staticScalar, staticShape } from '../../shape-inference/shapes.js';
import { type Fold, headsViewReshape, type MaskStep, onnxOp, type ScoreChain } from './chain.js';
import { fusedMatMul, isFusedMatMul } from './fused-matmul.js';
import { quantizedProbabilities } from './quantized.js';

export interface ToValues {
  /** The product with V (MatMul or Einsum). */
  readonly pv: Node;
  /** The probabilities as the product reads them. */
  readonly p: Value;
  /** The values from the Softmax output to `p`. */
  readonly softmaxValues: readonly Value[];
  /** The nodes walked through, the product included. */
  readonly nodes: readonly Node[];
  readonly variants: readonly string[];
}

/** The uses followed, best first; a Where is followed through its value inputs (the guards, the mask's zeroes). */
const FOLLOWED = ['MatMul', 'Einsum', 'FusedMatMul', 'Where', 'Dropout', 'Cast', 'Identity', 'Reshape'];

/** The heads fold the scores crossed, as a walk that must cross the same one reads it. */
function crossedFold(c: ScoreChain): Fold {
  return { ...(c.foldedHeads !== undefined ? { heads: c.foldedHeads } : {}), ...(c.queryFoldedHeads !== undefined ? { queryHeads: c.queryFoldedHeads } : {}) };
}

export function matchToValues(probabilities: Value, c: ScoreChain): MatchResult<ToValues> {
  const nodes: Node[] = [];
  const variants: string[] = [];
  let p = probabilities;
  const softmaxValues: Value[] = [p];
  let pv: Node | undefined;
  for (let steps = 0; steps < 8 && pv === undefined; steps++) {
    const uses = p.uses();
    const next = uses
      .filter((u) => (u.node.op === 'Where' ? u.index >= 1 : u.index === 0) && FOLLOWED.includes(u.node.op))
      // a FusedMatMul that scales or transposes is no P·V (a training graph's gradient reads P so)
      .filter((u) => u.node.op !== 'FusedMatMul' || plainProduct(u.node))
      .filter((u) => u.node.op !== 'Reshape' || headsViewReshape(u.node.outputs[0]!, crossedFold(c)) !== undefined)
      .sort((a, b) => FOLLOWED.indexOf(a.node.op) - FOLLOWED.indexOf(b.node.op))[0];
    if (!next) {
      const fused = uses.find((u) => u.node.op === 'FusedMatMul');
      const why = fused && fusedMatMul(fused.node);
      if (why !== undefined && typeof why !== 'string') return noMatch(`${fused!.node.describe()} scales or transposes V (alpha ${why.alpha}, transB ${why.transB ? 1 : 0}): not probabilities · V`);
      if (typeof why === 'string') return noMatch(why);
      const quantized = quantizedProbabilities(p);
      if (quantized) return noMatch(quantized);
      return noMatch(`the Softmax output does not reach a MatMul with V (uses: ${uses.map((u) => u.node.op).join(', ') || 'none'})`);
    }
    const n = next.node;
    if (n.op === 'MatMul' || n.op === 'Einsum') pv = n;
    else if (n.op === 'FusedMatMul') {
      pv = n;
      variants.push('fused-matmul-values');
    }
    else if (n.op === 'Dropout') {
      const why = dropoutIsNotIdentity(n);
      if (why !== undefined) return noMatch(why);
      variants.push('dropout');
    } else if (n.op === 'Reshape') {
      // the probabilities folded back from the [B, H, S, T] view to [B·H, S, T] (or [B, S, H, T] to [B, S·H, T]) for a bmm with V
      if (c.foldedHeads === undefined && c.queryFoldedHeads === undefined) return noMatch(`${n.describe()} reshapes the probabilities between head views the scores never crossed`);
      variants.push('probabilities-heads-view');
    } else if (n.op === 'Where') {
      const guard = matchRowGuard(n, p, c.masks);
      const nanGuard = guard ? undefined : matchNanGuard(n, p);
      const infGuard = guard || nanGuard ? undefined : matchInfGuard(n, p);
      const maskedZero = guard || nanGuard || infGuard ? undefined : matchMaskedZero(n, p, c.masks);
      const found = guard ?? nanGuard ?? infGuard ?? maskedZero;
      if (!found) return noMatch(`${n.describe()} after the Softmax is not the fully-masked-row guard on the same bias, nor Where(IsNaN(p), 0, p), nor Where(IsInf(p), c, p), nor zeroes the entries the mask filled`);
      nodes.push(...found.slice(1));
      variants.push(guard ? 'row-guard' : nanGuard ? 'nan-guard' : infGuard ? 'inf-guard' : 'masked-zero');
    }
    nodes.push(n);
    if (!pv) {
      p = n.outputs[0]!;
      softmaxValues.push(p);
    }
  }
  if (!pv) return noMatch('the Softmax output does not reach a MatMul with V within 8 steps');
  return matched({ pv, p, softmaxValues, nodes, variants });
}

/** onnxruntime's FusedMatMul computing a plain matrix product (alpha 1, nothing transposed): a P·V product. */
function plainProduct(n: Node): boolean {
  const f = isFusedMatMul(n) ? fusedMatMul(n) : undefined;
  return f !== undefined && typeof f !== 'string' && f.alpha === 1 && !f.transB;
}

/** The nodes of a Where guard `Where(ReduceMax(bias) == -inf, 0, p)` (rows the bias masks fully give 0). */
function matchRowGuard(where: Node, p: Value, masks: readonly MaskStep[]): Node[] | undefined {
  if (where.inputs[2] !== p || staticScalar(where.inputs[1]) !== 0) return undefined;
  const eq = onnxOp(where.inputs[0], 'Equal');
  if (!eq) return undefined;
  for (const [r, c] of [[0, 1], [1, 0]] as const) {
    const rmax = onnxOp(eq.inputs[r], 'ReduceMax');
    if (!rmax || staticScalar(eq.inputs[c]) !== -Infinity) continue;
    const axes = attrInts(rmax, 'axes') ?? [...(staticNumbers(rmax.inputs[1]) ?? [])];
    const rank = staticShape(rmax.inputs[0])?.length;
    if (axes.length !== 1 || !(axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1))) continue;
    const only = masks.length === 1 ? masks[0]! : undefined;
    if (only?.kind !== 'additive' || only.bias !== rmax.inputs[0] || (only.factor ?? 1) <= 0) continue;
    const casts = [onnxOp(eq.inputs[c], 'CastLike', 'Cast'), onnxOp(where.inputs[1], 'CastLike', 'Cast')];
    return [where, eq, rmax, ...casts.filter((n): n is Node => n !== undefined)];
  }
  return undefined;
}

/**
 * The nodes of `Where(IsNaN(p), 0, p)` (torch's masked_fill(isnan(p), 0), as onnxscript writes its SDPA with a
 * boolean mask): on finite inputs p is NaN exactly on fully masked rows (all -inf), which the guard zeroes, as
 * attnopt::Attention does. (Where Q or K holds a NaN, the guard zeroes what the site gives as NaN.)
 */
function matchNanGuard(where: Node, p: Value): Node[] | undefined {
  const isNan = onnxOp(where.inputs[0], 'IsNaN');
  if (where.inputs[2] !== p || isNan?.inputs[0] !== p) return undefined;
  const zeros = zerosOf(where.inputs[1]);
  return zeros && [where, isNan, ...zeros];
}

/**
 * The nodes of a Where that zeroes the probabilities the mask filled, on the mask's own condition (DeBERTa's
 * XSoftmax: masked_fill(x, rmask, finfo.min), softmax, masked_fill(p, rmask, 0)): Where(c, 0, p) after a fill
 * Where(c, fill, x), or Where(keep, p, 0) after Where(keep, x, fill). Those entries are 0 in attnopt::Attention,
 * and so is a fully masked row, which the graph zeroes too.
 */
function matchMaskedZero(where: Node, p: Value, masks: readonly MaskStep[]): Node[] | undefined {
  const [cond, a, b] = where.inputs;
  for (const m of masks) {
    if (m.kind !== 'masked-fill' || m.view !== undefined) continue;
    // the zeroes on the fill's condition, or on its negation (masked_fill(~keep, -inf), then where(keep, p, 0))
    const negated = !sameCondition(m.cond, cond) && negation(m.cond, cond);
    if (!negated && !sameCondition(m.cond, cond)) continue;
    const [kept, zero] = m.inverted !== negated ? [b, a] : [a, b];
    const zeros = kept === p ? zerosOf(zero) : undefined;
    if (zeros) return [where, ...zeros];
  }
  return undefined;
}

/** Whether one condition is Not of the other (under Identity and Cast(to = bool) nodes). */
function negation(x: Value | undefined, y: Value | undefined): boolean {
  const notOf = (v: Value | undefined) => onnxOp(underBoolCasts(v), 'Not')?.inputs[0];
  return x !== undefined && y !== undefined && (sameCondition(notOf(x), y) || sameCondition(x, notOf(y)));
}

/**
 * The nodes of a Where that replaces infinite probabilities (torch.nan_to_num's posinf / neginf steps after its NaN
 * step): Where(c, value, p) with c IsInf(p), or an And of it with a sign test, under Casts. Probabilities are in
 * [0, 1] or NaN, never infinite: the Where is the identity on them.
 */
function matchInfGuard(where: Node, p: Value): Node[] | undefined {
  if (where.inputs[2] !== p) return undefined;
  // p itself, or a Cast of it: the nodes crossed
  const ofP = (v: Value | undefined): Node[] | undefined => {
    if (v === p) return [];
    const cast = onnxOp(v, 'Cast');
    return cast?.inputs[0] === p ? [cast] : undefined;
  };
  // a test of p under bool casts: IsInf(p), or a sign test against a constant (Greater(p, 0), Less(p, 0))
  const test = (v: Value | undefined, ops: readonly string[]): Node[] | undefined => {
    const casts: Node[] = [];
    const n = onnxOp(underBoolCasts(v, casts), ...ops);
    if (!n || (n.op !== 'IsInf' && staticScalar(n.inputs[1]) === undefined)) return undefined;
    const inner = ofP(n.inputs[0]);
    return inner && [...casts, n, ...inner];
  };
  const isInf = (v: Value | undefined) => test(v, ['IsInf']);
  const sign = (v: Value | undefined) => test(v, ['Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual']);
  const casts: Node[] = [];
  const cond = underBoolCasts(where.inputs[0], casts);
  const and = onnxOp(cond, 'And');
  if (!and) {
    const alone = isInf(cond);
    return alone && [where, ...casts, ...alone];
  }
  const [x, y] = and.inputs;
  const parts = (isInf(x) && (isInf(y) ?? sign(y)) && [...isInf(x)!, ...(isInf(y) ?? sign(y))!]) || (isInf(y) && sign(x) && [...isInf(y)!, ...sign(x)!]);
  return parts ? [...new Set([where, ...casts, and, ...parts])] : undefined;
}

/**
 * Whether two Where conditions are the same boolean tensor: the same value under Identity and Cast(to = bool) nodes
 * (the TorchScript exporter casts the mask again for each masked_fill, as Conformer's attention fills twice).
 * A Where's condition is bool, so a Cast to bool at its top is the identity on it.
 */
function sameCondition(x: Value | undefined, y: Value | undefined): boolean {
  return x !== undefined && y !== undefined && (x === y || underBoolCasts(x) === underBoolCasts(y));
}

/** `v` under Identity and Cast(to = bool) nodes (collected into `crossed` when given). */
function underBoolCasts(v: Value | undefined, crossed?: Node[]): Value | undefined {
  for (let cur = v; ; ) {
    const n = onnxOp(cur, 'Identity', 'Cast');
    if (!n || (n.op === 'Cast' && attrInt(n, 'to') !== 9)) return cur;
    crossed?.push(n);
    cur = n.inputs[0];
  }
}

/** The nodes that make `v` all zeros (a static 0, torch's zeros_like as ConstantOfShape, an Expand or Cast of a 0), or undefined. */
function zerosOf(v: Value | undefined): Node[] | undefined {
  if (staticScalar(v) === 0) return [];
  const n = onnxOp(v, 'ConstantOfShape', 'Expand', 'Cast', 'CastLike');
  if (!n) return undefined;
  if (n.op === 'ConstantOfShape') {
    const a = n.attrs.get('value');
    const zero = a === undefined || (a.type === 'tensor' && a.value.toFloat64().every((x) => x === 0));
    // zeros_like(p): the Shape it reads goes with it (else it would keep the scores alive)
    const shape = onnxOp(n.inputs[0], 'Shape');
    return zero ? [n, ...(shape ? [shape] : [])] : undefined;
  }
  const inner = zerosOf(n.inputs[0]);
  return inner && [n, ...inner];
}

/**
 * Why a Dropout may change its input, or undefined when it is the identity on its output: inference mode
 * (Dropout-12+: the training_mode input absent or a static false; Dropout-7..11: always; Dropout-1..6: is_test
 * set), or a static ratio of 0 (nothing dropped, scale 1/(1-0) = 1) in any mode.
 */
export function dropoutIsNotIdentity(n: Node): string | undefined {
  const ratioAttr = n.attrs.get('ratio');
  const ratio = n.inputs[1] ? staticScalar(n.inputs[1]) : ratioAttr?.type === 'float' ? ratioAttr.value : undefined;
  if (ratio === 0) return undefined;
  const training = n.inputs[2];
  if (training !== undefined && staticScalar(training) !== 0) {
    const known = staticScalar(training) !== undefined;
    return `${n.describe()} runs in training mode (training_mode is ${known ? 'true' : 'not a constant'}) with a drop ratio that is ${ratio === undefined ? 'not a constant' : String(ratio)}: its output is random, not an attention input`;
  }
  if (attrInt(n, 'is_test') === 0) return `${n.describe()} runs in training mode (is_test = 0): its output is random, not an attention input`;
  return undefined;
}
