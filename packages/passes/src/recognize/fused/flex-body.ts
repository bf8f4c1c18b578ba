// The body of ONNX's FlexAttention (ai.onnx.preview), written out in plain ops the way its definition reads:
//   Scores = scale · Q · repeat(K)ᵀ;  Scores = score_mod(Scores);  Scores = Where(mask_mod, Scores, mask_value);
//   Probs = Softmax(Scores, -1);  Probs = prob_mod(Probs);  Y = Probs · repeat(V)
// K and V are repeated over the query heads as repeat_kv writes it (Unsqueeze, Expand, Reshape) when the node
// has fewer key/value heads than query heads. The modifier graphs come in the two forms the op's drafts define:
// - a graph of the whole [B, H, L, S] tensor (one input): its nodes are copied in;
// - a graph of one element (score, batch, head, q_idx, k_idx; mask_mod without the score), which the draft's
//   body runs in a Loop over every element: copied in over the whole tensor with the indices as broadcast
//   ranges ([B, 1, 1, 1], [1, H, 1, 1], [1, 1, L, 1], [1, 1, 1, S]). For elementwise ops (and lookups in a
//   1-D table) that is the same value at every element; a graph with any other op is not written out.
// Their nodes get fresh names, their initializers become Constants.

import { defaultOpsetOf, type Graph, intsAttr, Node, type Value } from '@attnopt/ir';
import { baseName, NodeBuilder } from '@attnopt/rewrite';

export interface FlexShape {
  readonly numHeads: number;
  readonly kvNumHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly scale: number;
  /** What mask_mod's masked scores become (-inf unless the node says otherwise). */
  readonly maskValue: number;
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
export function modGraph(node: Node, name: ModName): Graph | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'graph' ? a.value : undefined;
}

export type ModName = 'score_mod' | 'mask_mod' | 'prob_mod';
const MODS: readonly ModName[] = ['score_mod', 'mask_mod', 'prob_mod'];

/** Ops whose value at an element depends on the inputs at that element alone (broadcasting included). */
const ELEMENTWISE = new Set([
  'Identity', 'Constant', 'Cast', 'CastLike', 'Where', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Neg', 'Abs', 'Exp', 'Log',
  'Sqrt', 'Reciprocal', 'Tanh', 'Sigmoid', 'Relu', 'Min', 'Max', 'Clip', 'Floor', 'Ceil', 'Round', 'Sign', 'Erf', 'Sin', 'Cos',
  'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Not', 'Xor', 'IsNaN', 'IsInf',
]);

/** A Gather along axis 0 of a constant 1-D table: per element, a lookup by a scalar index. */
function isTableLookup(n: Node, mod: Graph): boolean {
  const axis = n.attrs.get('axis');
  if (n.op !== 'Gather' || (axis?.type === 'int' && axis.value !== 0n)) return false;
  const table = n.inputs[0];
  const init = table && mod.initializers.includes(table) ? table.initializer : undefined;
  const constant = table?.producer?.op === 'Constant' ? table.producer.attrs.get('value') : undefined;
  const shape = init?.shape ?? (constant?.type === 'tensor' ? constant.value.shape : undefined);
  return shape?.length === 1;
}

/** Whether `name` is written per element (the Loop form: indices among its inputs). */
export function isPerElement(node: Node, name: ModName): boolean {
  const g = modGraph(node, name);
  return g !== undefined && g.inputs.length === (name === 'mask_mod' ? 4 : 5);
}

/** Why a modifier graph cannot be written into the body, or undefined. */
export function modGraphProblem(node: Node, name: ModName): string | undefined {
  const a = node.attrs.get(name);
  if (a === undefined) return undefined;
  if (a.type !== 'graph') return `${name} is not a graph`;
  const g = a.value;
  const whole = name !== 'mask_mod' && g.inputs.length === 1;
  if ((!whole && !isPerElement(node, name)) || g.outputs.length !== 1) {
    return `${name} takes ${g.inputs.length} inputs and gives ${g.outputs.length} outputs: neither the whole-tensor form (one input) nor the per-element one (${name === 'mask_mod' ? 'batch, head, q_idx, k_idx' : 'the element, batch, head, q_idx, k_idx'})`;
  }
  if (g.nodes.some((n) => n.subgraphs().length > 0)) return `${name} holds nodes with subgraphs (If, Loop, Scan)`;
  if (!whole) {
    const other = g.nodes.find((n) => n.domain !== '' || (!ELEMENTWISE.has(n.op) && !isTableLookup(n, g)));
    if (other) return `${name} is written per element and holds ${other.describe()}, which is neither elementwise nor a lookup in a 1-D table: it cannot be run over the whole tensor at once`;
  }
  return undefined;
}

/** The first problem of the node's modifier graphs, or undefined. */
export function modGraphsProblem(node: Node): string | undefined {
  for (const name of MODS) {
    const why = modGraphProblem(node, name);
    if (why !== undefined) return why;
  }
  return undefined;
}

/** `mod`'s nodes copied in, its inputs read as `inputs` (in order); returns its output. */
function inlineMod(b: NodeBuilder, mod: Graph, inputs: readonly Value[], what: string): Value {
  const map = new Map<Value, Value>(mod.inputs.map((v, k) => [v, inputs[k]!]));
  for (const init of mod.initializers) map.set(init, b.constant(`${what}_${init.name}`, init.initializer!));
  for (const n of mod.nodes) {
    const outs = n.outputs.map((o) => b.fresh(`${what}_${o.name}`));
    const ins = n.inputs.map((x) => (x === undefined ? undefined : (map.get(x) ?? x)));
    b.nodes.push(new Node({ domain: n.domain, op: n.op, name: outs[0]?.name ?? '', inputs: ins, outputs: outs, attrs: n.attrs }));
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
  // batch, head, query and key indices as ranges broadcast over the scores (for the per-element form)
  let indices: Value[] | undefined;
  const index = (): Value[] =>
    (indices ??= [0, 1, 2, 3].map((axis) => {
      const range = b.op('Range', [b.scalar(`index${axis}_start`, 'i64', 0), b.dim(scores, axis, `index${axis}_count`), b.scalar(`index${axis}_step`, 'i64', 1)], `index${axis}_range`);
      return b.reshape(range, [0, 1, 2, 3].map((a) => (a === axis ? -1 : 1)), ['batch_index', 'head_index', 'query_index', 'key_index'][axis]!);
    }));
  const apply = (name: ModName, x: Value | undefined): Value => {
    const mod = modGraph(node, name)!;
    const args = isPerElement(node, name) ? [...(x ? [x] : []), ...index()] : [x!];
    return inlineMod(b, mod, args, name);
  };
  if (modGraph(node, 'score_mod')) scores = apply('score_mod', scores);
  if (modGraph(node, 'mask_mod')) scores = b.op('Where', [apply('mask_mod', undefined), scores, b.scalar('mask_value', dtype, s.maskValue)], 'scores_masked');
  const probs = b.op('Softmax', [scores], 'probs', { axis: { type: 'int', value: -1n } });
  const softmax = b.nodes.at(-1)!;
  const modded = modGraph(node, 'prob_mod') ? apply('prob_mod', probs) : probs;
  const y = b.op('MatMul', [modded, repeat(v, s.vHeadDim, 'v')], 'y');
  return { nodes: b.nodes, softmax, y };
}
