// Walking a decomposed attention site from its Softmax: back through the masks, the softcap and the scaling
// to the Q·Kᵀ product, forward through Cast/Dropout/the fully-masked-row guard to the product with V.
// Every step is one tagged alternative; a failed step says why. Reading never mutates the graph.

import { type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';
import { constantScalar, isClose, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { staticNumbers, staticScalar, staticShape, symbolicShape } from '../../shape-inference/shapes.js';
import { mul } from '../../shape-inference/symbolic-shapes/expr.js';
import { type ScoresView, scoresViewBack, scoresViewSplit } from './scores-view.js';
import { fusedMatMul, isFusedMatMul } from './fused-matmul.js';
import { multipliedMask } from './multiplied-mask.js';
import { onnxOp } from './onnx-op.js';
import { quantizedScores } from './quantized.js';

/**
 * A mask step between the scores and the Softmax; `over` is the value it computes (its rank says the view);
 * `view` is set when it lies inside a view of the scores reshaped back before the Softmax (scores-view.ts).
 */
export type MaskStep =
  /**
   * scores + factor · bias (additive mask, possibly broadcast); `factor` (1 when absent) is -1 for scores - bias,
   * times the static scales the scores take after the mask: s · (x + M) = s · x + s · M
   */
  | { readonly kind: 'additive'; readonly bias: Value; readonly over: Value; readonly factor?: number; readonly view?: ScoresView }
  /**
   * Where(keep, scores, fill): `fill` -inf, finfo.min or -10000 (masked_fill with the condition inverted when
   * `inverted`); `cond` is bool, or 0 / 1 numbers where the mask was multiplied in (multiplied-mask.ts)
   */
  | { readonly kind: 'masked-fill'; readonly cond: Value; readonly inverted: boolean; readonly fill: number; readonly over: Value; readonly view?: ScoresView };

export interface ScoreChain {
  /** The Q·Kᵀ node (MatMul or Einsum) and its two operands with their scale factors stripped. */
  readonly qk: Node;
  readonly qSide: Value;
  readonly ktSide: Value;
  readonly scale: number;
  /** A static scale per head on the scores, beside the scalar `scale` (see HeadScale). */
  readonly headScale?: HeadScale;
  readonly softcap: number;
  readonly masks: readonly MaskStep[];
  readonly nodes: readonly Node[];
  /** Values of the chain by scores stage, for a qk_matmul_output the model also returns. */
  readonly stages: ReadonlyMap<Value, 'qk' | 'softcapped' | 'masked'>;
  readonly variants: readonly string[];
  /**
   * H when the scores are computed as [B·H, S, T] and viewed as [B, H, S, T] around some masks (the walk
   * crossed Reshapes between the two views: onnxruntime's CLIP, BLOOM, GPT-NeoX, BART). Masks over a 4D view
   * are then [B, H, S, T]-shaped, the others [B·H, S, T]-shaped. `softmaxView` is the view the Softmax runs in.
   */
  readonly foldedHeads?: number;
  readonly softmaxView?: 3 | 4;
  /**
   * H when the heads are folded into the query axis instead: the scores computed as [B, S·H, T] (Q [B, S·H, D]
   * against one K [B, T, D]: GPT-BigCode's multi-query attention) and viewed as [B, S, H, T] around some masks.
   */
  readonly queryFoldedHeads?: number;
}

/** The heads views the walk has crossed (see ScoreChain.foldedHeads and queryFoldedHeads). */
export interface Fold {
  heads?: number;
  queryHeads?: number;
}

/** Skips Cast / Identity nodes (recording them). */
function skipCasts(v: Value, nodes: Node[], stage: Map<Value, string>, tag: string): Value {
  let cur = v;
  for (;;) {
    stage.set(cur, tag);
    const n = onnxOp(cur, 'Cast', 'Identity');
    if (!n) return cur;
    nodes.push(n);
    cur = n.inputs[0]!;
  }
}

/** A fill value that masks a key: -inf, or a float that drowns every score (finfo.min, -10000, -1e9...). */
const isMaskFill = (x: number | undefined): x is number => x !== undefined && x <= -1e4;

/**
 * One scaling step above `v`: Mul(x, s), Mul(s, x) or Div(x, s) by a static scalar gives { node, factor, x };
 * a Mul/Div by something else gives 'not-static'; any other producer gives undefined.
 */
function scaleStep(v: Value): { node: Node; factor: number; x: Value } | 'not-static' | undefined {
  const n = onnxOp(v, 'Mul', 'Div');
  if (!n) return undefined;
  const s1 = staticScalar(n.inputs[1]);
  if (s1 !== undefined) return { node: n, factor: n.op === 'Mul' ? s1 : 1 / s1, x: n.inputs[0]! };
  const s0 = n.op === 'Mul' ? staticScalar(n.inputs[0]) : undefined;
  if (s0 !== undefined) return { node: n, factor: s0, x: n.inputs[1]! };
  return 'not-static';
}

/** The scaling constants on one operand of Q·Kᵀ: Mul(x, s), Div(x, s) (sqrt-split scaling). */
export function stripOperandScale(v: Value, nodes: Node[]): { value: Value; factor: number } {
  let factor = 1;
  let cur = v;
  for (let step = scaleStep(cur); step !== undefined && step !== 'not-static'; step = scaleStep(cur)) {
    factor *= step.factor;
    cur = step.x;
    nodes.push(step.node);
  }
  return { value: cur, factor };
}

/** scale · (Q·Kᵀ): Div/Mul by static scalars above a MatMul (or Einsum, or FusedMatMul), scaling on either operand. */
function matchScaledQK(v: Value, nodes: Node[], stage: Map<Value, string>, tag: string, fold: Fold): MatchResult<{ qk: Node; qSide: Value; ktSide: Value; scale: number; headScale?: HeadScale }> {
  let scale = 1;
  let headScale: HeadScale | undefined;
  let cur = skipCasts(v, nodes, stage, tag);
  for (let step = scaleStep(cur); step !== undefined; step = scaleStep(cur)) {
    if (step === 'not-static') {
      const perHead = headScale === undefined ? perHeadScale(cur) : undefined;
      if (!perHead) return noMatch(`${cur.producer!.describe()} scales the scores by a value that is not a static scalar, nor a static one per head`);
      headScale = perHead;
      nodes.push(perHead.node);
      cur = skipCasts(perHead.x, nodes, new Map(), tag);
      continue;
    }
    scale *= step.factor;
    nodes.push(step.node);
    cur = skipCasts(step.x, nodes, new Map(), tag);
  }
  // Reshape between the [B·H, S, T] and [B, H, S, T] views of the scores
  const view = headsViewReshape(cur, fold);
  if (view) {
    nodes.push(view);
    cur = skipCasts(view.inputs[0]!, nodes, new Map(), tag);
  }
  const fused = cur.outputIndex === 0 && isFusedMatMul(cur.producer) ? cur.producer! : undefined;
  const qk = onnxOp(cur, 'MatMul', 'Einsum') ?? fused;
  const reshape = onnxOp(cur, 'Reshape');
  if (!qk && reshape) {
    return noMatch(`the scores are reshaped by ${reshape.describe()} between Q·Kᵀ and the Softmax, and not between the [B·H, S, T] and [B, H, S, T] views (or [B, S·H, T] and [B, S, H, T]) of the same scores (shapes ${JSON.stringify(staticShape(reshape.inputs[0]))} -> ${JSON.stringify(staticShape(reshape.outputs[0]))})`);
  }
  const quantized = qk ? undefined : quantizedScores(cur);
  if (quantized) return noMatch(quantized);
  if (!qk) return noMatch(`the scores are not a MatMul (or Einsum) of Q and Kᵀ: found ${cur.producer?.describe() ?? `input ${cur.name}`}`);
  if (qk.inputs.length !== 2) return noMatch(`${qk.describe()} does not have exactly two operands`);
  // onnxruntime's FusedMatMul: its alpha is a scale of the scores (fused-matmul.ts)
  const f = fused && fusedMatMul(fused);
  if (typeof f === 'string') return noMatch(f);
  nodes.push(qk);
  const q = stripOperandScale(qk.inputs[0]!, nodes);
  const kt = stripOperandScale(qk.inputs[1]!, nodes);
  return matched({ qk, qSide: q.value, ktSide: kt.value, scale: scale * q.factor * kt.factor * (f?.alpha ?? 1), ...(headScale ? { headScale } : {}) });
}

/**
 * Scores scaled per head by a static tensor (a learned temperature per head: Swin V2's logit_scale): `scale`
 * broadcasts over [B, H, S, T] along the heads axis alone, so it scales Q's heads alike, (s_h · Q)·Kᵀ.
 */
export interface HeadScale {
  readonly node: Node;
  readonly scale: Value;
  readonly divide: boolean;
  readonly x: Value;
}

/** Mul / Div of rank-4 scores `v` by a static tensor of finite (nonzero, for Div) values whose every axis but the heads' is 1. */
function perHeadScale(v: Value): HeadScale | undefined {
  const n = onnxOp(v, 'Mul', 'Div');
  if (!n || staticShape(v)?.length !== 4) return undefined;
  const sides: readonly (readonly [number, number])[] = n.op === 'Mul' ? [[0, 1], [1, 0]] : [[0, 1]];
  for (const [x, w] of sides) {
    const shape = staticShape(n.inputs[w]);
    const values = staticNumbers(n.inputs[w]);
    if (!shape || !values || shape.length > 4 || !values.every((c) => Number.isFinite(c) && (n.op === 'Mul' || c !== 0))) continue;
    const aligned = [...Array<number>(4 - shape.length).fill(1), ...shape];
    // (and the scores keep their shape: a scale over heads that one head of scores broadcasts to is no scale of Q)
    const [before, after] = [symbolicShape(n.inputs[x]), symbolicShape(v)];
    const kept = before !== undefined && after !== undefined && before.length === 4 && before.every((d, k) => d === after[k]);
    if (kept && aligned.every((d, k) => d === 1 || k === 1)) return { node: n, scale: n.inputs[w]!, divide: n.op === 'Div', x: n.inputs[x]! };
  }
  return undefined;
}

/** softcap · tanh(x / softcap), or the bare scaled scores. */
function matchSoftcap(v: Value, nodes: Node[], stage: Map<Value, string>, variants: string[], fold: Fold) {
  const inner = skipCasts(v, nodes, stage, 'softcapped');
  const mul = onnxOp(inner, 'Mul');
  if (mul) {
    for (const [t, c] of [[0, 1], [1, 0]] as const) {
      const tanh = onnxOp(mul.inputs[t], 'Tanh');
      const cap = staticScalar(mul.inputs[c]);
      const div = tanh && onnxOp(tanh.inputs[0], 'Div');
      const capIn = div && staticScalar(div.inputs[1]);
      if (!tanh || !div || cap === undefined || capIn === undefined) continue;
      if (!isClose(cap, capIn) || !(cap > 0)) return noMatch(`softcap ${cap} · tanh(x / ${capIn}) uses two different caps`);
      nodes.push(mul, tanh, div);
      variants.push('softcap');
      const r = matchScaledQK(div.inputs[0]!, nodes, stage, 'qk', fold);
      return r.ok ? matched({ ...r.value, softcap: cap }) : r;
    }
  }
  const r = matchScaledQK(inner, nodes, stage, 'softcapped', fold);
  return r.ok ? matched({ ...r.value, softcap: 0 }) : r;
}

/**
 * The masks between the (softcapped) scores and the Softmax: Add of a bias, Sub of a bias, Where(cond, scores,
 * fill), and static positive scales between them. `factor` is the product of the scales walked so far (above
 * this point): the masks below take it, and the scores' scale includes it.
 */
function matchMasks(v: Value, nodes: Node[], stage: Map<Value, string>, masks: MaskStep[], variants: string[], fold: Fold, depth = 0, factor = 1, scoresView?: ScoresView): MatchResult<Omit<ScoreChain, 'masks' | 'nodes' | 'stages' | 'variants' | 'foldedHeads' | 'queryFoldedHeads'>> {
  let inner = skipCasts(v, nodes, stage, 'masked');
  // the Reshape into a view of the scores (scores-view.ts), below the masks over it
  const split = scoresView ? scoresViewSplit(inner, scoresView) : undefined;
  if (scoresView && split) {
    scoresView.split = split;
    nodes.push(split);
    const r = matchMasks(split.inputs[0]!, nodes, stage, masks, variants, fold, depth + 1, factor);
    if (!r.ok) scoresView.split = undefined;
    return r;
  }
  const inView = scoresView ? { view: scoresView } : {};
  // Reshape between the [B·H, S, T] and [B, H, S, T] views of the scores
  const view = depth < 6 && !scoresView ? headsViewReshape(inner, fold) : undefined;
  if (view) {
    nodes.push(view);
    if (!variants.includes('scores-heads-views')) variants.push('scores-heads-views');
    return matchMasks(view.inputs[0]!, nodes, stage, masks, variants, fold, depth + 1, factor);
  }
  // a view of the scores otherwise (scores-view.ts): the masks below it are over the view
  const opened = depth < 8 && scoresView === undefined ? scoresViewBack(inner) : undefined;
  if (opened) {
    nodes.push(opened.back);
    variants.push('scores-view');
    return matchMasks(opened.back.inputs[0]!, nodes, stage, masks, variants, fold, depth + 1, factor, opened);
  }
  // clamp(min = finfo.min) after a mask: Max(x, fill) changes only masked entries (-inf -> fill), which the
  // softmax gives 0 either way
  const clamp = depth < 8 ? clampAtFill(inner) : undefined;
  if (clamp) {
    nodes.push(clamp.node);
    variants.push('clamp-min');
    return matchMasks(clamp.x, nodes, stage, masks, variants, fold, depth + 1, factor, scoresView);
  }
  // s · (x + M): a static positive scale above a mask (x · s, then the mask below scaled by s too); only where a
  // mask lies below, else the scale is the scores' own (matchScaledQK)
  const scaled = depth < 8 ? scaleStep(inner) : undefined;
  if (scaled !== undefined && scaled !== 'not-static' && scaled.factor > 0 && Number.isFinite(scaled.factor) && masksBelow(scaled.x)) {
    nodes.push(scaled.node);
    if (!variants.includes('scale-after-mask')) variants.push('scale-after-mask');
    const r = matchMasks(scaled.x, nodes, stage, masks, variants, fold, depth + 1, factor * scaled.factor, scoresView);
    if (!r.ok) return r;
    if (r.value.softcap > 0) return noMatch(`${scaled.node.describe()} scales softcapped scores: softcap · tanh(x / softcap) scaled afterwards is no softcap attnopt::Attention computes`);
    return matched({ ...r.value, scale: r.value.scale * scaled.factor });
  }
  // w · b - c · (1 - b) with b in {0, 1}: a masked fill written as products (multiplied-mask.ts)
  const multiplied = depth < 8 ? multipliedMask(inner) : undefined;
  if (multiplied) {
    if (!multiplied.ok) return multiplied;
    const { scores, keep, fill } = multiplied.value;
    if (!isMaskFill(fill * factor)) return noMatch(`${inner.producer!.describe()} fills ${fill}, scaled by ${factor} before the Softmax: ${fill * factor} is no longer a mask fill (-inf, finfo.min, <= -10000)`);
    nodes.push(...multiplied.value.nodes);
    masks.push({ kind: 'masked-fill', cond: keep, inverted: false, fill, over: inner, ...inView });
    variants.push('multiplied-mask');
    return matchMasks(scores, nodes, stage, masks, variants, fold, depth + 1, factor, scoresView);
  }
  const add = onnxOp(inner, 'Add');
  const sub = onnxOp(inner, 'Sub');
  const where = onnxOp(inner, 'Where');
  let firstFailure: MatchResult<never> | undefined;
  // scores + M (either operand), scores - M
  const additive = add ? ([[0, 1, 1], [1, 0, 1]] as const).map(([s, b, sign]) => ({ node: add, s, b, sign })) : sub ? [{ node: sub, s: 0, b: 1, sign: -1 }] : [];
  if (depth < 8) {
    for (const { node, s, b, sign } of additive) {
      const n2 = [...nodes, node];
      const f = factor * sign;
      const m2: MaskStep[] = [...masks, { kind: 'additive', bias: node.inputs[b]!, over: inner, ...(f !== 1 ? { factor: f } : {}), ...inView }];
      const v2: string[] = [...variants, sign < 0 ? 'subtracted-mask' : 'additive-mask'];
      const st2 = new Map(stage);
      const r = matchMasks(node.inputs[s]!, n2, st2, m2, v2, fold, depth + 1, factor, scoresView);
      if (r.ok) {
        nodes.splice(0, nodes.length, ...n2);
        masks.splice(0, masks.length, ...m2);
        variants.splice(0, variants.length, ...v2);
        st2.forEach((x, k) => stage.set(k, x));
        return r;
      }
      firstFailure ??= r;
    }
  }
  if (where && depth < 8) {
    const [cond, a, b] = where.inputs;
    const fa = constantScalar(a) ?? staticScalar(a);
    const fb = constantScalar(b) ?? staticScalar(b);
    const step: { scores: Value; inverted: boolean; fill: number } | undefined =
      isMaskFill(fb) ? { scores: a!, inverted: false, fill: fb } : isMaskFill(fa) ? { scores: b!, inverted: true, fill: fa } : undefined;
    if (step === undefined) return noMatch(`${where.describe()} selects between two values neither of which is a mask fill (-inf, finfo.min, <= -10000)`);
    if (!isMaskFill(step.fill * factor)) return noMatch(`${where.describe()} fills ${step.fill}, scaled by ${factor} before the Softmax: ${step.fill * factor} is no longer a mask fill (-inf, finfo.min, <= -10000)`);
    nodes.push(where);
    masks.push({ kind: 'masked-fill', cond: cond!, inverted: step.inverted, fill: step.fill, over: inner, ...inView });
    variants.push(step.fill === -Infinity ? 'masked-fill-inf' : 'masked-fill-finite');
    return matchMasks(step.scores, nodes, stage, masks, variants, fold, depth + 1, factor, scoresView);
  }
  if (scoresView) {
    const [from, to] = [staticShape(scoresView.back.inputs[0]), staticShape(scoresView.back.outputs[0])];
    return firstFailure ?? noMatch(`the scores are reshaped by ${scoresView.back.describe()} between Q·Kᵀ and the Softmax (shapes ${JSON.stringify(from)} -> ${JSON.stringify(to)}), and no Reshape of scores shaped ${JSON.stringify(to)} into that view lies between it and Q·Kᵀ, and it is not between the [B·H, S, T] and [B, H, S, T] views (or [B, S·H, T] and [B, S, H, T]) of the same scores`);
  }
  const r = matchSoftcap(inner, nodes, stage, variants, fold);
  if (!r.ok && firstFailure && !firstFailure.ok) return firstFailure;
  return r;
}

/** Whether a mask step (Add, Sub, Where, through casts, scales and heads views) lies below `v` before the scores' product. */
function masksBelow(v: Value): boolean {
  let cur = v;
  for (let steps = 0; steps < 12; steps++) {
    // (through a switch between the heads views: ChatGLM scales the [B, H, S, T] view of baddbmm's scores)
    const view = headsViewReshape(cur, {});
    if (view) {
      cur = view.inputs[0]!;
      continue;
    }
    const n = onnxOp(cur, 'Add', 'Sub', 'Where', 'Cast', 'Identity', 'Mul', 'Div');
    if (!n) return false;
    if (n.op === 'Add' || n.op === 'Sub' || n.op === 'Where') return true;
    const step = n.op === 'Mul' || n.op === 'Div' ? scaleStep(cur) : undefined;
    if (step === 'not-static') return false;
    cur = step ? step.x : n.inputs[0]!;
  }
  return false;
}

/**
 * A Reshape producing `v` that switches the scores between the [B·H, S, T] and [B, H, S, T] views: H static
 * (and the same for every such Reshape of the walk), S and T unchanged. Records H in `fold`. Or one between the
 * [B, S·H, T] and [B, S, H, T] views (queryHeadsView), recorded as `fold.queryHeads`; a walk crosses one kind.
 */
export function headsViewReshape(v: Value, fold: Fold): Node | undefined {
  const reshape = onnxOp(v, 'Reshape');
  if (!reshape) return undefined;
  return (fold.queryHeads === undefined && batchHeadsView(reshape, fold)) || (fold.heads === undefined && queryHeadsView(reshape, fold)) ? reshape : undefined;
}

/**
 * Whether `reshape` switches the scores between [B, S·H, T] and [B, S, H, T]: H static (above 1), B, S and T
 * provably the same on both sides (symbolic shapes). Records H in `fold.queryHeads`.
 */
function queryHeadsView(reshape: Node, fold: Fold): boolean {
  const [inS, outS] = [symbolicShape(reshape.inputs[0]), symbolicShape(reshape.outputs[0])];
  const [s3, s4] = inS?.length === 3 && outS?.length === 4 ? [inS, outS] : inS?.length === 4 && outS?.length === 3 ? [outS, inS] : [undefined, undefined];
  if (!s3 || !s4) return false;
  const h = s4[2]!.constant;
  if (h === undefined || !Number.isInteger(h) || h < 2 || (fold.queryHeads !== undefined && fold.queryHeads !== h)) return false;
  if (s3[0] !== s4[0] || s3[2] !== s4[3] || s3[1] !== mul(s4[1]!, s4[2]!)) return false;
  fold.queryHeads = h;
  return true;
}

/** Whether `reshape` switches the scores between [B·H, S, T] and [B, H, S, T] (see headsViewReshape). */
function batchHeadsView(reshape: Node, fold: Fold): boolean {
  const inS = staticShape(reshape.inputs[0]);
  const outS = staticShape(reshape.outputs[0]);
  if (!inS || !outS) return false;
  const [s3, s4] = inS.length === 3 && outS.length === 4 ? [inS, outS] : inS.length === 4 && outS.length === 3 ? [outS, inS] : [undefined, undefined];
  if (!s3 || !s4) return false;
  const h = s4[1];
  if (typeof h !== 'number' || (fold.heads !== undefined && fold.heads !== h)) return false;
  if (!sameOrUnknown(s3[1], s4[2]) || !sameOrUnknown(s3[2], s4[3])) return false;
  if (typeof s3[0] === 'number' && typeof s4[0] === 'number' && s3[0] !== s4[0] * h) return false;
  fold.heads = h;
  return true;
}

/** Max(x, fill) / Max(fill, x) or Clip(x, fill) with a static masking fill: the clamp exporters write after a mask. */
function clampAtFill(v: Value): { node: Node; x: Value } | undefined {
  const max = onnxOp(v, 'Max');
  if (max && max.inputs.length === 2) {
    for (const [x, c] of [[0, 1], [1, 0]] as const) {
      if (isMaskFill(staticScalar(max.inputs[c]))) return { node: max, x: max.inputs[x]! };
    }
  }
  const clip = onnxOp(v, 'Clip');
  if (clip && clip.inputs[2] === undefined && !clip.attrs.has('max') && isMaskFill(clip.inputs[1] ? staticScalar(clip.inputs[1]) : undefined)) {
    return { node: clip, x: clip.inputs[0]! };
  }
  return undefined;
}

/** Two dims that may be the same: equal, or either not known. */
const sameOrUnknown = (a: unknown, b: unknown) => a === b || a === '?' || b === '?' || a === undefined || b === undefined;

/** Walks back from the Softmax input to Q·Kᵀ. */
export function matchScoreChain(softmaxInput: Value): MatchResult<ScoreChain> {
  const nodes: Node[] = [];
  const stage = new Map<Value, string>();
  const masks: MaskStep[] = [];
  const variants: string[] = [];
  const fold: Fold = {};
  const r = matchMasks(softmaxInput, nodes, stage, masks, variants, fold);
  if (!r.ok) return r;
  const stages = new Map<Value, 'qk' | 'softcapped' | 'masked'>();
  for (const [val, s] of stage) if (s === 'qk' || s === 'softcapped' || s === 'masked') stages.set(val, s);
  const softmaxRank = staticShape(softmaxInput)?.length;
  const softmaxView = softmaxRank === 3 || softmaxRank === 4 ? softmaxRank : undefined;
  return matched({
    ...r.value,
    masks,
    nodes,
    stages,
    variants,
    ...(fold.heads !== undefined ? { foldedHeads: fold.heads, ...(softmaxView ? { softmaxView } : {}) } : {}),
    ...(fold.queryHeads !== undefined ? { queryFoldedHeads: fold.queryHeads } : {}),
  });
}

export { onnxOp };
