// referenceAttention: float64 semantics of the Attention op for every spec, following ONNX `Attention`
// (opset 23/24), generalized by the spec. Slow and plain on purpose: the oracle for every other test.
//
// Per batch b, query head h (key/value head kvHeadOf(h): consecutive query heads share one), query i, key j
// over the present keys (past keys, then this call's keys):
//   qk_ij     = scale * q_i . k_j
//   capped_ij = softcap > 0 ? softcap * tanh(qk_ij / softcap) : qk_ij   (before the bias: -inf stays -inf)
//   masked_ij = capped_ij + bias_bhij, or -inf when j >= kvLength[b] or the spec does not keep (i, j)
//   p_i       = softmaxRow(masked_i)  (a fully masked row gives p_i = 0, so y_i = 0, never NaN)
//   y_i       = sum over keys j with masked_ij > -inf of p_ij v_j  (masked keys' values are never read)
// The spec is asked with MaskDims { nq, nk: present keys, past }: past = past length when pastKey is given,
// else kvLength[b] - nq when kvLength is given (ONNX external cache), else 0.

import {
  type AttentionParams,
  isLowRank,
  kvHeadOf,
  type LeafResolver,
  type LowRankSpec,
  type MaskDims,
  type MaskSpec,
  type ScoresMode,
  rowKeys,
  validateAttentionParams,
} from '@attnopt/ir';
import { type BiasLookup, biasLookup } from './bias.js';
import { headsView, outputFromBhsd, withHeadDims } from './layout.js';
import { type Matrix, matrix } from './linalg.js';
import { linformerAttention } from './low-rank/linformer.js';
import { nystromAttention } from './low-rank/nystrom.js';
import { performerAttention } from './low-rank/performer.js';
import { dataLeafResolver } from './resolvers/index.js';
import { softmaxRow } from './softmax.js';
import type { BoolTensor, Tensor64 } from './tensor.js';

export interface ReferenceInputs {
  /** Q in params.layout (packed-qkv: Q, K and V packed together). */
  readonly q: Tensor64;
  readonly k?: Tensor64;
  readonly v?: Tensor64;
  /** Additive float bias or boolean keep-mask, rank 1..4, broadcast to [batch, numHeads, nq, nk]. */
  readonly bias?: Tensor64 | BoolTensor;
  /** [batch, kvNumHeads, past, headDim], whatever the layout. */
  readonly pastKey?: Tensor64;
  /** [batch, kvNumHeads, past, vHeadDim], whatever the layout. */
  readonly pastValue?: Tensor64;
  /** Per batch: keys j >= kvLength[b] are padding (ONNX nonpad_kv_seqlen). */
  readonly kvLength?: ArrayLike<number>;
}

export interface ReferenceOutputs {
  /** Y in the layout of Q (packed-qkv: bsd). */
  readonly y: Tensor64;
  /** [batch, kvNumHeads, past + nk, headDim]: past keys then this call's keys (bhsd whatever the layout). */
  readonly presentKey: Tensor64;
  /** [batch, kvNumHeads, past + nk, vHeadDim]. */
  readonly presentValue: Tensor64;
  /** [batch, numHeads, nq, past + nk] when params.scoresMode is set: see ScoresMode semantics below. */
  readonly scores?: Tensor64;
}

export interface ReferenceOptions {
  /**
   * Resolves data-dependent leaves for (batch b, query head h); default: dataLeafResolver on that head's Q
   * and its key/value head's present K.
   */
  readonly resolver?: (b: number, h: number) => LeafResolver;
}

/**
 * What `scores` holds for each ScoresMode (the pipeline stage of the row before the softmax):
 * - qk: scale * Q Kᵀ;
 * - softcapped: softcap applied (equal to qk when softcap = 0);
 * - masked: softcapped + bias, with -inf where kvLength or the spec masks (the softmax input);
 * - softmax: the probabilities (0 on fully masked rows).
 */
export function scoresAt(mode: ScoresMode, qk: number, capped: number, masked: number, p: number): number {
  switch (mode) {
    case 'qk':
      return qk;
    case 'softcapped':
      return capped;
    case 'masked':
      return masked;
    case 'softmax':
      return p;
  }
}

function concatSeq(name: string, past: Tensor64 | undefined, now: Tensor64, heads: number, dim: number): Tensor64 {
  if (past === undefined) return now;
  const [b, , s] = now.shape as [number, number, number, number];
  if (past.shape.length !== 4 || past.shape[0] !== b || past.shape[1] !== heads || past.shape[3] !== dim) {
    throw new Error(`${name} must have shape [${b}, ${heads}, past, ${dim}], got [${past.shape.join(', ')}]`);
  }
  const p = past.shape[2]!;
  const out = new Float64Array(b * heads * (p + s) * dim);
  for (let bh = 0; bh < b * heads; bh++) {
    out.set(past.data.subarray(bh * p * dim, (bh + 1) * p * dim), bh * (p + s) * dim);
    out.set(now.data.subarray(bh * s * dim, (bh + 1) * s * dim), bh * (p + s) * dim + p * dim);
  }
  return { shape: [b, heads, p + s, dim], data: out };
}

/** Rows [row0, row0 + n) of a bhsd tensor's (b, h) slice as an n x dim matrix (a view, not a copy). */
function headSlice(t: Tensor64, b: number, h: number): Matrix {
  const [, H, s, d] = t.shape as [number, number, number, number];
  const off = (b * H + h) * s * d;
  return matrix(s, d, t.data.subarray(off, off + s * d));
}

function lowRankHead(spec: LowRankSpec, q: Matrix, k: Matrix, v: Matrix, scale: number): Matrix {
  switch (spec.kind) {
    case 'nystrom':
      return nystromAttention(q, k, v, scale, spec.landmarks);
    case 'linformer':
      return linformerAttention(q, k, v, scale, spec.rank, spec.seed);
    case 'performer':
      if (!(scale >= 0)) throw new Error(`performer needs scale >= 0 (features of sqrt(scale) * x), got ${scale}`);
      return performerAttention(q, k, v, scale, spec.features, spec.seed, spec.orthogonal);
  }
}

/** float64 attention for every spec, ONNX `Attention` semantics (see the comment at the top of this file). */
export function referenceAttention(
  params: AttentionParams,
  inputs: ReferenceInputs,
  options: ReferenceOptions = {},
): ReferenceOutputs {
  // head sizes left to run time (headDim / vHeadDim 0, bhsd) are read from Q and V
  const p = withHeadDims(validateAttentionParams(params), inputs.q, inputs.v, inputs.pastValue);
  const view = headsView(p, inputs.q, inputs.k, inputs.v);
  const { batch, nq } = view;
  if ((inputs.pastKey === undefined) !== (inputs.pastValue === undefined)) {
    throw new Error('pastKey and pastValue must be given together');
  }
  const presentK = concatSeq('pastKey', inputs.pastKey, view.k, p.kvNumHeads, p.headDim);
  const presentV = concatSeq('pastValue', inputs.pastValue, view.v, p.kvNumHeads, p.vHeadDim);
  if (presentK.shape[2] !== presentV.shape[2]) throw new Error('past key and past value lengths differ');
  const nk = presentK.shape[2]!;
  const past = inputs.pastKey?.shape[2] ?? 0;
  const kvLength = inputs.kvLength;
  if (kvLength !== undefined) {
    if (kvLength.length !== batch) throw new Error(`kvLength needs ${batch} entries (one per batch), got ${kvLength.length}`);
    for (let b = 0; b < batch; b++) {
      const L = kvLength[b]!;
      if (!Number.isSafeInteger(L) || L < 0 || L > nk) throw new Error(`kvLength[${b}] = ${L} must be an integer in [0, ${nk}]`);
    }
  }
  const bias: BiasLookup | undefined =
    inputs.bias === undefined ? undefined : biasLookup(inputs.bias, [batch, p.numHeads, nq, nk]);
  const H = p.numHeads;
  const dv = p.vHeadDim;
  const y = new Float64Array(batch * H * nq * dv);
  const scores = p.scoresMode === undefined ? undefined : new Float64Array(batch * H * nq * nk);

  if (isLowRank(p.spec)) {
    if (bias !== undefined || kvLength !== undefined || p.softcap !== 0 || scores !== undefined) {
      throw new Error(
        `low-rank spec ${p.spec.kind} is defined for plain softmax(scale Q Kᵀ) V only: no bias, kvLength, softcap or scores output`,
      );
    }
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < H; h++) {
        const g = kvHeadOf(p, h);
        const out = lowRankHead(p.spec, headSlice(view.q, b, h), headSlice(presentK, b, g), headSlice(presentV, b, g), p.scale);
        y.set(out.data, (b * H + h) * nq * dv);
      }
    }
  } else {
    const spec: MaskSpec = p.spec;
    const d = p.headDim;
    for (let b = 0; b < batch; b++) {
      const dims: MaskDims = {
        nq,
        nk,
        past: inputs.pastKey !== undefined ? past : kvLength !== undefined ? kvLength[b]! - nq : 0,
      };
      const valid = kvLength === undefined ? nk : kvLength[b]!;
      for (let h = 0; h < H; h++) {
        const g = kvHeadOf(p, h);
        const q = headSlice(view.q, b, h);
        const k = headSlice(presentK, b, g);
        const v = headSlice(presentV, b, g);
        const resolve = options.resolver?.(b, h) ?? dataLeafResolver({ q: q.data, k: k.data, nq, nk, d, scale: p.scale });
        const qk = new Float64Array(nk);
        const capped = new Float64Array(nk);
        const masked = new Float64Array(nk);
        for (let i = 0; i < nq; i++) {
          const keep = new Uint8Array(nk);
          const set = rowKeys(spec, i, dims, resolve);
          for (let r = 0; r < set.length; r += 2) keep.fill(1, set[r]!, set[r + 1]!);
          for (let j = 0; j < nk; j++) {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += q.data[i * d + c]! * k.data[j * d + c]!;
            qk[j] = p.scale * dot;
            capped[j] = p.softcap > 0 ? p.softcap * Math.tanh(qk[j]! / p.softcap) : qk[j]!;
            masked[j] = keep[j] && j < valid ? capped[j]! + (bias ? bias(b, h, i, j) : 0) : -Infinity;
          }
          const prob = softmaxRow(masked);
          const row = ((b * H + h) * nq + i) * dv;
          for (let j = 0; j < nk; j++) {
            if (masked[j] === -Infinity) continue; // never read a masked key's value (0 * Inf would poison the row)
            for (let c = 0; c < dv; c++) y[row + c]! += prob[j]! * v.data[j * dv + c]!;
          }
          if (scores !== undefined) {
            const srow = ((b * H + h) * nq + i) * nk;
            for (let j = 0; j < nk; j++) scores[srow + j] = scoresAt(p.scoresMode!, qk[j]!, capped[j]!, masked[j]!, prob[j]!);
          }
        }
      }
    }
  }

  return {
    y: outputFromBhsd({ shape: [batch, H, nq, dv], data: y }, p.layout),
    presentKey: presentK,
    presentValue: presentV,
    ...(scores !== undefined ? { scores: { shape: [batch, H, nq, nk], data: scores } } : {}),
  };
}
