// The body of ONNX's FlexAttention (ai.onnx.preview), written out in plain ops the way its definition reads:
//   Scores = scale · Q · repeat(K)ᵀ;  Scores = score_mod(Scores);  Probs = Softmax(Scores, -1);
//   Probs = prob_mod(Probs);  Y = Probs · repeat(V)
// K and V are repeated over the query heads as repeat_kv writes it (Unsqueeze, Expand, Reshape) when the node
// has fewer key/value heads than query heads. score_mod and prob_mod are graphs of the whole [B, H, L, S]
// tensor (one input, one output): their nodes are copied in with fresh names, their initializers as Constants.

import { defaultOpsetOf, type Graph, intsAttr, Node, type Value } from '@attnopt/ir';
import { baseName, NodeBuilder } from '@attnopt/rewrite';

export interface FlexShape {
  readonly numHeads: number;
  readonly kvNumHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly scale: number;
}

export interface FlexBody {
  /** The body's nodes in order, not yet in any graph. */
  readonly nodes: readonly Node[];
  /** The Softmax node (the decomposed rule's root). */
  readonly softmax: Node;
  /** Y. */
  readonly y: Value;
}

/** The graph attribute `name` of `node`, or undefined. */
export function modGraph(node: Node, name: 'score_mod' | 'prob_mod'): Graph | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'graph' ? a.value : undefined;
}

/** Why a score_mod / prob_mod graph cannot be written into the body, or undefined. */
export function modGraphProblem(node: Node, name: 'score_mod' | 'prob_mod'): string | undefined {
  const a = node.attrs.get(name);
  if (a === undefined) return undefined;
  if (a.type !== 'graph') return `${name} is not a graph`;
  const g = a.value;
  if (g.inputs.length !== 1 || g.outputs.length !== 1) {
    return `${name} takes ${g.inputs.length} inputs and gives ${g.outputs.length} outputs: only a graph of the whole score tensor (one input, one output) is read (not the per-element form with indices)`;
  }
  if (g.nodes.some((n) => n.subgraphs().length > 0)) return `${name} holds nodes with subgraphs (If, Loop, Scan)`;
  return undefined;
}

/** `mod`'s nodes copied in after `input` (its input), each value renamed; returns its output. */
function inlineMod(b: NodeBuilder, mod: Graph, input: Value, what: string): Value {
  const map = new Map<Value, Value>([[mod.inputs[0]!, input]]);
  for (const init of mod.initializers) map.set(init, b.constant(`${what}_${init.name}`, init.initializer!));
  for (const n of mod.nodes) {
    const outs = n.outputs.map((o) => b.fresh(`${what}_${o.name}`));
    const inputs = n.inputs.map((x) => (x === undefined ? undefined : (map.get(x) ?? x)));
    b.nodes.push(new Node({ domain: n.domain, op: n.op, name: outs[0]?.name ?? '', inputs, outputs: outs, attrs: n.attrs }));
    n.outputs.forEach((o, k) => map.set(o, outs[k]!));
  }
  const out = mod.outputs[0]!;
  return map.get(out) ?? out;
}

/** The body of FlexAttention `node` over q, k, v (values of `graph`), with fresh names in `graph`. */
export function flexBody(graph: Graph, node: Node, q: Value, k: Value, v: Value, s: FlexShape): FlexBody {
  const b = new NodeBuilder(graph, baseName(node));
  const opset = defaultOpsetOf(graph) ?? defaultOpsetOf(node.graph) ?? 13;
  const group = s.numHeads / s.kvNumHeads;
  // [B, kvH, T, D] -> [B, kvH, group, T, D] -> [B, H, T, D]: query head h reads key/value head h / group
  const repeat = (x: Value, d: number, what: string): Value => {
    if (group === 1) return x;
    const unsq = opset >= 13
      ? b.op('Unsqueeze', [x, b.ints(`${what}_axis`, [2])], `${what}_unsqueezed`)
      : b.op('Unsqueeze', [x], `${what}_unsqueezed`, { axes: intsAttr([2]) });
    const expanded = b.op('Expand', [unsq, b.ints(`${what}_repeats`, [1, 1, group, 1, 1])], `${what}_expanded`);
    return b.reshape(expanded, [0, s.numHeads, -1, d], `${what}_repeated`);
  };
  const kt = b.transpose(repeat(k, s.headDim, 'k'), [0, 1, 3, 2], 'k_transposed');
  const dtype = q.type?.kind === 'tensor' ? q.type.dtype : 'f32';
  let scores = b.op('Mul', [b.op('MatMul', [q, kt], 'qk'), b.scalar('scale', dtype, s.scale)], 'scores');
  const scoreMod = modGraph(node, 'score_mod');
  if (scoreMod) scores = inlineMod(b, scoreMod, scores, 'score_mod');
  const probs = b.op('Softmax', [scores], 'probs', { axis: { type: 'int', value: -1n } });
  const softmax = b.nodes.at(-1)!;
  const probMod = modGraph(node, 'prob_mod');
  const modded = probMod ? inlineMod(b, probMod, probs, 'prob_mod') : probs;
  const y = b.op('MatMul', [modded, repeat(v, s.vHeadDim, 'v')], 'y');
  return { nodes: b.nodes, softmax, y };
}
