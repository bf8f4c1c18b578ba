// A rough estimate of the memory a run of the model takes at a sequence length (calibration and verify run
// the model as written in onnxruntime, where an exported attention materializes its nq x nk scores), so a
// command can refuse a length that cannot fit before it starts:
//
//   estimate(n) = 2 x the model's weights        (the imported model, and the runtime's copy)
//               + max over sites of SCORE_BYTES_PER_PAIR x heads x n^2 + the site's Q, K, V and output
//               + CALIBRATION_SAMPLES x sum over sites of Q, K and V (calibration keeps them per site and sample)
//
// in float32, closed form (no loop over n: a length of 1e9 is judged at once). SCORE_BYTES_PER_PAIR is
// measured, not derived: the unfused chain (QKᵀ, scale, mask, softmax) keeps several n x n tensors per head
// alive, for each batch row of the generated inputs. Other activations (MLPs, embeddings) come on top.

import { type AttentionParams, attentionParams, type Graph } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import { attentionSites } from '@attnopt/passes';
import { statSync } from 'node:fs';
import type { AttnoptModel } from './model.js';
import { modelFiles } from './model-files.js';
import { recognize } from './recognize.js';

/**
 * Bytes per (query, key) pair and head a run keeps alive at its peak. Measured: `attnopt optimize
 * mha_self_causal_op17_dyn.onnx` (4 heads, generated inputs) peaks at 0.66 GB RSS at n = 2048 and 2.17 GB at
 * n = 4096, i.e. (2.17 - 0.66) GB / (4 heads x (4096^2 - 2048^2) pairs) = 30 bytes; rounded up.
 */
export const SCORE_BYTES_PER_PAIR = 32;

export interface RunMemory {
  /** Bytes of the model's weights (its file and external data files). */
  readonly weightBytes: number;
  /** The attention sites' parameters, as recognized. */
  readonly sites: readonly AttentionParams[];
  /** The estimate above (a model not read from a file counts its weights only), in bytes, at nq = nk = n. */
  at(n: number): number;
  /** The largest n <= `upTo` whose estimate is at most `limit` bytes (0 when not even n = 1 fits). */
  largestFitting(limit: number, upTo: number): number;
}

/** The calibration samples optimize generates by default (DecideOptions.calibrationCount). */
export const CALIBRATION_SAMPLES = 2;

/** Head size used for a site that reads it at run time (unknown until the model runs). */
const RUNTIME_HEAD_DIM_GUESS = 64;

/** A site at nq = nk = n: its peak (scores, Q, K, V and output) and what calibration keeps of it (Q, K, V per sample). */
function siteBytes(p: AttentionParams, n: number): { peak: number; kept: number } {
  const d = p.headDim || RUNTIME_HEAD_DIM_GUESS;
  const dv = p.vHeadDim || d;
  const tensors = 4 * n * (p.numHeads * (d + dv) + p.kvNumHeads * (d + dv));
  return { peak: SCORE_BYTES_PER_PAIR * p.numHeads * n * n + tensors, kept: CALIBRATION_SAMPLES * 4 * n * (p.numHeads * d + p.kvNumHeads * (d + dv)) };
}

/** The sites of a fresh copy of the model read from its file (the caller's graph is left as it is). */
function sitesOf(file: string): AttentionParams[] {
  let graph: Graph;
  try {
    graph = importOnnx(file).graph;
  } catch {
    return []; // the caller loaded it already: a failure here is reported when the command reads it
  }
  recognize(graph);
  return attentionSites(graph).map(({ node }) => attentionParams(node));
}

export function runMemory(model: AttnoptModel): RunMemory {
  const weightBytes = modelFiles(model).reduce((sum, f) => sum + statSync(f).size, 0);
  const sites = model.file !== undefined ? sitesOf(model.file) : [];
  const at = (n: number): number => {
    let peak = 0;
    let kept = 0;
    for (const p of sites) {
      const s = siteBytes(p, n);
      peak = Math.max(peak, s.peak);
      kept += s.kept;
    }
    return 2 * weightBytes + peak + kept;
  };
  const largestFitting = (limit: number, upTo: number): number => {
    if (at(1) > limit) return 0;
    let lo = 1; // fits
    let hi = upTo; // may not fit
    if (at(hi) <= limit) return hi;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (at(mid) <= limit) lo = mid;
      else hi = mid;
    }
    return lo;
  };
  return { weightBytes, sites, at, largestFitting };
}
