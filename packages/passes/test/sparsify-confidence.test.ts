// The statistical tier's distribution-free confidence: an accepted statistical form carries the conformal quantile
// of its held-out calibration rows (alpha, samples, quantile), and is accepted only when that quantile is within
// the budget. Checked against per-row errors computed independently by the float64 reference.

import { type AttentionParams, dense, gaussian, performer } from '@attnopt/ir';
import { matrix, performerAttention, referenceAttention } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import { type CalibrationSample, chooseSiteSpec, headData, type SiteCalibration } from '../src/sparsify/index.js';

const N = 256;
const D = 32;
const H = 2;
const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: dense };
const shape = [1, H, N, D];
// near-uniform attention (small q, k): Performer's kernel estimate is close to dense
const sample = (seed: number): CalibrationSample => {
  const g = (s: number, a: number) => ({ shape, data: gaussian(s, H * N * D).map((x) => a * x) });
  return { q: g(seed, 0.1), k: g(seed + 1, 0.1), v: g(seed + 2, 1) };
};
const calibration: SiteCalibration = { id: 'site0', samples: [sample(1), sample(11)] };
const FORM = performer(16, 1);
const BUDGET = 0.05;

/** Every calibration row's max-abs error of FORM against dense, by the reference, sorted ascending. */
function referenceRowErrors(): Float64Array {
  const errors: number[] = [];
  for (const s of calibration.samples) {
    const t = (x: { shape: readonly number[]; data: ArrayLike<number> }) => ({ shape: [...x.shape], data: Float64Array.from(x.data) });
    const y = referenceAttention(params, { q: t(s.q), k: t(s.k!), v: t(s.v!) }).y.data;
    for (let h = 0; h < H; h++) {
      const head = headData(params, s, 0, h);
      const out = performerAttention(matrix(N, D, head.q), matrix(N, D, head.k), matrix(N, D, head.v), params.scale, FORM.features, FORM.seed, FORM.orthogonal).data;
      for (let i = 0; i < N; i++) {
        let e = 0;
        for (let c = 0; c < D; c++) e = Math.max(e, Math.abs(out[i * D + c]! - y[(h * N + i) * D + c]!));
        errors.push(e);
      }
    }
  }
  return Float64Array.from(errors).sort();
}

describe('statistical tier: conformal confidence over held-out calibration rows', () => {
  const rows = referenceRowErrors();
  const M = rows.length; // 2 samples x 2 heads x 256 rows
  const accepted = chooseSiteSpec(params, calibration, { budget: BUDGET, allowUncertified: true, candidates: [FORM] });

  it('an accepted statistical form records alpha 0.05, the held-out count and a quantile within the budget', () => {
    expect(accepted.guarantee).toBe('statistical');
    expect(accepted.chosenSpec).toEqual(FORM);
    const c = accepted.confidence!;
    expect(c.alpha).toBe(0.05);
    // each row is held out with probability 1/2: the count is within 5 sd (sqrt(M / 4) = 16) of M / 2
    expect(Math.abs(c.samples - M / 2)).toBeLessThanOrEqual(5 * Math.sqrt(M / 4));
    expect(c.quantile).toBeLessThanOrEqual(BUDGET);
    // the k-th smallest of n rows out of M lies between the k-th and the (k + M - n)-th smallest of all M rows,
    // and is one of the rows' errors
    const k = Math.ceil((c.samples + 1) * 0.95);
    expect(c.quantile).toBeGreaterThanOrEqual(rows[k - 1]! - 1e-10);
    expect(c.quantile).toBeLessThanOrEqual(rows[k - 1 + M - c.samples]! + 1e-10);
    expect(Math.min(...Array.from(rows, (e) => Math.abs(e - c.quantile)))).toBeLessThanOrEqual(1e-10);
    expect(accepted.notes.join('\n')).toMatch(/held-out conformal quantile .* \(\d+ rows, alpha 0.05\).*>= 0.95/);
  });

  it('the split is fixed by the seed: the same decision twice; a larger alpha gives a quantile no larger', () => {
    expect(chooseSiteSpec(params, calibration, { budget: BUDGET, allowUncertified: true, candidates: [FORM] }).confidence).toEqual(accepted.confidence);
    const loose = chooseSiteSpec(params, calibration, { budget: BUDGET, allowUncertified: true, candidates: [FORM], alpha: 0.5 }).confidence!;
    expect(loose.samples).toBe(accepted.confidence!.samples);
    expect(loose.quantile).toBeLessThanOrEqual(accepted.confidence!.quantile);
  });

  it('a form is refused when its conformal quantile is over the budget, though every fit row is within it', () => {
    // alpha below 1 / (n + 1): k = n + 1 > n, no finite quantile has that coverage
    const strict = chooseSiteSpec(params, calibration, { budget: BUDGET, allowUncertified: true, candidates: [FORM], alpha: 1e-4 });
    expect(strict.chosen).toBe('dense');
    expect(strict.confidence).toBeUndefined();
    expect(strict.tried[0]!.reason).toMatch(/conformal quantile Infinity/);
    // a budget between the held-out quantile and the largest error: fit rows may pass, the quantile decides
    const q = accepted.confidence!.quantile;
    const below = chooseSiteSpec(params, calibration, { budget: q * (1 - 1e-9), allowUncertified: true, candidates: [FORM] });
    expect(below.chosen).toBe('dense');
  });
});
