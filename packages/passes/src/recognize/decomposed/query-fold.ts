// Multi-query attention with the heads folded into the query axis, as GPT-BigCode writes it (StarCoder,
// SantaCoder): Q [B, S·H, D] against one K [B, T, D] and V [B, T, Dv], the scores [B, S·H, T] viewed as
// [B, S, H, T] for the mask, the output [B, S·H, Dv]. Row s·H + h of the fold is query s of head h, so the site
// lifts as H query heads over one key/value head:
//   Q [B, S·H, D]  -> Transpose(Reshape(Q, [0, -1, H, D]), [0, 2, 1, 3])        [B, H, S, D]
//   K, V [B, T, D] -> Reshape(K, [0, 1, -1, D])                                  [B, 1, T, D]
//   mask over [B, S, H, T] -> Transpose(mask, [0, 2, 1, 3]); over [B, S·H, T] unfolded as Q is
//   Y [B, H, S, Dv] -> Reshape(Transpose(Y, [0, 2, 1, 3]), [0, -1, Dv])          [B, S·H, Dv]
// Every row of the scores is a query of one head against the same keys, so the regrouping changes no value.

import { type Graph, intsAttr, Node, ONNX_DOMAIN, Value } from '@attnopt/ir';
import { attrInts, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { staticInts, staticShape, symbolicShape } from '../../shape-inference/shapes.js';
import type { MaskStep } from './chain.js';
import { onnxOp } from './onnx-op.js';
import { freshName, i64, insertHeadsAxis, preludeNode } from './prelude.js';

export interface QueryFoldInput {
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly y: Value;
  readonly masks: readonly MaskStep[];
  readonly heads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
}

export interface QueryUnfolded {
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  /** The masks over [B, H, S, T] (broadcastable). */
  readonly masks: MaskStep[];
  /** The Attention node's output [B, H, S, Dv], folded back into `y` by `postlude`. */
  readonly y: Value;
  readonly postlude: Node[];
}

export function unfoldQueryHeads(graph: Graph, x: QueryFoldInput, prelude: Node[]): MatchResult<QueryUnfolded> {
  const { q, k, v, heads, headDim, vHeadDim } = x;
  if (vHeadDim === 0) return noMatch('the head size of V is not static: the output of heads folded into the query axis cannot be folded back');
  const [qs, ks, vs] = [symbolicShape(q), symbolicShape(k), symbolicShape(v)];
  if (qs?.length !== 3 || ks?.length !== 3 || vs?.length !== 3) return noMatch(`the heads are folded into the query axis and Q, K or V is not 3D ([B, S·${heads}, D], [B, T, D])`);
  if (qs[0] !== ks[0] || ks[0] !== vs[0] || ks[1] !== vs[1]) return noMatch('the heads are folded into the query axis and Q, K and V do not provably share the batch (K and V the keys)');
  const split = preludeNode(graph, 'Reshape', [q, i64(graph, 'shape', [0, -1, heads, headDim], prelude)], 'q_bshd');
  const q4 = preludeNode(graph, 'Transpose', [split.outputs[0]!], 'q_bhsd', { perm: intsAttr([0, 2, 1, 3]) });
  const k4 = preludeNode(graph, 'Reshape', [k, i64(graph, 'shape', [0, 1, -1, headDim], prelude)], 'k_b1td');
  const v4 = preludeNode(graph, 'Reshape', [v, i64(graph, 'shape', [0, 1, -1, vHeadDim], prelude)], 'v_b1td');
  prelude.push(split, q4, k4, v4);

  const masks: MaskStep[] = [];
  for (const m of x.masks) {
    const operand = m.kind === 'additive' ? m.bias : m.cond;
    const over = staticShape(m.over)?.length === 4 ? overFourDView(graph, operand, prelude) : overFoldedView(graph, operand, qs[1]!, heads, prelude);
    if (typeof over === 'string') return noMatch(over);
    masks.push(m.kind === 'additive' ? { ...m, bias: over } : { ...m, cond: over });
  }

  const y4 = new Value(freshName(graph, 'y_bhsd'));
  const back = preludeNode(graph, 'Transpose', [y4], 'y_bshd', { perm: intsAttr([0, 2, 1, 3]) });
  const postlude: Node[] = [back];
  const shape = i64(graph, 'shape', [0, -1, vHeadDim], postlude);
  postlude.push(new Node({ domain: ONNX_DOMAIN, op: 'Reshape', inputs: [back.outputs[0]!, shape], outputs: [new Value(x.y.name, x.y.type)] }));
  return matched({ q: q4.outputs[0]!, k: k4.outputs[0]!, v: v4.outputs[0]!, masks, y: y4, postlude });
}

/** Leading axes of size 1 up to rank `rank` (Expand prepends them, the same at every opset). */
function toRank(graph: Graph, x: Value, from: number, rank: number, prelude: Node[]): Value {
  if (from >= rank) return x;
  const e = preludeNode(graph, 'Expand', [x, i64(graph, 'ones', Array<number>(rank).fill(1), prelude)], 'mask_rank');
  prelude.push(e);
  return e.outputs[0]!;
}

/**
 * A mask over the [B, S, H, T] view -> over [B, H, S, T]. One made for every head by inserting the heads axis
 * (GPT-BigCode's mask.unsqueeze(2) of [B, S, T]) is read from before that axis, which keeps the query and key
 * axes last for the mask analysis: [B, S, T] gets its heads axis in front of S, [S, T] broadcasts as it is.
 */
function overFourDView(graph: Graph, x: Value, prelude: Node[]): Value | string {
  const rank = staticShape(x)?.length;
  if (rank === undefined || rank > 4) return `the rank of the mask over the [B, S, H, T] view of the scores is not known (or above 4)`;
  const perHead = headsAxisInserted(x, rank);
  if (perHead !== undefined) return rank - 1 === 3 ? insertHeadsAxis(graph, perHead, 'mask_bhst', prelude) : perHead;
  const t = preludeNode(graph, 'Transpose', [toRank(graph, x, rank, 4, prelude)], 'mask_bhst', { perm: intsAttr([0, 2, 1, 3]) });
  prelude.push(t);
  return t.outputs[0]!;
}

/** The input of an Unsqueeze that made `x`'s heads axis (the second to last) alone, if `x` is one. */
function headsAxisInserted(x: Value, rank: number): Value | undefined {
  const n = onnxOp(x, 'Unsqueeze');
  const axes = n && (attrInts(n, 'axes') ?? staticInts(n.inputs[1]));
  return n && axes?.length === 1 && (axes[0] === rank - 2 || axes[0] === -2) ? n.inputs[0] : undefined;
}

/**
 * A mask over the folded [B, S·H, T] scores -> over [B, H, S, T]: one row broadcast to every query stays one
 * row (a heads axis inserted); a row per query and head is unfolded as Q is (the key axis moved out of the way:
 * Transpose [0, 2, 1], Reshape [0, 0, -1, H], Transpose [0, 3, 2, 1]).
 */
function overFoldedView(graph: Graph, x: Value, rows: unknown, heads: number, prelude: Node[]): Value | string {
  const s = symbolicShape(x);
  if (s === undefined || s.length > 3) return `the rank of the mask over the [B, S·${heads}, T] scores is not known (or above 3)`;
  const x3 = toRank(graph, x, s.length, 3, prelude);
  const queries = s.length >= 2 ? s[s.length - 2]! : undefined;
  if (queries === undefined || queries.constant === 1) return insertHeadsAxis(graph, x3, 'mask_bhst', prelude);
  if (queries !== rows) return `the mask over the [B, S·${heads}, T] scores has ${queries.key} rows, neither 1 nor the scores' S·${heads}`;
  const keysFirst = preludeNode(graph, 'Transpose', [x3], 'mask_bts', { perm: intsAttr([0, 2, 1]) });
  const split = preludeNode(graph, 'Reshape', [keysFirst.outputs[0]!, i64(graph, 'shape', [0, 0, -1, heads], prelude)], 'mask_btsh');
  const back = preludeNode(graph, 'Transpose', [split.outputs[0]!], 'mask_bhst', { perm: intsAttr([0, 3, 2, 1]) });
  prelude.push(keysFirst, split, back);
  return back.outputs[0]!;
}
