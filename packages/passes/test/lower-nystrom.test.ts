// Nystrom lowering (segment-mean landmarks, three softmax kernels, Newton–Schulz pseudo-inverse) in
// onnxruntime (optimizations off) against referenceAttention, whose A⁺ is the exact SVD pseudo-inverse.
//   fp64 models: |ort - ref| <= 1e-9 · max|ref| elementwise. With NYSTROM_PINV_STEPS the iteration has
//     converged to A⁺ (measured errors 1e-14..1e-11 relative); what is left is float64 rounding amplified by
//     κ(A). A step count too small fails this (checked below: 12 steps miss by more than 1e-3 · max|ref|).
//   fp32 models: |ort - ref| <= 1e-5 + κ(A) · 2⁻²⁴ · max|ref|, κ(A) the largest condition number of the
//     m x m landmark kernel over the batch and heads, computed here in float64 from the inputs. A and A⁺ are
//     formed in float64 by the lowering; F and G V are fp32 (relative rounding about 2⁻²⁴), and A⁺ between
//     them amplifies a relative error by at most κ(A): the first-order bound, whatever the steps. Measured
//     errors sit 20..1000x below it. Generated inputs (uniform in [-1, 1), segment means) give near-uniform
//     A with κ(A) ~ 1e3..1e7; where κ(A) <= 1e5 the run also checks the tolerance is under 1% of max|ref|.

import { type AttentionParams, kvHeadOf, nystrom } from '@attnopt/ir';
import { headsView, matrix, type ReferenceInputs, svd } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import { NYSTROM_PINV_STEPS } from '../src/lower/nystrom.js';
import { lowerSite, runSite, type Site } from './helpers/lowered-site.js';

function params(landmarks: number, n: number, layout: AttentionParams['layout']): AttentionParams {
  const headDim = [16, 32, 8][n % 3]!;
  const gqa = n % 2 === 0;
  return { numHeads: gqa ? 4 : 2, kvNumHeads: 2, headDim, vHeadDim: layout === 'packed-qkv' ? headDim : n % 4 === 1 ? 12 : headDim, scale: 1 / Math.sqrt(headDim), softcap: 0, layout, spec: nystrom(landmarks) };
}

/** The largest κ(A) over batch and heads, A = softmax(s Q̃ K̃ᵀ) on segment means (no past keys). */
function landmarkConditioning(p: AttentionParams, inputs: ReferenceInputs): { kappa: number } {
  const view = headsView(p, inputs.q, inputs.k, inputs.v);
  const [B, , nq, d] = view.q.shape as [number, number, number, number];
  const nk = view.k.shape[2]!;
  const m = Math.min((p.spec as { landmarks: number }).landmarks, nq, nk);
  const means = (t: Float64Array, off: number, n: number) =>
    Array.from({ length: m }, (_, s) => {
      const lo = Math.floor((s * n) / m);
      const hi = Math.floor(((s + 1) * n) / m);
      return Array.from({ length: d }, (_, c) => {
        let sum = 0;
        for (let i = lo; i < hi; i++) sum += t[off + i * d + c]!;
        return sum / (hi - lo);
      });
    });
  let kappa = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < p.numHeads; h++) {
      const ql = means(view.q.data, (b * p.numHeads + h) * nq * d, nq);
      const kl = means(view.k.data, (b * p.kvNumHeads + kvHeadOf(p, h)) * nk * d, nk);
      const a = new Float64Array(m * m);
      for (let i = 0; i < m; i++) {
        const row = kl.map((k) => p.scale * k.reduce((acc, x, c) => acc + x * ql[i]![c]!, 0));
        const mx = Math.max(...row);
        const e = row.map((x) => Math.exp(x - mx));
        const z = e.reduce((x, y) => x + y, 0);
        e.forEach((x, j) => (a[i * m + j] = x / z));
      }
      const s = svd(matrix(m, m, a)).s;
      kappa = Math.max(kappa, Math.max(...s) / Math.min(...s));
    }
  }
  return { kappa };
}

const LAYOUTS = ['bsd', 'bhsd', 'bshd', 'packed-qkv'] as const;
const CASES: [number, number[]][] = [
  [8, [37, 97]],
  [16, [64, 131]],
  [32, [64, 45]],
  [64, [48, 20]], // landmarks >= n: m = n, Q̃ = Q and K̃ = K
];

function sites(dtype: 'f32' | 'f64'): [string, Site][] {
  const out: [string, Site][] = [];
  let n = 0;
  for (const [landmarks] of CASES) {
    for (const layout of n % 2 === 0 ? LAYOUTS.slice(0, 2) : LAYOUTS.slice(2)) {
      const extraKeys = layout === 'packed-qkv' || n % 3 !== 2 ? 0 : 5;
      const past = dtype === 'f64' && layout !== 'packed-qkv' && n % 3 === 1 ? 4 : 0;
      const s: Site = { params: params(landmarks, n, layout), batch: 2, dtype, ...(extraKeys ? { extraKeys } : {}), ...(past ? { past } : {}) };
      const p = s.params;
      out.push([`nystrom(${landmarks}) ${layout} d=${p.headDim}${p.numHeads > p.kvNumHeads ? ' gqa' : ''}${extraKeys ? ' nk > nq' : ''}${past ? ' past' : ''}`, s]);
      n++;
    }
  }
  return out;
}

const lengthsOf = (s: Site) => CASES.find(([m]) => m === (s.params.spec as { landmarks: number }).landmarks)![1];

describe(`Nystrom lowering, fp64, ${NYSTROM_PINV_STEPS} Newton–Schulz steps: the exact pseudo-inverse within 1e-9 · max|ref|`, () => {
  const rel: number[] = [];
  it.each(sites('f64'))('%s', async (_name, s) => {
    const lowered = lowerSite(s, { opset: 21 });
    for (const [k, nq] of lengthsOf(s).entries()) {
      const r = await runSite(lowered, s, nq, 11 + k + rel.length, (_in, ref) => ({ atol: 1e-9 * ref, rtol: 0 }));
      expect(r.mismatches, `y at nq=${nq}`).toEqual([]);
      rel.push(r.maxAbsError / r.maxAbsRef);
    }
  });
  it('too few steps do not converge: 12 steps miss by more than 1e-3 · max|ref|', async () => {
    const [, s] = sites('f64')[2]!;
    const r = await runSite(lowerSite(s, { opset: 21, nystromSteps: 12 }), s, 131, 5, (_in, ref) => ({ atol: 1e-3 * ref, rtol: 0 }));
    expect(r.mismatches.length).toBeGreaterThan(0);
  });
  it('reports', () => console.log(`nystrom fp64: ${rel.length} runs, max error / max|ref| ${Math.max(...rel).toExponential(2)}`));
});

describe('Nystrom lowering, fp32: within 1e-5 + κ(A) · 2⁻²⁴ · max|ref|', () => {
  const seen: string[] = [];
  it.each(sites('f32'))('%s', async (_name, s) => {
    const lowered = lowerSite(s, { opset: 21 });
    for (const [k, nq] of lengthsOf(s).entries()) {
      let kappa = 0;
      const r = await runSite(lowered, s, nq, 21 + k + seen.length, (inputs, ref) => {
        const c = landmarkConditioning(s.params, inputs);
        kappa = c.kappa;
        return { atol: 1e-5 + c.kappa * 2 ** -24 * ref, rtol: 0 };
      });
      expect(r.mismatches, `y at nq=${nq}`).toEqual([]);
      if (kappa <= 1e5) expect(r.tol.atol, 'the tolerance still tests something').toBeLessThan(1e-2 * r.maxAbsRef);
      seen.push(`κ=${kappa.toExponential(1)} err/max|ref|=${(r.maxAbsError / r.maxAbsRef).toExponential(1)} tol/max|ref|=${(r.tol.atol / r.maxAbsRef).toExponential(1)}`);
    }
  });
  it('reports', () => console.log(`nystrom fp32: ${seen.length} runs\n${seen.join('\n')}`));
});

describe('Nystrom lowering refusals', () => {
  it('refuses a bias, kvLength or softcap (Nystrom is defined for plain softmax(s Q Kᵀ) V), naming the node', () => {
    const s: Site = { params: { ...params(8, 1, 'bhsd'), softcap: 2 }, batch: 1 };
    expect(() => lowerSite(s, { opset: 21 })).toThrow(/attn.*nystrom is defined for plain softmax/);
    expect(() => lowerSite({ ...s, params: params(8, 1, 'bhsd'), kvLength: true }, { opset: 21 })).toThrow(/no bias, kvLength/);
  });
});
