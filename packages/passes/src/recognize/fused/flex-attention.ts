// ai.onnx.preview FlexAttention -> attnopt::Attention through the operator's own definition: the node is
// written out as its body (flex-body.ts) and the decomposed rule lifts that, so the masks and biases a
// score_mod computes are read as any exporter's (a causal Where, a relative-position Add, a softcap's Tanh).
// The match builds the body in a scratch graph and asks the decomposed rule first: only a body it lifts whole
// is written into the model, and the lift is recorded as one of the FlexAttention node, so a site left dense
// gets the node back (unlift.ts).
//   FlexAttention(Q, K, V) {scale, score_mod, mask_mod, prob_mod}
//     -> Softmax(mask_mod(score_mod(scale · Q · repeat(K)ᵀ))) [prob_mod] · repeat(V) -> attnopt::Attention(Q, K, V, bias, ...)

import { DEFAULT_OPSET_ANNOTATION, dtypeFromOnnx, Graph, type Node, tensorType, Value } from '@attnopt/ir';
import { attrFloat, attrInt, liveOutputs, matched, noMatch, type RewriteRule, unknownAttrs } from '@attnopt/rewrite';
import { LIFT_RECORD, type LiftRecord, liftSite, SITE_ORIGIN, type SiteOrigin } from '../lift.js';
import { sortTopologically, topologicallyOrdered } from '../order.js';
import { matchDecomposedAttention } from '../decomposed/decomposed-attention.js';
import { inferDtype, inferShape, staticDim, staticShape } from '../../shape-inference/shapes.js';
import { flexBody, type FlexShape, modGraphsProblem } from './flex-body.js';

export const FLEX_DOMAIN = 'ai.onnx.preview';
const KNOWN = ['scale', 'score_mod', 'mask_mod', 'prob_mod', 'softmax_precision', 'enable_gqa', 'mask_value'];

export interface FlexMatch {
  readonly shape: FlexShape;
}

/** The body of `node` in a graph of its own (inputs Q, K, V typed as `node`'s), lifted by the decomposed rule? */
function scratchLift(node: Node, shape: FlexShape): string | undefined {
  const g = new Graph('flex_attention_body');
  const opset = node.graph?.annotations.get(DEFAULT_OPSET_ANNOTATION);
  if (opset !== undefined) g.annotations.set(DEFAULT_OPSET_ANNOTATION, opset);
  // typed as declared, else as the shape engine reads the node's inputs
  const typed = (x: Value) => x.type ?? (inferDtype(x) !== undefined && inferShape(x) !== undefined ? tensorType(inferDtype(x)!, inferShape(x)!) : undefined);
  const [q, k, v] = node.inputs.map((x, i) => g.addInput(new Value(['Q', 'K', 'V'][i]!, typed(x!))));
  const body = flexBody(g, node, q!, k!, v!, shape);
  body.nodes.forEach((n) => g.addNode(n));
  g.outputs.push(body.y);
  const r = matchDecomposedAttention(body.softmax, g);
  if (!r.ok) return r.reason || 'the decomposed rule does not read it';
  if (r.value.site.output !== body.y) return 'the decomposed rule lifts part of it only (the site it finds does not end at Y)';
  return undefined;
}

// FlexAttention(Q, K, V) {scale, score_mod, mask_mod, prob_mod} -> body -> attnopt::Attention (decomposed rule)
export const flexAttentionRule: RewriteRule<FlexMatch> = {
  name: 'onnx-flex-attention',
  summary: 'ai.onnx.preview::FlexAttention(Q, K, V) {score_mod, mask_mod, prob_mod} -> its body -> attnopt::Attention(Q, K, V, bias = what the modifiers add)',
  roots: [`${FLEX_DOMAIN}::FlexAttention`],
  match(node: Node, graph: Graph) {
    const extra = unknownAttrs(node, KNOWN);
    if (extra.length > 0) return noMatch(`attributes ${extra.join(', ')} (another draft of this preview op) are not read`);
    const [q, k, v] = node.inputs;
    if (!q || !k || !v || node.inputs.length > 3) return noMatch('FlexAttention takes exactly Q, K and V');
    if (liveOutputs(graph, node).slice(1).some((o) => o !== undefined)) return noMatch('outputs after Y are not lifted');
    const dtype = inferDtype(q);
    if (dtype === 'f16' || dtype === 'bf16') {
      return noMatch(`${dtype} inputs: FlexAttention multiplies its f32 probabilities by V cast to f32; attnopt::Attention multiplies in Q's type`);
    }
    if (dtype !== 'f32' && dtype !== 'f64') return noMatch(`Q is ${dtype ?? 'of unknown type'}: f32 and f64 are lifted`);
    const precision = attrInt(node, 'softmax_precision');
    if (precision !== undefined && dtypeFromOnnx(precision) !== dtype) return noMatch(`softmax_precision ${precision} differs from the inputs' type`);
    if ([q, k, v].some((x) => staticShape(x)?.length !== 4)) return noMatch('Q, K and V must be rank 4 with known ranks');
    const [numHeads, kvNumHeads, vHeads, headDim, vHeadDim] = [staticDim(q, 1), staticDim(k, 1), staticDim(v, 1), staticDim(q, 3), staticDim(v, 3)];
    if (numHeads === undefined || kvNumHeads === undefined || headDim === undefined || vHeadDim === undefined) return noMatch('head counts and head sizes must be static');
    if (vHeads !== kvNumHeads || numHeads % kvNumHeads !== 0) return noMatch(`${numHeads} query heads over ${kvNumHeads} key / ${vHeads ?? '?'} value heads`);
    if (attrInt(node, 'enable_gqa') === 0 && numHeads !== kvNumHeads) return noMatch(`enable_gqa is 0 but Q has ${numHeads} heads and K ${kvNumHeads}`);
    const why = modGraphsProblem(node);
    if (why !== undefined) return noMatch(why);
    const shape: FlexShape = { numHeads, kvNumHeads, headDim, vHeadDim, scale: attrFloat(node, 'scale') ?? 1 / Math.sqrt(headDim), maskValue: attrFloat(node, 'mask_value') ?? -Infinity };
    const lifted = scratchLift(node, shape);
    if (lifted !== undefined) return noMatch(`its body (the modifier graphs written out) is not lifted: ${lifted}`);
    return matched({ shape });
  },
  rewrite(graph, node, m) {
    const at = graph.nodes.indexOf(node);
    const anchor = at > 0 ? graph.nodes[at - 1]! : null;
    const inputs = [...node.inputs];
    const [q, k, v] = inputs;
    const y = node.outputs[0]!;
    const body = flexBody(graph, node, q!, k!, v!, m.shape);
    body.nodes.forEach((n, i) => graph.addNode(n, at + 1 + i));
    y.replaceAllUsesWith(body.y, graph);
    graph.removeNode(node);
    body.y.name = y.name;
    const r = matchDecomposedAttention(body.softmax, graph);
    if (!r.ok) throw new Error(`${node.describe()}: the body the match lifted is not lifted in the model: ${r.reason}`);
    const ordered = topologicallyOrdered(graph);
    const attention = liftSite(graph, 'onnx-flex-attention', r.value.site);
    if (ordered && !topologicallyOrdered(graph)) sortTopologically(graph);
    // one lift of the FlexAttention node: undoing it puts the node back, the body's remaining nodes go with the site
    const record = attention.annotations.get(LIFT_RECORD) as LiftRecord;
    attention.annotations.set(LIFT_RECORD, {
      matched: [{ node, inputs, anchor }],
      replaced: [y],
      fresh: [record.fresh[0]!],
      added: [...body.nodes.filter((n) => n.graph === graph), ...record.added],
      attentionInputs: record.attentionInputs,
    } satisfies LiftRecord);
    attention.annotations.set(SITE_ORIGIN, { rule: 'onnx-flex-attention', onnxNodes: [node.name || node.describe()] } satisfies SiteOrigin);
  },
};
