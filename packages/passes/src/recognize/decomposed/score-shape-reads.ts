// The lengths a model reads from the dense scores' shape (GPT-2: nd, ns = w.size(-2), w.size(-1)) come from Q
// and K instead, so the scores need not be computed once the site is lifted:
//   Gather(Shape(scores), [-2 | -1]) -> Gather(Concat(Shape(Q)[0 : r-1], Shape(K)[r-2]), [-2 | -1])

import { type Graph, intAttr, type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';
import { attrInt, attrInts } from '@attnopt/rewrite';
import { staticInts } from '../../shape-inference/shapes.js';
import { i64, preludeNode } from './prelude.js';

/** Whether `n` reads only entries at or after `from` of the rank-`rank` shape vector it takes as input 0. */
function readsShapeTail(n: Node, rank: number, from: number): boolean {
  if (n.domain !== ONNX_DOMAIN) return false;
  const norm = (i: number) => (i < 0 ? i + rank : i);
  if (n.op === 'Gather') {
    const idx = staticInts(n.inputs[1]);
    return (!n.attrs.has('axis') || attrInt(n, 'axis') === 0) && idx !== undefined && idx.every((i) => norm(i) >= from && norm(i) < rank);
  }
  if (n.op === 'Slice') {
    const starts = attrInts(n, 'starts') ?? staticInts(n.inputs[1]);
    const axes = attrInts(n, 'axes') ?? (n.inputs[3] !== undefined ? staticInts(n.inputs[3]) : [0]);
    const steps = n.inputs[4] !== undefined ? staticInts(n.inputs[4]) : [1];
    return starts?.length === 1 && axes?.length === 1 && (axes[0] === 0 || axes[0] === -1) && steps?.length === 1 && steps[0] === 1 && Math.min(rank, norm(starts[0]!)) >= from;
  }
  return false;
}

export interface ScoreShapeReads {
  /** The Shape nodes of the scores, now part of the site. */
  readonly shapes: Node[];
  readonly prelude: Node[];
  /** Each Shape's output and the prelude value that replaces it. */
  readonly replaced: { replaced: Value; by: Value }[];
}

/**
 * Chain values read outside the site only by Shape nodes whose readers take only the last two entries (the query
 * and key lengths): each such Shape is replaced by [Q.shape[0 : r-1], K.shape[r-2]] computed in the prelude
 * (Shape, Gather, Concat: the same at every opset). The batch entries may differ from the scores' broadcast
 * batch; nothing reads them. Undefined unless every escaping value is read that way.
 */
export function scoreShapeReads(
  graph: Graph,
  escaping: readonly Value[],
  inside: ReadonlySet<Node>,
  stages: ReadonlyMap<Value, string>,
  q: Value,
  k: Value,
  rank: number,
): ScoreShapeReads | undefined {
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
  const [lead, keys] = scoresShapeParts(graph, q, k, rank, prelude);
  const replaced = shapes.map((s) => ({ replaced: s.outputs[0]!, by: concatShape(graph, lead, keys, prelude) }));
  return { shapes, prelude, replaced };
}

/** Q's leading lengths and K's key length ([Q.shape[0 : r-1]], [K.shape[r-2]]: Shape, Gather), in `prelude`. */
function scoresShapeParts(graph: Graph, q: Value, k: Value, rank: number, prelude: Node[]): [Value, Value] {
  const shapeOfQ = preludeNode(graph, 'Shape', [q], 'q_shape');
  const shapeOfK = preludeNode(graph, 'Shape', [k], 'k_shape');
  const lead = preludeNode(graph, 'Gather', [shapeOfQ.outputs[0]!, i64(graph, 'q_dims', Array.from({ length: rank - 1 }, (_, d) => d), prelude)], 'q_lengths', { axis: intAttr(0) as never });
  const keys = preludeNode(graph, 'Gather', [shapeOfK.outputs[0]!, i64(graph, 'k_dim', [rank - 2], prelude)], 'k_length', { axis: intAttr(0) as never });
  prelude.push(shapeOfQ, shapeOfK, lead, keys);
  return [lead.outputs[0]!, keys.outputs[0]!];
}

function concatShape(graph: Graph, lead: Value, keys: Value, prelude: Node[]): Value {
  const cat = preludeNode(graph, 'Concat', [lead, keys], 'scores_shape', { axis: intAttr(0) as never });
  prelude.push(cat);
  return cat.outputs[0]!;
}

/** The dense scores' shape from Q and K, [Q.shape[0 : r-1], K.shape[r-2]] (Shape, Gather, Concat: the same at every opset), in `prelude`. */
export function scoresShape(graph: Graph, q: Value, k: Value, rank: number, prelude: Node[]): Value {
  const [lead, keys] = scoresShapeParts(graph, q, k, rank, prelude);
  return concatShape(graph, lead, keys, prelude);
}
