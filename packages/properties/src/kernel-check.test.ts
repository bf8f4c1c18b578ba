// checkAttentionKernel on a correct float32 kernel (the reference with its output rounded to float32: error
// <= 2^-24 |y| << rtol 1e-4) and on two buggy ones, which must fail with a shrunk counterexample.
import { describe, expect, it } from 'vitest';
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
