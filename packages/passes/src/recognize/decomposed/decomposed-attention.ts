// Decomposed attention as exporters write it, rooted at the Softmax:
//   Softmax(mask(softcap(s · Q·Kᵀ))) [Cast, Dropout, fully-masked-row guard] · V
//     -> Attention(Q, K, V, bias = the mask, scale = s, softcap)
// Variants are tagged alternatives of one walk (see chain.ts): scale by Div/Mul or split over Q and Kᵀ,
// additive masks, masked_fill Where(cond, scores, -inf | finfo.min | -10000), softcap Div/Tanh/Mul, Casts
// around an fp16/fp32 softmax, Dropout, GQA by Unsqueeze/Expand/Reshape, Einsum (tf2onnx/keras2onnx).
// Q, K, V are the 4D values already in the graph (layout bhsd); 3D bmm chains (PyTorch MultiheadAttention
// with heads folded into the batch, onnxruntime's CLIP with the scores folded around a 4D mask) lift with the
// true head count H read from the folding reshapes: Q, K, V unfolded to [B, H, S, D] in the prelude, the output
// folded back to [B·H, S, D] in the postlude (variants `heads-from-reshapes`, `heads-from-scores-fold`). A 3D
// chain with no such reshape in sight lifts as layout bsd with one head (variant `bmm-heads-in-batch`). The mask-computing nodes stay
// and feed the bias; the spec stays dense (a mask kept as bias is exact). A keep-mask without a declared type
// gets a Cast(to = bool) so consumers read it as a keep-mask.
// One known difference: a row whose keys are ALL masked gives NaN in the decomposed graph (softmax of -inf
// everywhere) but 0 in attnopt::Attention (its definition); every other row is exact.

import {
  type AttentionParams,
  dense,
  type Graph,
  Node,
  ONNX_DOMAIN,
  Tensor,
  tensorAttr,
  intAttr,
  intsAttr,
  tensorType,
  Value,
} from '@attnopt/ir';
import { type MatchResult, matched, noMatch, type RewriteRule } from '@attnopt/rewrite';
import { liftSite, type SiteMatch } from '../lift.js';
import { sortTopologically, topologicallyOrdered } from '../order.js';
import { headsViewReshape, type MaskStep, matchScoreChain, onnxOp } from './chain.js';
import { isIdentity, outputEinsum, scoresEinsum } from './einsum.js';
import { matchKvRepeat } from './kv-repeat.js';
import { pullScaleThroughLayout } from './scale-through-layout.js';
import { inferDtype, staticInts, staticNumbers, staticScalar, staticShape } from '../../shape-inference/shapes.js';

export const DECOMPOSED_ATTENTION = 'decomposed-attention';
const ALLOW_SCORES_OUTPUT = false;

export interface DecomposedSite {
  readonly site: SiteMatch;
  /** The tagged alternatives the walk took (for notes and tests). */
  readonly variants: readonly string[];
}

let fresh = 0;
const freshName = (graph: Graph, base: string) => {
  const taken = new Set([...graph.definedValues()].map((x) => x.name));
  let name = `${base}__attnopt${fresh++}`;
  while (taken.has(name)) name = `${base}__attnopt${fresh++}`;
  return name;
};

/** A prelude node computing one new value. */
function preludeNode(graph: Graph, op: string, inputs: readonly Value[], base: string, attrs: Record<string, ReturnType<typeof intsAttr>> = {}): Node {
  return new Node({ domain: ONNX_DOMAIN, op, inputs, outputs: [new Value(freshName(graph, base))], attrs });
}

function constNode(graph: Graph, base: string, t: Tensor): Node {
  return new Node({ op: 'Constant', outputs: [new Value(freshName(graph, base))], attrs: { value: tensorAttr(t) } });
}

/** The scores-side value of a Where guard `Where(ReduceMax(bias) == -inf, 0, p)` (rows the bias masks fully give 0). */
function matchRowGuard(where: Node, p: Value, masks: readonly MaskStep[]): Node[] | undefined {
  if (where.inputs[2] !== p || staticScalar(where.inputs[1]) !== 0) return undefined;
  const eq = onnxOp(where.inputs[0], 'Equal');
  if (!eq) return undefined;
  for (const [r, c] of [[0, 1], [1, 0]] as const) {
    const rmax = onnxOp(eq.inputs[r], 'ReduceMax');
    if (!rmax || staticScalar(eq.inputs[c]) !== -Infinity) continue;
    const axesAttr = rmax.attrs.get('axes');
    const axes = axesAttr?.type === 'ints' ? axesAttr.value.map(Number) : [...(staticNumbers(rmax.inputs[1]) ?? [])];
    const rank = staticShape(rmax.inputs[0])?.length;
    if (axes.length !== 1 || !(axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1))) continue;
    const only = masks.length === 1 ? masks[0]! : undefined;
    if (only?.kind !== 'additive' || only.bias !== rmax.inputs[0]) continue;
    const casts = [onnxOp(eq.inputs[c], 'CastLike', 'Cast'), onnxOp(where.inputs[1], 'CastLike', 'Cast')];
    return [where, eq, rmax, ...casts.filter((n): n is Node => n !== undefined)];
  }
  return undefined;
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
  const isTest = n.attrs.get('is_test');
  if (isTest?.type === 'int' && Number(isTest.value) === 0) return `${n.describe()} runs in training mode (is_test = 0): its output is random, not an attention input`;
  return undefined;
}

export function matchDecomposedAttention(softmax: Node, graph: Graph): MatchResult<DecomposedSite> {
  const axisAttr = softmax.attrs.get('axis');
  const axis = axisAttr?.type === 'int' ? Number(axisAttr.value) : -1;
  const rankIn = staticShape(softmax.inputs[0])?.length;
  if (axis !== -1 && !(rankIn !== undefined && axis === rankIn - 1)) return noMatch(`Softmax axis ${axis} is not the last (key) axis`);

  const chain = matchScoreChain(softmax.inputs[0]!);
  if (!chain.ok) return chain;
  const c = chain.value;
  const nodes: Node[] = [softmax, ...c.nodes];
  const variants = [...c.variants];

  // forward: Softmax -> [Cast | Identity | Dropout(inference) | row guard]* -> MatMul(p, V)
  let p = softmax.outputs[0]!;
  const softmaxValues: Value[] = [p];
  let pv: Node | undefined;
  for (let steps = 0; steps < 8 && pv === undefined; steps++) {
    const uses = p.uses();
    const order = ['MatMul', 'Einsum', 'Where', 'Dropout', 'Cast', 'Identity', 'Reshape'];
    const next = uses
      .filter((u) => u.index === (u.node.op === 'Where' ? 2 : 0) && order.includes(u.node.op))
      .filter((u) => u.node.op !== 'Reshape' || headsViewReshape(u.node.outputs[0]!, { ...(c.foldedHeads !== undefined ? { heads: c.foldedHeads } : {}) }) !== undefined)
      .sort((a, b) => order.indexOf(a.node.op) - order.indexOf(b.node.op))[0];
    if (!next) return noMatch(`the Softmax output does not reach a MatMul with V (uses: ${uses.map((u) => u.node.op).join(', ') || 'none'})`);
    const n = next.node;
    if (n.op === 'MatMul' || n.op === 'Einsum') pv = n;
    else if (n.op === 'Dropout') {
      const why = dropoutIsNotIdentity(n);
      if (why !== undefined) return noMatch(why);
      variants.push('dropout');
    } else if (n.op === 'Reshape') {
      // the probabilities folded back from the [B, H, S, T] view to [B·H, S, T] for a bmm with V
      if (c.foldedHeads === undefined) return noMatch(`${n.describe()} reshapes the probabilities between head views the scores never crossed`);
      variants.push('probabilities-heads-view');
    } else if (n.op === 'Where') {
      const guard = matchRowGuard(n, p, c.masks);
      if (!guard) return noMatch(`${n.describe()} after the Softmax is not the fully-masked-row guard on the same bias`);
      nodes.push(...guard.slice(1));
      variants.push('row-guard');
    }
    nodes.push(n);
    if (!pv) {
      p = n.outputs[0]!;
      softmaxValues.push(p);
    }
  }
  if (!pv) return noMatch('the Softmax output does not reach a MatMul with V within 8 steps');
  // Einsum in any spelling: Q and K (and V, Y) permuted to [batch..., S, D] as the equations say
  const qkEinsum = c.qk.op === 'Einsum' ? scoresEinsum(c.qk) : undefined;
  if (qkEinsum && !qkEinsum.ok) return qkEinsum;
  const pvEinsum = pv.op === 'Einsum' ? outputEinsum(pv, qkEinsum?.value.batch !== undefined ? qkEinsum.value.batch + 2 : staticShape(c.qSide)?.length ?? 4) : undefined;
  if (pvEinsum && !pvEinsum.ok) return pvEinsum;
  const prelude: Node[] = [];
  const permuted = (x: Value, perm: readonly number[] | undefined, base: string): Value => {
    if (perm === undefined || isIdentity(perm)) return x;
    const t = preludeNode(graph, 'Transpose', [x], base, { perm: intsAttr(perm) });
    prelude.push(t);
    return t.outputs[0]!;
  };
  // a scale applied before the heads split (q_proj(x) · d^-0.5, then view + transpose) is pulled out of Q
  const pulled = pullScaleThroughLayout(graph, c.qSide, freshName);
  if (pulled) {
    prelude.push(...pulled.prelude);
    nodes.push(...pulled.matched);
    variants.push('scale-before-heads-split');
  }
  const scale = c.scale * (pulled?.factor ?? 1);
  const qSide = permuted(pulled?.value ?? c.qSide, qkEinsum?.value.qPerm, 'q_bhsd');
  if (qkEinsum && !isIdentity(qkEinsum.value.qPerm)) variants.push('einsum-permuted');
  const vIn = permuted(pv.inputs[1]!, pvEinsum?.value.vPerm, 'v_bhsd');
  const y = pv.outputs[0]!;

  // a float reshape target makes the graph invalid ONNX: nothing exact to lift
  for (const [what, x] of [['Q', c.qSide], ['Kᵀ', c.ktSide], ['V', vIn]] as const) {
    const bad = floatReshapeTarget(x);
    if (bad) return noMatch(`${what} comes from ${bad.reshape.describe()} whose target shape holds ${bad.dtype} values (${bad.part.name}): Reshape takes an int64 shape, so the model is not valid ONNX and has no exact meaning to lift`);
  }

  // Q, K, V in bhsd (4D) or bsd with one head (3D)
  const qShape = staticShape(qSide);
  if (!qShape) return noMatch('the rank of Q is not known');
  const rank = qShape.length;
  if (rank !== 4 && rank !== 3) return noMatch(`Q has rank ${rank}; expected 3 or 4`);
  const headDim = qShape[rank - 1];
  if (typeof headDim !== 'number') return noMatch('the head size of Q is not static');
  const numHeads = rank === 4 ? qShape[1] : 1;
  if (typeof numHeads !== 'number') return noMatch('the number of query heads is not static (dim 1 of Q)');

  // K from Kᵀ: Transpose(K) swapping the last two axes, Transpose(K in bshd / sbd), or a prelude transpose
  let k: Value;
  const kt = c.ktSide;
  const tr = onnxOp(kt, 'Transpose');
  const perm = tr?.attrs.get('perm');
  const permS = perm?.type === 'ints' ? perm.value.map(Number).join(',') : '';
  if (qkEinsum) k = permuted(kt, qkEinsum.value.kPerm, 'k_bhsd');
  else if (tr && (permS === '0,1,3,2' || permS === '0,2,1')) {
    k = tr.inputs[0]!;
    nodes.push(tr);
  } else if (tr && permS === '0,2,3,1') {
    const t = preludeNode(graph, 'Transpose', [tr.inputs[0]!], 'k_bhsd', { perm: intsAttr([0, 2, 1, 3]) });
    prelude.push(t);
    k = t.outputs[0]!;
    nodes.push(tr);
    variants.push('k-bshd');
  } else if (tr && permS === '1,2,0') {
    const t = preludeNode(graph, 'Transpose', [tr.inputs[0]!], 'k_bsd', { perm: intsAttr([1, 0, 2]) });
    prelude.push(t);
    k = t.outputs[0]!;
    nodes.push(tr);
    variants.push('k-sbd');
  } else {
    const t = preludeNode(graph, 'Transpose', [kt], 'k', { perm: intsAttr(rank === 4 ? [0, 1, 3, 2] : [0, 2, 1]) });
    prelude.push(t);
    k = t.outputs[0]!;
    variants.push('k-transposed-input');
  }

  // GQA: K and V repeated from kvNumHeads heads
  let v = vIn;
  let kvNumHeads = numHeads;
  if (rank === 4) {
    const kr = matchKvRepeat(k);
    const vr = matchKvRepeat(vIn);
    if (kr && vr && kr.kvNumHeads === vr.kvNumHeads) {
      k = kr.source;
      v = vr.source;
      kvNumHeads = kr.kvNumHeads;
      nodes.push(...kr.nodes, ...vr.nodes);
      variants.push('gqa-expand');
    } else if (kr || vr) return noMatch('only one of K and V is repeated over heads, or they repeat differently');
  }
  // multi-query: K and V with one head, broadcast over the query heads by the MatMuls
  if (rank === 4 && kvNumHeads === numHeads && numHeads > 1 && staticShape(k)?.[1] === 1 && staticShape(v)?.[1] === 1) {
    kvNumHeads = 1;
    variants.push('mqa-broadcast');
  }
  const kShape = staticShape(k);
  const vShape = staticShape(v);
  // (scores computed over [B·H, S, T] and multiplied with V in the [B, H, S, T] view: V is 4D, Q and K 3D)
  const pvRank = c.foldedHeads !== undefined && rank === 3 && staticShape(p)?.length === 4 ? 4 : rank;
  if (!vShape || vShape.length !== pvRank) return noMatch(`V does not have rank ${pvRank}`);
  if (pvRank !== rank && vShape[1] !== c.foldedHeads) return noMatch(`V has ${String(vShape[1])} heads where the scores have ${c.foldedHeads}`);
  const vDim = vShape[pvRank - 1];
  // a head size of V known only at run time (cross-attention to a tensor of fixed batch): 0, read from V
  if (typeof vDim !== 'number' && !(pvRank === 4 && rank === 4)) return noMatch('the head size of V is not static');
  const vHeadDim = typeof vDim === 'number' ? vDim : 0;
  if (vHeadDim === 0) variants.push('v-head-size-at-run-time');
  if (kShape && kShape.length === rank && typeof kShape[rank - 1] === 'number' && kShape[rank - 1] !== headDim) {
    return noMatch(`K head size ${String(kShape[rank - 1])} differs from Q head size ${headDim}`);
  }
  if (rank === 4) {
    const kvh = kShape?.[1];
    if (typeof kvh === 'number' && kvh !== kvNumHeads) return noMatch(`K has ${kvh} heads, expected ${kvNumHeads}`);
    if (typeof vShape[1] === 'number' && vShape[1] !== kvNumHeads) return noMatch(`V has ${vShape[1]} heads, expected ${kvNumHeads}`);
    if (numHeads % kvNumHeads !== 0) return noMatch(`${numHeads} query heads are not a multiple of ${kvNumHeads} key/value heads`);
  }

  // the bias: one additive mask as is; a keep-mask alone as a boolean; several combined in the prelude
  // (3D bmm chains: the true head count first, see below; the bias then stays over [B·H, S, T] until unfolded)
  // (Q, Kᵀ and V share the batch B·H, so the reshapes of any of them tell H; those in sight must agree)
  const kh = rank === 3 ? headsBehind(k, headDim) ?? headsBehind(kt, headDim) : undefined;
  const vh = pvRank === 3 ? headsBehind(v, vHeadDim) : undefined;
  const trueHeads = rank === 3 ? c.foldedHeads ?? headsBehind(qSide, headDim) ?? kh ?? vh : undefined;
  const h = trueHeads !== undefined && trueHeads > 1 && [kh, vh].every((x) => x === undefined || x === trueHeads) ? trueHeads : undefined;
  // scores seen in both views: every mask over the [B·H, S, T] view is unfolded to [B, H, S, T] first
  if (c.foldedHeads !== undefined && rank !== 3) return noMatch(`the scores switch between the [B·H, S, T] and [B, ${c.foldedHeads}, S, T] views but Q or the probabilities read by ${pv.describe()} are not [B·H, S, D]`);
  const masks = c.foldedHeads === undefined ? c.masks : c.masks.map((m) => (staticShape(m.over)?.length === 4 ? m : unfoldMask(graph, m, qSide, c.foldedHeads!, prelude)));
  const bias = assembleBias(graph, masks, rank, prelude, c.foldedHeads !== undefined ? 'unfolded' : h !== undefined ? 'heads-in-batch' : 'single-head');
  if (!bias.ok) return bias;

  // 3D bmm chains ([B·H, S, D], heads folded into the batch): the true head count H read from the reshapes
  // that fold them (or from the scores fold); Q, K, V and the bias unfolded to [B, H, S, D] in the prelude,
  // the output folded back in the postlude. Exact for any H dividing B·H: attention is independent per
  // batch·head row, so the grouping of rows into (batch, head) pairs changes no value.
  let heads4: { q: Value; k: Value; v: Value; bias?: Value; y: Value; postlude: Node[]; heads: number } | undefined;
  // (h: the head count read above)
  if (rank === 3) {
    if (h !== undefined) {
      const unfold = (x: Value, base: string) => unfoldHeads(graph, x, h, base, prelude);
      const b = bias.value;
      heads4 = {
        q: unfold(qSide, 'q_bhsd'),
        k: unfold(k, 'k_bhsd'),
        v: pvRank === 4 ? v : unfold(v, 'v_bhsd'),
        ...(b ? { bias: c.foldedHeads !== undefined ? b : biasOverHeads(graph, b, qSide, h, prelude) } : {}),
        y: new Value(freshName(graph, 'y_bhsd')),
        postlude: [],
        heads: h,
      };
      if (pvRank === 3) heads4.postlude.push(...foldHeads(graph, heads4.y, y));
      variants.push(c.foldedHeads !== undefined ? 'heads-from-scores-fold' : 'heads-from-reshapes');
    } else variants.push('bmm-heads-in-batch');
  }

  // an Einsum writing Y in another axis order than [batch..., S, Dv]: the postlude transposes it back
  let post = heads4 && heads4.postlude.length > 0 ? { y: heads4.y, nodes: heads4.postlude } : undefined;
  const yPerm = pvEinsum?.value.yPerm;
  if (yPerm !== undefined && !isIdentity(yPerm)) {
    if (post) return noMatch(`${pv.describe()} writes its output transposed and the heads are folded into the batch: both are not lifted together`);
    const y4 = new Value(freshName(graph, 'y_bhsd'));
    const back = new Node({ domain: ONNX_DOMAIN, op: 'Transpose', inputs: [y4], outputs: [new Value(y.name, y.type)], attrs: { perm: intsAttr(yPerm) } });
    post = { y: y4, nodes: [back] };
  }

  // softmax precision: the dtype the Softmax runs in, when it differs from Q's
  const qType = inferDtype(qSide);
  const smType = inferDtype(softmax.outputs[0]);
  const softmaxPrecision = qType !== undefined && smType !== undefined && qType !== smType ? smType : undefined;
  if (softmaxPrecision) variants.push('softmax-precision');

  // a chain value the model also returns becomes the scores output
  const inside = new Set(nodes);
  const escapes = (x: Value) => graph.outputs.includes(x) || x.uses().some((u) => !inside.has(u.node));
  const escaping = nodes.flatMap((n) => n.outputs).filter((x) => x !== y && escapes(x));
  let scores: { value: Value; mode: 'qk' | 'softcapped' | 'masked' | 'softmax' } | undefined;
  // (attentionNode refuses a scores output after omitted present K/V outputs, so for now the nodes that
  // compute an escaping value stay in the graph: exact, and the Attention node computes Y only)
  if (escaping.length === 1 && ALLOW_SCORES_OUTPUT) {
    const x = escaping[0]!;
    const stage = softmaxValues.includes(x) ? 'softmax' : c.stages.get(x);
    if (stage !== undefined) scores = { value: x, mode: stage };
  }

  // the lengths read from the dense scores' shape (GPT-2: nd, ns = w.size(-2), w.size(-1)) come from Q and K,
  // so the scores need not be computed once the site is lifted
  const shapeReads = scores === undefined && escaping.length > 0 ? scoreShapeReads(graph, escaping, inside, c.stages, qSide, k, rank) : undefined;
  if (shapeReads) {
    nodes.push(...shapeReads.shapes);
    prelude.push(...shapeReads.prelude);
    variants.push('lengths-from-scores');
  }

  const params: AttentionParams = {
    numHeads: heads4?.heads ?? numHeads,
    kvNumHeads: heads4?.heads ?? kvNumHeads,
    headDim,
    vHeadDim,
    scale,
    softcap: c.softcap,
    layout: rank === 4 || heads4 ? 'bhsd' : 'bsd',
    spec: dense,
    ...(scores ? { scoresMode: scores.mode } : {}),
    ...(softmaxPrecision ? { softmaxPrecision } : {}),
  };
  if (!Number.isFinite(params.scale)) return noMatch(`the scale ${params.scale} is not finite`);
  const site: SiteMatch = {
    params,
    inputs: heads4
      ? { q: heads4.q, k: heads4.k, v: heads4.v, ...(heads4.bias ? { bias: heads4.bias } : {}) }
      : { q: qSide, k, v, ...(bias.value ? { bias: bias.value } : {}) },
    output: y,
    ...(scores ? { scores: scores.value } : {}),
    matched: nodes,
    prelude,
    ...(post ? { postlude: post.nodes, attentionOutput: post.y } : {}),
    ...(shapeReads ? { preludeOutputs: shapeReads.replaced } : {}),
  };
  return matched({ site, variants });
}

/** Whether `n` reads only entries at or after `from` of the rank-`rank` shape vector it takes as input 0. */
function readsShapeTail(n: Node, rank: number, from: number): boolean {
  if (n.domain !== ONNX_DOMAIN) return false;
  const norm = (i: number) => (i < 0 ? i + rank : i);
  if (n.op === 'Gather') {
    const axis = n.attrs.get('axis');
    const idx = staticInts(n.inputs[1]);
    return (axis === undefined || (axis.type === 'int' && Number(axis.value) === 0)) && idx !== undefined && idx.every((i) => norm(i) >= from && norm(i) < rank);
  }
  if (n.op === 'Slice') {
    const attr = (name: string) => {
      const a = n.attrs.get(name);
      return a?.type === 'ints' ? a.value.map(Number) : undefined;
    };
    const starts = attr('starts') ?? staticInts(n.inputs[1]);
    const axes = attr('axes') ?? (n.inputs[3] !== undefined ? staticInts(n.inputs[3]) : [0]);
    const steps = n.inputs[4] !== undefined ? staticInts(n.inputs[4]) : [1];
    return starts?.length === 1 && axes?.length === 1 && (axes[0] === 0 || axes[0] === -1) && steps?.length === 1 && steps[0] === 1 && Math.min(rank, norm(starts[0]!)) >= from;
  }
  return false;
}

/**
 * Chain values read outside the site only by Shape nodes whose readers take only the last two entries (the query
 * and key lengths): each such Shape is replaced by [Q.shape[0 : r-1], K.shape[r-2]] computed in the prelude
 * (Shape, Gather, Concat: the same at every opset). The batch entries may differ from the scores' broadcast
 * batch; nothing reads them. Undefined unless every escaping value is read that way.
 */
function scoreShapeReads(
  graph: Graph,
  escaping: readonly Value[],
  inside: ReadonlySet<Node>,
  stages: ReadonlyMap<Value, string>,
  q: Value,
  k: Value,
  rank: number,
): { shapes: Node[]; prelude: Node[]; replaced: { replaced: Value; by: Value }[] } | undefined {
  const shapes: Node[] = [];
  for (const x of escaping) {
    // before any mask: a mask's broadcast could change the scores' shape
    const stage = stages.get(x);
    if ((stage !== 'qk' && stage !== 'softcapped') || graph.outputs.includes(x)) return undefined;
    for (const { node } of x.uses()) {
      if (inside.has(node)) continue;
      if (node.op !== 'Shape' || node.domain !== ONNX_DOMAIN || node.attrs.has('start') || node.attrs.has('end')) return undefined;
      const out = node.outputs[0]!;
      if (graph.outputs.includes(out) || !out.uses().every((u) => u.index === 0 && readsShapeTail(u.node, rank, rank - 2))) return undefined;
      shapes.push(node);
    }
  }
  if (shapes.length === 0) return undefined;
  const prelude: Node[] = [];
  const shapeOfQ = preludeNode(graph, 'Shape', [q], 'q_shape');
  const shapeOfK = preludeNode(graph, 'Shape', [k], 'k_shape');
  const lead = preludeNode(graph, 'Gather', [shapeOfQ.outputs[0]!, i64(graph, 'q_dims', Array.from({ length: rank - 1 }, (_, d) => d), prelude)], 'q_lengths', { axis: intAttr(0) as never });
  const keys = preludeNode(graph, 'Gather', [shapeOfK.outputs[0]!, i64(graph, 'k_dim', [rank - 2], prelude)], 'k_length', { axis: intAttr(0) as never });
  prelude.push(shapeOfQ, shapeOfK, lead, keys);
  const replaced = shapes.map((s) => {
    const cat = preludeNode(graph, 'Concat', [lead.outputs[0]!, keys.outputs[0]!], 'scores_shape', { axis: intAttr(0) as never });
    prelude.push(cat);
    return { replaced: s.outputs[0]!, by: cat.outputs[0]! };
  });
  return { shapes, prelude, replaced };
}

const FLOAT_TYPES = new Set(['f16', 'bf16', 'f32', 'f64']);

/** A Reshape within a few data-input steps above `v` whose target (or a Concat part of it) is a float tensor. */
function floatReshapeTarget(v: Value): { reshape: Node; part: Value; dtype: string } | undefined {
  let cur: Value | undefined = v;
  for (let steps = 0; steps < 8 && cur?.producer; steps++) {
    const n: Node = cur.producer;
    if (n.op === 'Reshape' && n.domain === ONNX_DOMAIN && n.inputs[1]) {
      const target = n.inputs[1];
      const cat = onnxOp(target, 'Concat');
      for (const part of cat ? cat.inputs : [target]) {
        const dtype = part && inferDtype(part);
        if (part && dtype && FLOAT_TYPES.has(dtype)) return { reshape: n, part, dtype };
      }
    }
    cur = n.inputs[0];
  }
  return undefined;
}

/**
 * Combines the mask steps into one Attention bias. Over 3D scores, `heads` says what the bias is over:
 * one head (it gets the heads axis here), [B·H, S, T] to unfold later, or the already unfolded [B, H, S, T].
 */
function assembleBias(graph: Graph, masks: readonly MaskStep[], rank: number, prelude: Node[], heads: 'single-head' | 'heads-in-batch' | 'unfolded'): MatchResult<Value | undefined> {
  if (masks.length === 0) return matched(undefined);
  const additive = masks.filter((m) => m.kind === 'additive').map((m) => m.bias);
  const keeps: Value[] = [];
  for (const m of masks) {
    if (m.kind !== 'masked-fill') continue;
    if (m.inverted) {
      const not = preludeNode(graph, 'Not', [m.cond], 'keep');
      prelude.push(not);
      keeps.push(not.outputs[0]!);
    } else keeps.push(m.cond);
  }
  let sum = additive[0];
  for (const b of additive.slice(1)) {
    const add = preludeNode(graph, 'Add', [sum!, b], 'bias');
    prelude.push(add);
    sum = add.outputs[0]!;
  }
  let keep = keeps[0];
  for (const b of keeps.slice(1)) {
    const and = preludeNode(graph, 'And', [keep!, b], 'keep');
    prelude.push(and);
    keep = and.outputs[0]!;
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
  // 3D scores are [batch·heads, nq, nk]: a rank-3 bias gets the (single) heads axis
  const bShape = staticShape(bias);
  if (rank === 3 && heads !== 'single-head') {
    if (!bShape && heads === 'heads-in-batch') return noMatch('the rank of the mask over 3D scores is not known');
  } else if (rank === 3 && bShape && bShape.length === 3) {
    bias = insertHeadsAxis(graph, bias, 'bias4d', prelude);
  } else if (rank === 3 && !bShape) return noMatch('the rank of the mask over 3D scores is not known');
  // a keep-mask the graph does not type: Cast(to = bool) with a declared type, so every consumer (lowering,
  // export) reads it as a keep-mask rather than an additive bias
  if (keep !== undefined && sum === undefined && !(bias.type?.kind === 'tensor' && bias.type.dtype === 'bool')) {
    const cast = new Node({ domain: ONNX_DOMAIN, op: 'Cast', inputs: [bias], outputs: [new Value(freshName(graph, 'keep_bool'), tensorType('bool'))], attrs: { to: intAttr(9) } });
    prelude.push(cast);
    bias = cast.outputs[0]!;
  }
  return matched(bias);
}

/**
 * The head count behind a 3D [B·H, S, D] (or Kᵀ [B·H, D, S]) value, read from the Reshape that folds the heads:
 * PyTorch 1.13's Transpose(Reshape([S, B, E] -> [S, B·H, D])) gives H = E / D, and Reshape([B, H, S, D] -> 3D)
 * gives H = dim 1. Undefined when no such Reshape is in sight.
 */
function headsBehind(v: Value, headDim: number): number | undefined {
  const tr = onnxOp(v, 'Transpose');
  const reshape = onnxOp(tr ? tr.inputs[0] : v, 'Reshape');
  if (!reshape) return undefined;
  const inS = staticShape(reshape.inputs[0]);
  const outS = staticShape(reshape.outputs[0]);
  if (!inS || outS?.length !== 3) return undefined;
  if (inS.length === 4 && typeof inS[1] === 'number' && inS[3] === headDim) return inS[1];
  const e = inS[2];
  if (inS.length !== 3 || outS[2] !== headDim) return undefined;
  if (typeof e === 'number') return e % headDim === 0 ? e / headDim : undefined;
  // a dynamic E: the target [S, B · H, D] as PyTorch computes it, Concat(.., Unsqueeze(Mul(B, H)), ..)
  const cat = onnxOp(reshape.inputs[1], 'Concat');
  const bh = cat && onnxOp(onnxOp(cat.inputs[1], 'Unsqueeze')?.inputs[0] ?? cat.inputs[1], 'Mul');
  const hs = bh ? [staticScalar(bh.inputs[1]), staticScalar(bh.inputs[0])].filter((x): x is number => x !== undefined) : [];
  return cat?.inputs.length === 3 && hs.length === 1 && Number.isInteger(hs[0]) && hs[0]! > 0 ? hs[0] : undefined;
}

/** A mask step over the [B·H, S, T] view of the scores, its operand unfolded to [B, H, S, T] (see biasOverHeads). */
function unfoldMask(graph: Graph, m: MaskStep, q3: Value, heads: number, prelude: Node[]): MaskStep {
  return m.kind === 'additive' ? { ...m, bias: biasOverHeads(graph, m.bias, q3, heads, prelude) } : { ...m, cond: biasOverHeads(graph, m.cond, q3, heads, prelude) };
}

const i64 = (graph: Graph, base: string, xs: readonly number[], prelude: Node[]): Value => {
  const c = constNode(graph, base, Tensor.fromValues('i64', [xs.length], xs.map(BigInt)));
  prelude.push(c);
  return c.outputs[0]!;
};

// The prelude runs at the model's own opset, where Unsqueeze takes its axes as an attribute (< 13) or an input
// (13+): new axes come from Expand (which prepends 1s) and Transpose instead, the same at every opset.

/** [B·H, S, D] -> [B, H, S, D]: Reshape(Expand(x, [1, 1, 1, 1]) = [1, B·H, S, D], [-1, H, 0, 0]). */
function unfoldHeads(graph: Graph, x: Value, heads: number, base: string, prelude: Node[]): Value {
  const e = preludeNode(graph, 'Expand', [x, i64(graph, 'ones', [1, 1, 1, 1], prelude)], base);
  const r = preludeNode(graph, 'Reshape', [e.outputs[0]!, i64(graph, 'shape', [-1, heads, 0, 0], prelude)], base);
  prelude.push(e, r);
  return r.outputs[0]!;
}

/** [a, S, T] -> [a, 1, S, T]: Transpose(Expand(x, [1, 1, 1, 1]) = [1, a, S, T], [1, 0, 2, 3]). */
function insertHeadsAxis(graph: Graph, x: Value, base: string, prelude: Node[]): Value {
  const e = preludeNode(graph, 'Expand', [x, i64(graph, 'ones', [1, 1, 1, 1], prelude)], base);
  const t = preludeNode(graph, 'Transpose', [e.outputs[0]!], base, { perm: intsAttr([1, 0, 2, 3]) });
  prelude.push(e, t);
  return t.outputs[0]!;
}

/**
 * A bias over 3D scores [b, S, T] (b = 1 or B·H) -> over [B, H, S, T]: rank <= 2 broadcasts as is, b = 1
 * gets a heads axis, otherwise Expand to [B·H, ., .] (read from Q) and unfold like Q.
 */
function biasOverHeads(graph: Graph, bias: Value, q3: Value, heads: number, prelude: Node[]): Value {
  const s = staticShape(bias);
  if (s && s.length <= 2) return bias;
  const sq = staticShape(q3);
  const s3 = s;
  if (s3?.[0] === 1) return insertHeadsAxis(graph, bias, 'bias_bhst', prelude);
  let full = bias;
  if (!(typeof s3?.[0] === 'number' && s3[0] === sq?.[0])) {
    const shape = preludeNode(graph, 'Shape', [q3], 'bh');
    const first = preludeNode(graph, 'Slice', [shape.outputs[0]!, i64(graph, 'starts', [0], prelude), i64(graph, 'ends', [1], prelude)], 'bh');
    const target = preludeNode(graph, 'Concat', [first.outputs[0]!, i64(graph, 'ones', [1, 1], prelude)], 'bh11', { axis: intAttr(0) as never });
    const ex = preludeNode(graph, 'Expand', [bias, target.outputs[0]!], 'bias_bh');
    prelude.push(shape, first, target, ex);
    full = ex.outputs[0]!;
  }
  return unfoldHeads(graph, full, heads, 'bias_bhst', prelude);
}

/**
 * Postlude [B, H, S, Dv] -> [B·H, S, Dv]: Gather(Reshape(y4, [-1, 1, 0, 0]), 0, axis 1) (a Squeeze of axis 1 at
 * any opset), the last output typed like y3.
 */
function foldHeads(graph: Graph, y4: Value, y3: Value): Node[] {
  const nodes: Node[] = [];
  const r = preludeNode(graph, 'Reshape', [y4, i64(graph, 'shape', [-1, 1, 0, 0], nodes)], 'y_bh1sd');
  const zero = constNode(graph, 'index', Tensor.fromValues('i64', [], [0n]));
  const sq = new Node({ domain: ONNX_DOMAIN, op: 'Gather', inputs: [r.outputs[0]!, zero.outputs[0]!], outputs: [new Value(y3.name, y3.type)], attrs: { axis: intAttr(1) as never } });
  nodes.push(r, zero, sq);
  return nodes;
}

export const decomposedAttention: RewriteRule<DecomposedSite> = {
  name: DECOMPOSED_ATTENTION,
  summary: 'Softmax(mask(softcap(s · Q·Kᵀ))) · V -> Attention(Q, K, V, bias=mask, scale=s, softcap)',
  roots: ['Softmax'],
  match: matchDecomposedAttention,
  rewrite(graph, _root, m) {
    // lengths read from the scores now come from the prelude, placed after readers that stood before the site
    const ordered = m.site.preludeOutputs !== undefined && topologicallyOrdered(graph);
    liftSite(graph, DECOMPOSED_ATTENTION, m.site);
    if (ordered && !topologicallyOrdered(graph)) sortTopologically(graph);
  },
};

