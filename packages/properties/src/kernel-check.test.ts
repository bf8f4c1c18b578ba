// checkAttentionKernel on a correct float32 kernel (the reference with its output rounded to float32: error
// <= 2^-24 |y| << rtol 1e-4) and on two buggy ones, which must fail with a shrunk counterexample.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dense } from '@attnopt/ir';
import { referenceAttention } from '@attnopt/reference';
import { type AttentionKernel, checkAttentionKernel } from './kernel-check.js';

const correct: AttentionKernel = ({ params, inputs }) => Float32Array.from(referenceAttention(params, inputs).y.data);

describe('checkAttentionKernel', () => {
  it('passes a correct float32 kernel', () => {
    const r = checkAttentionKernel(correct, { numRuns: 300, seed: 1 });
    expect(r.report).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('fails a kernel that forgets the scale, with a small counterexample', () => {
    const noScale: AttentionKernel = ({ params, inputs }) =>
      Float32Array.from(referenceAttention({ ...params, scale: 1 }, inputs).y.data);
    const r = checkAttentionKernel(noScale, { numRuns: 300, seed: 2 });
    expect(r.ok).toBe(false);
    expect(r.report).toMatch(/Counterexample/);
    expect(r.report).toMatch(/kernel differs from the reference/);
    const ce = r.counterexample!;
    expect(ce.params.scale).not.toBe(1);
    // shrunk: a handful of query rows (batch * heads * nq) however large the head
    expect(ce.inputs.q.data.length / ce.params.headDim).toBeLessThanOrEqual(4);
  });

  it('fails a kernel that gives NaN on fully masked rows', () => {
    // a "naive" softmax: sum of exp over an all -inf row is 0 and 0/0 = NaN
    const nanOnMasked: AttentionKernel = (problem) => {
      const y = referenceAttention(problem.params, problem.inputs).y.data;
      const dv = problem.params.vHeadDim;
      const out = Float32Array.from(y);
      const bias = problem.inputs.bias;
      const fullyMasked = bias !== undefined && [...bias.data].some((x) => x === -Infinity || (bias.data instanceof Uint8Array && x === 0));
      if (fullyMasked) for (let k = 0; k < out.length; k += dv) if (out.subarray(k, k + dv).every((x) => x === 0)) out.fill(NaN, k, k + dv);
      return out;
    };
    const r = checkAttentionKernel(nanOnMasked, { numRuns: 500, seed: 3 });
    expect(r.ok).toBe(false);
    expect(r.report).toMatch(/"actual":null|NaN/);
    expect(r.counterexample!.inputs.bias).toBeDefined();
  });
});

describe('checkAttentionKernel with kvLength: padding that holds NaN', () => {
  // A float64 kernel over bhsd, dense, no bias or past: it scores every key, masks padding (j >= kvLength[b]) by
  // adding -inf after reading it, and sums p V over every key. A NaN padding key makes its score NaN whatever is
  // added; a NaN padding value gives 0 · NaN. A row with no valid key gives 0 (ONNX Attention), as the reference.
  const masksAfterReading: AttentionKernel = ({ params, inputs }) => {
    const [B, H, nq, d] = inputs.q.shape as [number, number, number, number];
    const [, Hkv, nk] = inputs.k!.shape as [number, number, number, number];
    const dv = params.vHeadDim;
    const out = new Float64Array(B * H * nq * dv);
    for (let b = 0; b < B; b++) {
      const L = inputs.kvLength?.[b] ?? nk;
      if (L === 0) continue;
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / Hkv));
        for (let i = 0; i < nq; i++) {
          const s = new Float64Array(nk);
          for (let j = 0; j < nk; j++) {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += inputs.q.data[((b * H + h) * nq + i) * d + c]! * inputs.k!.data[((b * Hkv + g) * nk + j) * d + c]!;
            const x = params.scale * dot;
            s[j] = (params.softcap > 0 ? params.softcap * Math.tanh(x / params.softcap) : x) + (j < L ? 0 : -Infinity);
          }
          let m = -Infinity;
          for (let j = 0; j < nk; j++) m = Math.max(m, s[j]!);
          let z = 0;
          for (let j = 0; j < nk; j++) z += Math.exp(s[j]! - m);
          for (let j = 0; j < nk; j++) {
            const p = Math.exp(s[j]! - m) / z;
            for (let c = 0; c < dv; c++) out[((b * H + h) * nq + i) * dv + c]! += p * inputs.v!.data[((b * Hkv + g) * nk + j) * dv + c]!;
          }
        }
      }
    }
    return out;
  };
  const options = { layouts: ['bhsd'] as const, past: false, bias: false, spec: fc.constant(dense), numRuns: 300, dtype: 'float64' as const };

  it('passes a correct kernel', () => {
    const r = checkAttentionKernel(correct, { ...options, dtype: 'float32', kvLength: true, seed: 5 });
    expect(r.report).toBeUndefined();
  });

  it('fails a kernel that masks padding after reading it; the same kernel passes without padding NaN', () => {
    // the control: without a lengths input the kernel is right
    expect(checkAttentionKernel(masksAfterReading, { ...options, seed: 6 }).report).toBeUndefined();
    const r = checkAttentionKernel(masksAfterReading, { ...options, kvLength: true, seed: 6 });
    expect(r.ok).toBe(false);
    const ce = r.counterexample!;
    const nk = ce.inputs.k!.shape[2]!;
    // the counterexample has padding, and NaN in it
    expect(Array.from(ce.inputs.kvLength ?? []).some((L) => L < nk)).toBe(true);
    expect([...ce.inputs.k!.data, ...ce.inputs.v!.data].some(Number.isNaN)).toBe(true);
  });
});

describe('checkAttentionKernel with maxLogit: scores past float32 exp overflow', () => {
  // A float32 kernel over bhsd, dense, no bias or past: softmax as exp(s) / sum exp(s), with or without first
  // subtracting the row's max. Scores and exps rounded to float32 (Math.fround), as a float32 kernel stores them.
  const f32Kernel =
    (subtractMax: boolean): AttentionKernel =>
    ({ params, inputs }) => {
      const [B, H, nq, d] = inputs.q.shape as [number, number, number, number];
      const [, Hkv, nk] = inputs.k!.shape as [number, number, number, number];
      const dv = params.vHeadDim;
      const out = new Float32Array(B * H * nq * dv);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const kh = Math.floor(h / (H / Hkv));
          for (let i = 0; i < nq; i++) {
            const s = new Float32Array(nk);
            for (let j = 0; j < nk; j++) {
              let dot = 0;
              for (let c = 0; c < d; c++) dot += inputs.q.data[((b * H + h) * nq + i) * d + c]! * inputs.k!.data[((b * Hkv + kh) * nk + j) * d + c]!;
              let x = params.scale * dot;
              if (params.softcap > 0) x = params.softcap * Math.tanh(x / params.softcap);
              s[j] = x;
            }
            const max = subtractMax ? Math.max(...s) : 0;
            let sum = 0;
            const e = s.map((x) => Math.fround(Math.exp(x - max)));
            for (const x of e) sum = Math.fround(sum + x);
            for (let c = 0; c < dv; c++) {
              let acc = 0;
              for (let j = 0; j < nk; j++) acc += e[j]! * inputs.v!.data[((b * Hkv + kh) * nk + j) * dv + c]!;
              out[((b * H + h) * nq + i) * dv + c] = acc / sum;
            }
          }
        }
      }
      return out;
    };
  const options = { layouts: ['bhsd'] as const, bias: false, past: false, spec: fc.constant(dense), numRuns: 300, seed: 5 };

  it('a kernel without max-subtraction passes on scores as drawn (maxLogit 0), and fails once they reach past 88.7', () => {
    expect(checkAttentionKernel(f32Kernel(false), { ...options, maxLogit: 0 }).ok).toBe(true);
    expect(checkAttentionKernel(f32Kernel(false), options).ok).toBe(false); // the default widens the scores
    const r = checkAttentionKernel(f32Kernel(false), { ...options, maxLogit: 400 });
    expect(r.ok).toBe(false);
    expect(r.report).toMatch(/kernel differs from the reference/);
  });

  it('the same kernel with max-subtraction passes with those scores (scores of size <= 400: f32 rounding 400 x 2^-24 per score)', () => {
    const r = checkAttentionKernel(f32Kernel(true), { ...options, maxLogit: 400 });
    expect(r.report).toBeUndefined();
  });
});
