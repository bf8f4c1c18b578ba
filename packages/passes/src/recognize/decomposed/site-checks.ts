// The checks of the decomposed-attention rule, each named for what it asks and returning why it fails (a
// MatchResult or a reason) in words `--explain` shows. None mutates the graph.

import { type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';
import { attrInt, type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferDtype, staticScalar, staticShape } from '../../shape-inference/shapes.js';
import { onnxOp } from './chain.js';

/**
 * Why the Softmax does not normalize over the last (key) axis, or undefined. Without an axis attribute it is
 * -1 from opset 13 on and 1 before (the input flattened to 2D from that axis on): `opset` is the graph's
 * default-domain opset, when known (unknown: read as 13 on).
 */
export function softmaxAxisProblem(softmax: Node, opset: number | undefined): string | undefined {
  const written = attrInt(softmax, 'axis');
  const axis = written ?? (opset !== undefined && opset < 13 ? 1 : -1);
  const rankIn = staticShape(softmax.inputs[0])?.length;
  if (axis !== -1 && !(rankIn !== undefined && axis === rankIn - 1)) {
    if (written === undefined) return `${softmax.op} has no axis attribute, so at opset ${opset} it normalizes over axes 1 and on, flattened, not over the last (key) axis alone`;
    return `${softmax.op} axis ${axis} is not the last (key) axis`;
  }
  return undefined;
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

/** Why Q, Kᵀ or V is not valid ONNX (a Reshape to a float target shape: nothing exact to lift), or undefined. */
export function floatReshapeProblem(q: Value, kt: Value, v: Value): string | undefined {
  for (const [what, x] of [['Q', q], ['Kᵀ', kt], ['V', v]] as const) {
    const bad = floatReshapeTarget(x);
    if (bad) return `${what} comes from ${bad.reshape.describe()} whose target shape holds ${bad.dtype} values (${bad.part.name}): Reshape takes an int64 shape, so the model is not valid ONNX and has no exact meaning to lift`;
  }
  return undefined;
}

export interface QueryDims {
  /** 4: [B, H, S, D] (bhsd); 3: [B, S, D] with one head, or [B·H, S, D] with the heads in the batch. */
  readonly rank: 3 | 4;
  readonly headDim: number;
  readonly numHeads: number;
}

/** Q in bhsd (4D) or bsd (3D), with a static head size and head count. */
export function queryDims(q: Value): MatchResult<QueryDims> {
  const qShape = staticShape(q);
  if (!qShape) return noMatch('the rank of Q is not known');
  const rank = qShape.length;
  if (rank !== 4 && rank !== 3) return noMatch(`Q has rank ${rank}; expected 3 or 4`);
  const headDim = qShape[rank - 1];
  if (typeof headDim !== 'number') return noMatch('the head size of Q is not static');
  const numHeads = rank === 4 ? qShape[1] : 1;
  if (typeof numHeads !== 'number') return noMatch('the number of query heads is not static (dim 1 of Q)');
  return matched({ rank, headDim, numHeads });
}

export interface ValueDimsInput {
  readonly k: Value;
  readonly v: Value;
  readonly q: QueryDims;
  readonly kvNumHeads: number;
  /** The rank of the product with V: 4 when 3D scores are viewed as [B, H, S, T] for it. */
  readonly pvRank: number;
  /** H when the scores switch between the [B·H, S, T] and [B, H, S, T] views. */
  readonly foldedHeads: number | undefined;
}

/**
 * K and V agree with Q (head size, head counts, GQA grouping); gives V's head size (0: known only at run time,
 * for cross-attention to a tensor of fixed batch).
 */
export function valueDims({ k, v, q, kvNumHeads, pvRank, foldedHeads }: ValueDimsInput): MatchResult<{ vHeadDim: number }> {
  const { rank, headDim, numHeads } = q;
  const kShape = staticShape(k);
  const vShape = staticShape(v);
  if (!vShape || vShape.length !== pvRank) return noMatch(`V does not have rank ${pvRank}`);
  if (pvRank !== rank && vShape[1] !== foldedHeads) return noMatch(`V has ${String(vShape[1])} heads where the scores have ${foldedHeads}`);
  const vDim = vShape[pvRank - 1];
  if (typeof vDim !== 'number' && !(pvRank === 4 && rank === 4)) return noMatch('the head size of V is not static');
  const vHeadDim = typeof vDim === 'number' ? vDim : 0;
  if (kShape && kShape.length === rank && typeof kShape[rank - 1] === 'number' && kShape[rank - 1] !== headDim) {
    return noMatch(`K head size ${String(kShape[rank - 1])} differs from Q head size ${headDim}`);
  }
  if (rank === 4) {
    const kvh = kShape?.[1];
    if (typeof kvh === 'number' && kvh !== kvNumHeads) return noMatch(`K has ${kvh} heads, expected ${kvNumHeads}`);
    if (typeof vShape[1] === 'number' && vShape[1] !== kvNumHeads) return noMatch(`V has ${vShape[1]} heads, expected ${kvNumHeads}`);
    if (numHeads % kvNumHeads !== 0) return noMatch(`${numHeads} query heads are not a multiple of ${kvNumHeads} key/value heads`);
  }
  return matched({ vHeadDim });
}

/**
 * The head count behind a 3D [B·H, S, D] (or Kᵀ [B·H, D, S]) value, read from the Reshape that folds the heads:
 * PyTorch 1.13's Transpose(Reshape([S, B, E] -> [S, B·H, D])) gives H = E / D, and Reshape([B, H, S, D] -> 3D)
 * gives H = dim 1. Undefined when no such Reshape is in sight.
 */
export function headsBehind(v: Value, headDim: number): number | undefined {
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

/**
 * The true head count H of a 3D bmm chain ([B·H, S, D]): from the scores fold, else from the Reshapes that fold
 * Q, K or V (Q, Kᵀ and V share the batch B·H, so those in sight must agree). Undefined when H is 1 or unknown.
 */
export function foldedHeadCount(foldedHeads: number | undefined, q: Value, k: Value, kt: Value, v: Value, headDim: number, vHeadDim: number, pvRank: number): number | undefined {
  const kh = headsBehind(k, headDim) ?? headsBehind(kt, headDim);
  const vh = pvRank === 3 ? headsBehind(v, vHeadDim) : undefined;
  const trueHeads = foldedHeads ?? headsBehind(q, headDim) ?? kh ?? vh;
  return trueHeads !== undefined && trueHeads > 1 && [kh, vh].every((x) => x === undefined || x === trueHeads) ? trueHeads : undefined;
}
