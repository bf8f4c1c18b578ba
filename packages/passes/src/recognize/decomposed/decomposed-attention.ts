// Decomposed attention as exporters write it, rooted at the Softmax (the op, the Div / Mul ending one spelled
// in Exp, ReduceSum and Div, or the Exp of a LogSoftmax: softmax-form.ts):
//   Softmax(mask(softcap(s · Q·Kᵀ))) [Cast, Dropout, fully-masked-row guard] · V
//     -> Attention(Q, K, V, bias = the mask, scale = s, softcap)
// Variants are tagged alternatives of one walk (chain.ts back to Q·Kᵀ, forward.ts on to V): scale by Div/Mul or
// split over Q and Kᵀ, additive masks, masked_fill Where(cond, scores, -inf | finfo.min | -10000), a 0 / 1 mask
// multiplied in (multiplied-mask.ts), a static scale per head (moved onto Q), masks over a view of the scores
// (Swin's shifted windows, SAM's decomposed relative positions: scores-view.ts), softcap Div/Tanh/Mul, Casts around an fp16/fp32
// softmax, the softmax over a reshaped view (softmax-form.ts), Dropout, the guards after the Softmax (forward.ts:
// fully masked rows, Where(IsNaN(p), 0, p), the mask's entries zeroed), GQA by Unsqueeze/Expand/Reshape, Einsum
// (tf2onnx/keras2onnx, an ellipsis included), onnxruntime's FusedMatMul (fused-matmul.ts). Q, K, V are the 4D values already in the graph (layout bhsd); 3D bmm chains (PyTorch
// MultiheadAttention with heads folded into the batch, onnxruntime's CLIP with the scores folded around a 4D
// mask) lift with the true head count H read from the folding reshapes: Q, K, V unfolded to [B, H, S, D] in the
// prelude, the output folded back to [B·H, S, D] in the postlude (variants `heads-from-reshapes`,
// `heads-from-scores-fold`). Multi-query chains with the heads folded into the query axis instead (GPT-BigCode: Q
// [B, S·H, D] against one K [B, T, D], the scores viewed [B, S, H, T] for the mask) lift as H query heads over one
// key/value head (query-fold.ts, variant `heads-in-query-axis`). A 3D chain with no such reshape in sight lifts
// as layout bsd with one head (variant `bmm-heads-in-batch`). The mask-computing nodes stay and feed the bias; the spec stays dense (a mask kept as
// bias is exact). A keep-mask without a declared type gets a Cast(to = bool) so consumers read it as a keep-mask.
// One known difference: a row whose keys are ALL masked gives NaN in the decomposed graph (softmax of -inf
// everywhere) but 0 in attnopt::Attention (its definition); every other row is exact.
//
// The rule reads top to bottom: the walk (the pattern), then the named checks of site-checks.ts (each says
// why it fails), then the prelude (prelude.ts) and the site. Prelude values are built as the checks pass.

import { type AttentionParams, defaultOpsetOf, dense, type Graph, intsAttr, Node, ONNX_DOMAIN, Value } from '@attnopt/ir';
import { type MatchResult, matched, noMatch, notThisPattern, type RewriteRule } from '@attnopt/rewrite';
import { inferDtype, inferRank, staticShape } from '../../shape-inference/shapes.js';
import { FILL_REPLACES_SCORES, liftSite, type SiteMatch } from '../lift.js';
import { sortTopologically, topologicallyOrdered } from '../order.js';
import { maskOverScores } from './scores-view.js';
import { type MaskStep, matchScoreChain } from './chain.js';
import { isIdentity, outputEinsum, type ScoresEinsum, scoresEinsum } from './einsum.js';
import { matchToValues } from './forward.js';
import { fusedMatMul, isFusedMatMul } from './fused-matmul.js';
import { matchKvHeads } from './kv-repeat.js';
import { assembleBias, biasOverHeads, foldHeads, freshName, keyFromTransposed, permuted, preludeNode, unfoldHeads, unfoldMask } from './prelude.js';
import { unfoldQueryHeads } from './query-fold.js';
import { pullScaleThroughLayout } from './scale-through-layout.js';
import { scoresShape, scoreShapeReads } from './score-shape-reads.js';
import { softmaxForm } from './softmax-form.js';
import { floatReshapeProblem, foldedHeadCount, queryDims, softmaxAxisProblem, valueDims } from './site-checks.js';

export const DECOMPOSED_ATTENTION = 'decomposed-attention';

/** FusedMatMul(Q, K, transB = 1) read as an Einsum of Q and K over [batch..., S | T, D] as they are (fused-matmul.ts). */
function fusedScores(qk: Node): MatchResult<ScoresEinsum> | undefined {
  const f = isFusedMatMul(qk) ? fusedMatMul(qk) : undefined;
  if (f === undefined || typeof f === 'string' || !f.transB) return undefined;
  const rank = inferRank(qk.inputs[0]);
  if (rank === undefined || rank < 3 || inferRank(qk.inputs[1]) !== rank) return noMatch(`${qk.describe()} reads Q and K of ranks that are not known to be the same (3 or more)`);
  const identity = Array.from({ length: rank }, (_, k) => k);
  return matched({ batch: rank - 2, swapped: false, qPerm: identity, kPerm: identity });
}

const ALLOW_SCORES_OUTPUT = false;

export interface DecomposedSite {
  readonly site: SiteMatch;
  /** The tagged alternatives the walk took (for notes and tests). */
  readonly variants: readonly string[];
}

/** Q, K, V, the bias and Y over [B, H, S, D] for a 3D chain whose heads are folded into the batch. */
interface UnfoldedHeads {
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly bias?: Value;
  readonly y: Value;
  readonly postlude: Node[];
  readonly heads: number;
  /** The key/value heads, when not `heads` (one, for heads folded into the query axis). */
  readonly kvHeads?: number;
}

export function matchDecomposedAttention(root: Node, graph: Graph): MatchResult<DecomposedSite> {
  // the softmax: the op, spelled in elementary ops ending at this Div / Mul, or Exp of a LogSoftmax
  const softmax = softmaxForm(root);
  if (!softmax) return notThisPattern();
  // the walk: back from the softmax to Q·Kᵀ, forward to the product with V
  const axisProblem = softmax.axisOp && softmaxAxisProblem(softmax.axisOp, defaultOpsetOf(graph));
  if (axisProblem !== undefined) return noMatch(axisProblem);
  const chain = matchScoreChain(softmax.input);
  if (!chain.ok) return chain;
  const c = chain.value;
  const toValues = matchToValues(softmax.output, c);
  if (!toValues.ok) return toValues;
  const { pv, p, softmaxValues } = toValues.value;
  const nodes: Node[] = [...softmax.nodes, ...c.nodes, ...toValues.value.nodes];
  const variants = [...(softmax.spelled ? ['softmax-spelled'] : []), ...c.variants, ...toValues.value.variants];

  // Einsum in any spelling: Q and K (and V, Y) permuted to [batch..., S, D] as the equations say
  const qkEinsum = c.qk.op === 'Einsum' ? scoresEinsum(c.qk) : fusedScores(c.qk);
  if (isFusedMatMul(c.qk)) variants.push('fused-matmul');
  if (qkEinsum && !qkEinsum.ok) return qkEinsum;
  // an Einsum that takes K first and Q second (its output still [batch..., query, key]): the operands swap roles
  const [qOperand, kOperand] = qkEinsum?.value.swapped ? [c.ktSide, c.qSide] : [c.qSide, c.ktSide];
  if (qkEinsum?.value.swapped) variants.push('einsum-key-first');
  const pvEinsum = pv.op === 'Einsum' ? outputEinsum(pv, qkEinsum?.value.batch !== undefined ? qkEinsum.value.batch + 2 : staticShape(qOperand)?.length ?? 4) : undefined;
  if (pvEinsum && !pvEinsum.ok) return pvEinsum;
  const prelude: Node[] = [];
  // a scale applied before the heads split (q_proj(x) · d^-0.5, then view + transpose) is pulled out of Q
  const pulled = pullScaleThroughLayout(graph, qOperand, freshName);
  if (pulled) {
    prelude.push(...pulled.prelude);
    nodes.push(...pulled.matched);
    variants.push('scale-before-heads-split');
  }
  const qScale = c.scale * (pulled?.factor ?? 1);
  const qSide = permuted(graph, pulled?.value ?? qOperand, qkEinsum?.value.qPerm, 'q_bhsd', prelude);
  if (qkEinsum && !isIdentity(qkEinsum.value.qPerm)) variants.push('einsum-permuted');
  const vIn = permuted(graph, pv.inputs[1]!, pvEinsum?.value.vPerm, 'v_bhsd', prelude);
  const y = pv.outputs[0]!;

  // the checks on Q, K, V
  const reshapeProblem = floatReshapeProblem(qOperand, kOperand, vIn);
  if (reshapeProblem !== undefined) return noMatch(reshapeProblem);
  const qDims = queryDims(qSide);
  if (!qDims.ok) return qDims;
  const { rank, headDim, numHeads } = qDims.value;
  const key = keyFromTransposed(graph, kOperand, rank, qkEinsum?.value.kPerm, prelude);
  nodes.push(...key.matched);
  if (key.variant) variants.push(key.variant);
  if (key.scaleNodes.length > 0) {
    nodes.push(...key.scaleNodes);
    variants.push('k-scaled-before-transpose');
  }
  const kv = rank === 4 ? matchKvHeads(key.k, vIn, numHeads, { graph, prelude }) : matched({ k: key.k, v: vIn, kvNumHeads: numHeads, nodes: [], variants: [] });
  if (!kv.ok) return kv;
  const { k, v, kvNumHeads } = kv.value;
  nodes.push(...kv.value.nodes);
  variants.push(...kv.value.variants);
  // (scores computed over [B·H, S, T] and multiplied with V in the [B, H, S, T] view: V is 4D, Q and K 3D)
  const pvRank = c.foldedHeads !== undefined && rank === 3 && staticShape(p)?.length === 4 ? 4 : rank;
  const vDims = valueDims({ k, v, q: qDims.value, kvNumHeads, pvRank, foldedHeads: c.foldedHeads });
  if (!vDims.ok) return vDims;
  const { vHeadDim } = vDims.value;
  if (vHeadDim === 0) variants.push('v-head-size-at-run-time');
  if (c.queryFoldedHeads !== undefined && (rank !== 3 || pvRank !== 3)) return noMatch(`the scores switch between the [B, S·H, T] and [B, S, ${c.queryFoldedHeads}, T] views but Q or the probabilities read by ${pv.describe()} are not 3D`);
  const h = rank === 3 && c.queryFoldedHeads === undefined ? foldedHeadCount(c.foldedHeads, qSide, k, kOperand, v, headDim, vHeadDim, pvRank) : undefined;
  if (c.foldedHeads !== undefined && rank !== 3) return noMatch(`the scores switch between the [B·H, S, T] and [B, ${c.foldedHeads}, S, T] views but Q or the probabilities read by ${pv.describe()} are not [B·H, S, D]`);

  // the bias: the masks combined (those over the [B·H, S, T] view of folded scores unfolded to [B, H, S, T] first)
  // (masks over a view of the scores brought to the scores first: scores-view.ts)
  const scoreMasks: MaskStep[] = [];
  let shapeOfScores: Value | undefined;
  const shapeFromQK = () => (shapeOfScores ??= scoresShape(graph, qSide, k, rank, prelude));
  for (const m of c.masks) {
    const r = m.view ? maskOverScores(graph, m, m.view, qSide, k, shapeFromQK, prelude) : matched(m);
    if (!r.ok) return r;
    scoreMasks.push(r.value);
  }
  // (heads folded into the query axis instead: Q, K, V, the masks and Y regrouped as H heads over one: query-fold.ts)
  const queryFold = c.queryFoldedHeads !== undefined ? unfoldQueryHeads(graph, { q: qSide, k, v, y, masks: scoreMasks, heads: c.queryFoldedHeads, headDim, vHeadDim }, prelude) : undefined;
  if (queryFold && !queryFold.ok) return queryFold;
  const unfoldedQuery = queryFold?.value;
  const masks = unfoldedQuery ? unfoldedQuery.masks : c.foldedHeads === undefined ? scoreMasks : scoreMasks.map((m) => (staticShape(m.over)?.length === 4 ? m : unfoldMask(graph, m, qSide, c.foldedHeads!, prelude)));
  // (probabilities zeroed where the mask filled: a row the mask fills whole is 0 in the model, as in the IR, so
  // the fills stay keep-masks)
  const fills = toValues.value.variants.includes('masked-zero') ? 'keep-masks' : 'as-written';
  // a finite fill that does not absorb the scores (-10000, -1e9, float16's -65504): rows filled whole differ from
  // the IR's keep-mask, which the mask analysis's patch of those rows must know (FILL_REPLACES_SCORES)
  if (fills === 'as-written' && masks.some((m) => m.kind === 'masked-fill' && Number.isFinite(m.fill) && m.fill > -1e30)) variants.push('fill-replaces-scores');
  const bias = unfoldedQuery
    ? assembleBias(graph, masks, 4, prelude, 'unfolded', unfoldedQuery.k, fills)
    : assembleBias(graph, masks, rank, prelude, c.foldedHeads !== undefined ? 'unfolded' : h !== undefined ? 'heads-in-batch' : 'single-head', k, fills);
  if (!bias.ok) return bias;

  // 3D bmm chains ([B·H, S, D], heads folded into the batch) with H known: Q, K, V and the bias unfolded to
  // [B, H, S, D] in the prelude, the output folded back in the postlude. Exact for any H dividing B·H:
  // attention is independent per batch·head row, so the grouping of rows into (batch, head) pairs changes no value.
  let heads4: UnfoldedHeads | undefined;
  if (unfoldedQuery) {
    const { q: q4, k: k4, v: v4, y: y4, postlude } = unfoldedQuery;
    heads4 = { q: q4, k: k4, v: v4, ...(bias.value ? { bias: bias.value } : {}), y: y4, postlude, heads: c.queryFoldedHeads!, kvHeads: 1 };
    variants.push('heads-in-query-axis');
  } else if (rank === 3) {
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
  const smType = inferDtype(softmax.output);
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

  // the lengths read from the dense scores' shape come from Q and K (score-shape-reads.ts)
  // (over the [B, S, H, T] view of query-folded scores the last two lengths are not Q's and K's: those stay)
  const viewedQueryFold = c.queryFoldedHeads !== undefined && escaping.some((x) => staticShape(x)?.length !== 3);
  const shapeReads = scores === undefined && escaping.length > 0 && !viewedQueryFold ? scoreShapeReads(graph, escaping, inside, c.stages, qSide, k, rank) : undefined;
  if (shapeReads) {
    nodes.push(...shapeReads.shapes);
    prelude.push(...shapeReads.prelude);
    variants.push('lengths-from-scores');
  }

  // a static scale per head on the scores (Swin V2's logit_scale) moves onto Q's heads: (s_h · Q)·Kᵀ
  let q = qSide;
  if (c.headScale) {
    if (rank !== 4) return noMatch(`${c.headScale.node.describe()} scales the scores per head, and Q is not [B, H, S, D]`);
    const scaled = preludeNode(graph, c.headScale.divide ? 'Div' : 'Mul', [qSide, c.headScale.scale], 'q_head_scaled');
    prelude.push(scaled);
    q = scaled.outputs[0]!;
    variants.push('scale-per-head');
    // (a scores output would hold the per-head scale or not, by stage: the chain that computes it stays)
    scores = undefined;
  }

  const params: AttentionParams = {
    numHeads: heads4?.heads ?? numHeads,
    kvNumHeads: heads4?.kvHeads ?? heads4?.heads ?? kvNumHeads,
    headDim,
    vHeadDim,
    scale: qScale * key.factor,
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
      : { q, k, v, ...(bias.value ? { bias: bias.value } : {}) },
    output: y,
    ...(scores ? { scores: scores.value } : {}),
    matched: nodes,
    prelude,
    ...(post ? { postlude: post.nodes, attentionOutput: post.y } : {}),
    ...(shapeReads ? { preludeOutputs: shapeReads.replaced } : {}),
  };
  return matched({ site, variants });
}

// Softmax(mask(softcap(s · Q·Kᵀ))) · V -> Attention(Q, K, V, bias=mask, scale=s, softcap)
export const decomposedAttention: RewriteRule<DecomposedSite> = {
  name: DECOMPOSED_ATTENTION,
  summary: 'Softmax(mask(softcap(s · Q·Kᵀ))) · V -> Attention(Q, K, V, bias=mask, scale=s, softcap)',
  roots: ['Softmax', 'Div', 'Mul', 'Exp'],
  match: matchDecomposedAttention,
  rewrite(graph, _root, m) {
    // lengths read from the scores now come from the prelude, placed after readers that stood before the site
    const ordered = m.site.preludeOutputs !== undefined && topologicallyOrdered(graph);
    const node = liftSite(graph, DECOMPOSED_ATTENTION, m.site);
    if (m.variants.includes('fill-replaces-scores')) node.annotations.set(FILL_REPLACES_SCORES, true);
    if (ordered && !topologicallyOrdered(graph)) sortTopologically(graph);
  },
};
