// The float64 reference against an independent textbook implementation written here with plain loops.
// Tolerances: |ref - textbook| <= 1e-10 + 1e-10 |textbook| (both float64; only summation order differs),
// non-finite values compared exactly. Nystrom with landmarks = n against dense: 1e-8 absolute.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AttentionParams, keeps, type MaskSpec, nystrom } from '@attnopt/ir';
import {
  compareArrays,
  dataLeafResolver,
  outputFromBhsd,
  performerFeatures,
  performerProjection,
  matrix,
  referenceAttention,
  type BoolTensor,
  type Tensor64,
} from '@attnopt/reference';
import { type AttentionProblem, attentionProblemArbitrary } from './arbitraries/attention-inputs.js';
import { maskSpecArbitrary } from './arbitraries/spec.js';

const TOL = { atol: 1e-10, rtol: 1e-10 };

/** Textbook attention on bhsd data; `allowed(b, h, i, j)` adds -inf where it is false. */
function textbook(p: AttentionParams, x: AttentionProblem['bhsd'], allowed?: (b: number, h: number, i: number, j: number) => boolean): Float64Array {
  const [B, H, nq, d] = x.q.shape as number[] as [number, number, number, number];
  const KH = p.kvNumHeads;
  const past = x.pastKey?.shape[2] ?? 0;
  const nNew = x.k.shape[2]!;
  const nk = past + nNew;
  const dv = p.vHeadDim;
  const key = (b: number, g: number, j: number, c: number, vOrK: 'k' | 'v') => {
    const dim = vOrK === 'k' ? d : dv;
    const pastT = vOrK === 'k' ? x.pastKey : x.pastValue;
    const now = vOrK === 'k' ? x.k : x.v;
    return j < past ? pastT!.data[((b * KH + g) * past + j) * dim + c]! : now.data[((b * KH + g) * nNew + (j - past)) * dim + c]!;
  };
  const biasAt = (b: number, h: number, i: number, j: number): number => {
    const t = x.bias;
    if (!t) return 0;
    const shape = [1, 1, 1, 1].slice(t.shape.length).concat(t.shape as number[]);
    if (j >= shape[3]!) return -Infinity;
    const idx = [b, h, i, j].map((v, k) => (shape[k] === 1 ? 0 : v));
    const off = ((idx[0]! * shape[1]! + idx[1]!) * shape[2]! + idx[2]!) * shape[3]! + idx[3]!;
    if (t.data instanceof Uint8Array) return (t as BoolTensor).data[off] ? 0 : -Infinity;
    return (t as Tensor64).data[off]!;
  };
  const y = new Float64Array(B * H * nq * dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor((h * KH) / H); // consecutive query heads share a kv head
      for (let i = 0; i < nq; i++) {
        const s: number[] = [];
        for (let j = 0; j < nk; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += x.q.data[((b * H + h) * nq + i) * d + c]! * key(b, g, j, c, 'k');
          let v = p.scale * dot;
          if (p.softcap > 0) v = p.softcap * Math.tanh(v / p.softcap);
          v += biasAt(b, h, i, j);
          if (allowed && !allowed(b, h, i, j)) v = -Infinity;
          s.push(v);
        }
        const m = Math.max(...s);
        if (m === -Infinity) continue; // fully masked row: output 0
        const e = s.map((v) => Math.exp(v - m));
        const z = e.reduce((a, c) => a + c, 0);
        for (let j = 0; j < nk; j++) {
          if (e[j] === 0) continue;
          for (let c = 0; c < dv; c++) y[((b * H + h) * nq + i) * dv + c]! += (e[j]! / z) * key(b, g, j, c, 'v');
        }
      }
    }
  }
  return y;
}

function expectClose(got: Float64Array, want: Float64Array, tol = TOL) {
  const cmp = compareArrays(got, want, tol);
  expect(cmp.mismatches).toEqual([]);
}

describe('reference vs textbook attention', () => {
  it('dense spec: every layout, GQA, head sizes up to 96, bias with fully masked rows, past K/V', () => {
    fc.assert(
      fc.property(attentionProblemArbitrary(), (prob) => {
        const got = referenceAttention(prob.params, prob.inputs).y;
        const [B, H, nq] = prob.bhsd.q.shape as [number, number, number];
        const want = outputFromBhsd({ shape: [B, H, nq, prob.params.vHeadDim], data: textbook(prob.params, prob.bhsd) }, prob.params.layout);
        expect(got.shape).toEqual(want.shape);
        expectClose(got.data, want.data);
      }),
      { seed: 20240601, numRuns: 200 },
    );
  });

  // Chunked LSH is defined for self-attention only, so it gets its own problems (nq == nk, no past keys).
  const maskCases: [string, fc.Arbitrary<AttentionProblem>, number][] = [
    ['', attentionProblemArbitrary({ spec: maskSpecArbitrary({ maxLen: 24 }), maxLen: 24 }), 424242],
    [
      ' (self-attention, chunked LSH included)',
      attentionProblemArbitrary({ spec: maskSpecArbitrary({ maxLen: 24, lshChunks: true }), maxLen: 24, selfAttention: true }),
      515151,
    ],
  ];
  it.each(maskCases)('every mask spec equals textbook attention with the materialized mask as a -inf bias%s', (_, arb, seed) => {
    fc.assert(
      fc.property(arb, (prob) => {
        const p = prob.params;
        const spec = p.spec as MaskSpec;
        const [B, H, nq, d] = prob.bhsd.q.shape as [number, number, number, number];
        const past = prob.bhsd.pastKey?.shape[2] ?? 0;
        const nk = past + prob.bhsd.k.shape[2]!;
        const dims = { nq, nk, past };
        const kAll = (b: number, g: number): Float64Array => {
          const out = new Float64Array(nk * d);
          const nNew = nk - past;
          if (past) out.set(prob.bhsd.pastKey!.data.subarray((b * p.kvNumHeads + g) * past * d, (b * p.kvNumHeads + g + 1) * past * d));
          out.set(prob.bhsd.k.data.subarray((b * p.kvNumHeads + g) * nNew * d, (b * p.kvNumHeads + g + 1) * nNew * d), past * d);
          return out;
        };
        const resolvers = new Map<string, ReturnType<typeof dataLeafResolver>>();
        const allowed = (b: number, h: number, i: number, j: number) => {
          let r = resolvers.get(`${b},${h}`);
          if (!r) {
            const g = Math.floor((h * p.kvNumHeads) / H);
            r = dataLeafResolver({ q: prob.bhsd.q.data.subarray((b * H + h) * nq * d, (b * H + h + 1) * nq * d), k: kAll(b, g), nq, nk, d, scale: p.scale });
            resolvers.set(`${b},${h}`, r);
          }
          return keeps(spec, i, j, dims, r);
        };
        const got = referenceAttention(p, prob.inputs).y;
        const want = outputFromBhsd({ shape: [B, H, nq, p.vHeadDim], data: textbook(p, prob.bhsd, allowed) }, p.layout);
        expectClose(got.data, want.data);
      }),
      { seed, numRuns: 200 },
    );
  });

  it('Nystrom with landmarks = n (nq = nk) equals dense attention within 1e-8', () => {
    const arb = attentionProblemArbitrary({ selfAttention: true, bias: false, maxLen: 16, range: 1 });
    fc.assert(
      fc.property(arb, (prob) => {
        const p = { ...prob.params, softcap: 0 };
        const n = prob.bhsd.q.shape[2]!;
        const got = referenceAttention({ ...p, spec: nystrom(n) }, prob.inputs).y;
        const dense = referenceAttention(p, prob.inputs).y;
        expectClose(got.data, dense.data, { atol: 1e-8, rtol: 0 });
      }),
      { seed: 77, numRuns: 100 },
    );
  });
});

describe('Performer FAVOR+ kernel', () => {
  // For fixed x, y the estimates phi(x) . phi(y) over independent seeds are i.i.d. with mean exp(x . y)
  // (BOUNDS.md (d)); with N = 4000 seeds the sample mean is within 5 standard errors of exp(x . y) except with
  // probability about 5.7e-7 per check (normal approximation, P(|Z| > 5)). Seeds are fixed: deterministic.
  const x = [0.4, -0.3, 0.2, 0.5];
  const y = [0.1, 0.6, -0.4, 0.3];
  const exact = Math.exp(x.reduce((a, v, k) => a + v * y[k]!, 0));
  for (const orthogonal of [false, true]) {
    it(`is unbiased (orthogonal = ${orthogonal}): mean of phi(x) . phi(y) within 5 standard errors of exp(x . y)`, () => {
      const N = 4000;
      const m = 4;
      const est: number[] = [];
      for (let seed = 0; seed < N; seed++) {
        const w = performerProjection(m, 4, seed, orthogonal);
        const f = performerFeatures(matrix(2, 4, Float64Array.from([...x, ...y])), w);
        let dot = 0;
        for (let t = 0; t < m; t++) dot += f.data[t]! * f.data[m + t]!;
        est.push(dot);
      }
      const mean = est.reduce((a, b) => a + b, 0) / N;
      const sd = Math.sqrt(est.reduce((a, b) => a + (b - mean) ** 2, 0) / (N - 1));
      expect(Math.abs(mean - exact)).toBeLessThanOrEqual((5 * sd) / Math.sqrt(N));
    });
  }
});
