// The generated site of the global-token tests: `heads` heads of size `headDim` over a dense baseline (an encoder),
// N keys, scale 1/4. Channels [0, 2F): rotary-like features, q_i . k_j = A^2 sum_f cos(w_f (i - j)): local attention
// peaked at the query, no far key realigns. Channels [2F, 2F + 4): a "global" direction every query has and only
// the keys at `tokens` share, so those keys score about as high as the query's own neighbourhood wherever they
// are. The other channels: 0 in Q (they add nothing to the scores; they make the site as large as a small
// encoder's, where the cost model has sparse forms pay).

import { type AttentionParams, dense, SplitMix64 } from '@attnopt/ir';
import type { CalibrationSample } from '../src/sparsify/index.js';

export const N = 1024;
const F = 6;
const A = 6;

export interface SiteShape {
  readonly heads: number;
  readonly headDim: number;
}

export function siteParams(s: SiteShape): AttentionParams {
  return { numHeads: s.heads, kvNumHeads: s.heads, headDim: s.headDim, vHeadDim: s.headDim, scale: 0.25, softcap: 0, layout: 'bhsd', spec: dense };
}

export interface Inputs {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
}

/** The site's inputs: local attention plus `tokens` every query attends to with global strength `g` (0: none). */
export function globalInputs(shape: SiteShape, seed: number, tokens: readonly number[], g: number): Inputs {
  const { heads: H, headDim: D } = shape;
  if (D < 2 * F + 4) throw new Error(`global-token site: head size ${D} < ${2 * F + 4}`);
  const rng = new SplitMix64(seed);
  const w = Array.from({ length: F }, (_, f) => 0.0015 * 1.9 ** f);
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  const isToken = new Set(tokens);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      for (let c = 0; c < D; c++) {
        const at = (h * N + i) * D + c;
        if (c < 2 * F) {
          const x = A * (c % 2 === 0 ? Math.cos(w[c >> 1]! * i) : Math.sin(w[c >> 1]! * i));
          q[at] = x;
          k[at] = x + 0.05 * (rng.nextFloat() - 0.5);
        } else if (c < 2 * F + 4) {
          q[at] = g;
          k[at] = (isToken.has(i) ? g : 0) + 0.05 * (rng.nextFloat() - 0.5);
        } else {
          k[at] = 0.05 * (rng.nextFloat() - 0.5);
        }
      }
    }
  }
  const v = Float64Array.from({ length: H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q, k, v };
}

export function asSample(s: SiteShape, x: Inputs): CalibrationSample {
  const shape = [1, s.heads, N, s.headDim];
  return { q: { shape, data: x.q }, k: { shape, data: x.k }, v: { shape, data: x.v } };
}
