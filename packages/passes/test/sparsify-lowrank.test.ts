// Low-rank candidates in sparsify (BOUNDS.md (c), (d)): the float64 evaluator equals the reference's
// nystromAttention / linformerAttention / performerAttention; their error is measured on the calibration data and recorded
// uncertified; allowUncertified accepts one only when it is the cheapest form within the budget; the default
// never accepts one.

import { type AttentionParams, dense, gaussian, linformer, nystrom, performer, slidingWindow } from '@attnopt/ir';
import { linformerAttention, matrix, nystromAttention, performerAttention, referenceAttention } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import {
  type CalibrationSample,
  chooseSiteSpec,
  headData,
  linformerOutput,
  nystromHeadOutput,
  performerOutput,
  type SiteCalibration,
} from '../src/sparsify/index.js';

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let e = 0;
  for (let x = 0; x < a.length; x++) e = Math.max(e, Math.abs(a[x]! - b[x]!));
  return e;
};

describe('low-rank evaluator', () => {
  const cases = [
    { nq: 48, nk: 64, d: 16, dv: 8, scale: 0.25, seed: 1 },
    { nq: 64, nk: 40, d: 8, dv: 12, scale: 1, seed: 7 },
  ];
  for (const c of cases) {
    const params: AttentionParams = { numHeads: 2, kvNumHeads: 1, headDim: c.d, vHeadDim: c.dv, scale: c.scale, softcap: 0, layout: 'bhsd', spec: dense };
    const sample: CalibrationSample = {
      q: { shape: [1, 2, c.nq, c.d], data: gaussian(c.seed, 2 * c.nq * c.d) },
      k: { shape: [1, 1, c.nk, c.d], data: gaussian(c.seed + 1, c.nk * c.d) },
      v: { shape: [1, 1, c.nk, c.dv], data: gaussian(c.seed + 2, c.nk * c.dv) },
    };
    for (const h of [0, 1]) {
      const head = headData(params, sample, 0, h);
      const q = matrix(c.nq, c.d, head.q);
      const k = matrix(c.nk, c.d, head.k);
      const v = matrix(c.nk, c.dv, head.v);
      it(`linformer equals the reference (nq ${c.nq}, nk ${c.nk}, head ${h})`, () => {
        for (const [r, seed] of [[4, 3], [16, 9], [80, 0]] as const) {
          const ref = linformerAttention(q, k, v, c.scale, r, seed).data;
          expect(maxDiff(linformerOutput(head, linformer(r, seed)), ref)).toBeLessThanOrEqual(1e-10);
        }
      });
      it(`nystrom equals the reference (nq ${c.nq}, nk ${c.nk}, head ${h})`, () => {
        for (const m of [1, 5, 16, 40, 100]) {
          const ref = nystromAttention(q, k, v, c.scale, m).data;
          expect(maxDiff(nystromHeadOutput(head, nystrom(m)), ref)).toBeLessThanOrEqual(1e-10);
        }
      });
      it(`performer equals the reference, orthogonal and i.i.d. (nq ${c.nq}, nk ${c.nk}, head ${h})`, () => {
        for (const [m, seed, orth] of [[8, 3, true], [20, 5, true], [32, 1, false]] as const) {
          const ref = performerAttention(q, k, v, c.scale, m, seed, orth).data;
          expect(maxDiff(performerOutput(head, performer(m, seed, orth)), ref)).toBeLessThanOrEqual(1e-10);
        }
      });
    }
  }
});

describe('chooseSiteSpec with low-rank candidates', () => {
  const N = 256;
  const D = 32;
  const H = 2;
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: dense };
  const shape = [1, H, N, D];
  // near-uniform attention (small q, k): Performer's kernel estimate is close; a window drops most of the mass
  const sample = (seed: number): CalibrationSample => {
    const g = (s: number, a: number) => ({ shape, data: gaussian(s, H * N * D).map((x) => a * x) });
    return { q: g(seed, 0.1), k: g(seed + 1, 0.1), v: g(seed + 2, 1) };
  };
  const calibration: SiteCalibration = { id: 'site0', samples: [sample(1), sample(11)] };
  const candidates = [performer(16, 1), performer(64, 1), linformer(16, 2), nystrom(16), slidingWindow(32, 32)];

  /** max over heads and samples of |performer/linformer - dense|, by the reference. */
  const referenceError = (spec: ReturnType<typeof performer> | ReturnType<typeof linformer> | ReturnType<typeof nystrom>) => {
    let e = 0;
    for (const s of calibration.samples) {
      const t = (x: { shape: readonly number[]; data: ArrayLike<number> }) => ({ shape: [...x.shape], data: Float64Array.from(x.data) });
      const y = referenceAttention(params, { q: t(s.q), k: t(s.k!), v: t(s.v!) }).y.data;
      for (let h = 0; h < H; h++) {
        const head = headData(params, s, 0, h);
        const [q, k, v] = [matrix(N, D, head.q), matrix(N, D, head.k), matrix(N, D, head.v)];
        const out =
          spec.kind === 'performer'
            ? performerAttention(q, k, v, params.scale, spec.features, spec.seed, spec.orthogonal)
            : spec.kind === 'nystrom'
              ? nystromAttention(q, k, v, params.scale, spec.landmarks)
              : linformerAttention(q, k, v, params.scale, spec.rank, spec.seed);
        e = Math.max(e, maxDiff(out.data, y.subarray(h * N * D, (h + 1) * N * D)));
      }
    }
    return e;
  };

  const allowed = chooseSiteSpec(params, calibration, { budget: 0.05, allowUncertified: true, candidates });

  it('records the measured error of Nystrom, Linformer and Performer, uncertified, equal to the reference error', () => {
    for (const spec of [performer(16, 1), performer(64, 1), linformer(16, 2), nystrom(16)]) {
      const key = spec.kind === 'performer' ? `features=${spec.features}` : spec.kind === 'nystrom' ? `landmarks=${spec.landmarks}` : `rank=${spec.rank}`;
      const t = allowed.tried.find((x) => x.spec.startsWith(spec.kind) && x.spec.includes(key))!;
      expect(t.certified).toBe(false);
      expect(t.bound).toBeNull();
      expect(t.measuredError).not.toBeNull();
      expect(t.measuredRows).toBe(t.rows);
      expect(t.rows).toBe(2 * H * N);
      expect(Math.abs(t.measuredError! - referenceError(spec))).toBeLessThanOrEqual(1e-10);
    }
  });

  it('allowUncertified accepts the cheapest low-rank form within the budget, marked measured, not certified', () => {
    expect(allowed.reasonDense).toBeUndefined();
    expect(allowed.chosenSpec).toEqual(performer(16, 1));
    expect(allowed.certified).toBe(false);
    expect(allowed.measuredError).toBeLessThanOrEqual(0.05);
    const chosen = allowed.tried.find((t) => t.accepted)!;
    expect(chosen.reason).toMatch(/measured, not certified/);
    expect(allowed.notes.join('\n')).toMatch(/on the calibration data alone \(statistical tier/);
    const qualifying = allowed.tried.filter((t) => t.measuredError !== null && (t.certified ? t.bound! <= 0.05 : t.measuredError <= 0.05));
    for (const t of qualifying) expect(chosen.time).toBeLessThanOrEqual(t.time);
    expect(allowed.tried.filter((t) => t.accepted)).toHaveLength(1);
  });

  it('allowUncertified picks the next cheapest when the cheapest is over the budget, and none when all are', () => {
    const e16 = allowed.tried.find((t) => t.spec.includes('features=16'))!.measuredError!;
    const e64 = allowed.tried.find((t) => t.spec.includes('features=64'))!.measuredError!;
    expect(e64).toBeLessThan(e16);
    const mid = chooseSiteSpec(params, calibration, { budget: (e16 + e64) / 2, allowUncertified: true, candidates });
    expect(mid.chosenSpec).toEqual(performer(64, 1));
    expect(mid.certified).toBe(false);
    const tight = chooseSiteSpec(params, calibration, { budget: e64 / 2, allowUncertified: true, candidates });
    expect(tight.chosen).toBe('dense');
    expect(tight.exact).toBe(true);
    expect(tight.certified).toBe(true);
    expect(tight.reasonDense).toMatch(/measured/);
    for (const t of tight.tried) expect(t.accepted).toBe(false);
  });

  it('prefers a cheaper certified form within the budget over a low-rank one', () => {
    // uniform data: only dense qualifies with a certificate, so give the certified path a budget it can meet
    const d = chooseSiteSpec(params, calibration, { budget: 100, allowUncertified: true, candidates: [performer(64, 1), slidingWindow(8, 8)] });
    const win = d.tried.find((t) => t.certified)!;
    const perf = d.tried.find((t) => !t.certified)!;
    const cheaper = win.time < perf.time ? win : perf;
    expect(d.tried.find((t) => t.accepted)!.spec).toBe(cheaper.spec);
  });

  it('by default never accepts a low-rank form: rejected with its measured error and the reason', () => {
    for (const budget of [0.05, 1, 100]) {
      const d = chooseSiteSpec(params, calibration, { budget, candidates });
      for (const t of d.tried.filter((x) => !x.certified)) {
        expect(t.accepted).toBe(false);
        if (!/not cheaper/.test(t.reason)) {
          expect(t.measuredError).not.toBeNull();
          expect(t.reason).toMatch(/no certificate \(BOUNDS\.md \(c\)\): held on calibration data only, the statistical tier is off \(--allow-statistical/);
        }
      }
      expect(d.certified).toBe(true);
    }
    const d = chooseSiteSpec(params, calibration, { budget: 0.05, candidates: [performer(16, 1), performer(64, 1), linformer(16, 2)] });
    expect(d.chosen).toBe('dense');
    expect(d.reasonDense).toMatch(/the statistical tier is off \(--allow-statistical with --calibration data; API: allowStatistical\)/);
  });
});
