// The CPU guarded kernel with past keys (a KV cache): the guarded test site's window(left=31) inside causal, both
// aligned to the past (query i at P + i), P = 200 cached keys and S = 120 new queries and keys (the 320 positions of
// the test families: the cache is their first 200). The kernel (wasm and js) runs on past ⊕ new keys; every output
// coordinate is within the budget of the float64 causal reference over the same keys plus float32 rounding
// (|y - ref| <= budget + 1e-5 + 1e-4 |ref|). On repeated spans (each query matches a key 99 back, outside the
// window) rows must fall back and the unguarded window is off by more than the budget; on local inputs (a topic
// per span of 32 keys) fewer than a quarter of the rows fall back. A kernel that placed the queries at i instead of
// P + i, or left the cache out of its summaries or its fallback, fails here.

import { compileAttention, type CpuTensor } from '@attnopt/backend-cpu';
import { type AttentionParams, causal, intersect, type MaskSpec, slidingWindow } from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import { ATOL, BUDGET, D, H, inputs, N, RTOL } from './helpers/guarded-kernel-site.js';

const P = 200;
const S = N - P;
const baseline = causal('past');
const params: AttentionParams = {
  numHeads: H,
  kvNumHeads: H,
  headDim: D,
  vHeadDim: D,
  scale: 1 / Math.sqrt(D),
  softcap: 0,
  layout: 'bhsd',
  spec: intersect(baseline, slidingWindow(31, 0, 'past')),
  guard: { budget: BUDGET, blockSize: 32, baseline },
};

/** Positions [from, to) of each head of a [1, H, N, D] tensor, as [1, H, to - from, D]. */
function rows(t: Float64Array, from: number, to: number): Float64Array {
  const out = new Float64Array(H * (to - from) * D);
  for (let h = 0; h < H; h++) out.set(t.subarray((h * N + from) * D, (h * N + to) * D), h * (to - from) * D);
  return out;
}

describe('compile: the CPU guarded kernel with past keys', () => {
  for (const family of ['natural', 'local', 'repeated'] as const) {
    it(`${family} inputs: within the budget of the causal reference over past ⊕ new keys`, () => {
      const t = inputs(family, 5);
      const tensor = (data: Float64Array, n: number): Tensor64 => ({ shape: [1, H, n, D], data });
      const x = { q: tensor(rows(t.q, P, N), S), k: tensor(rows(t.k, P, N), S), v: tensor(rows(t.v, P, N), S), pastKey: tensor(rows(t.k, 0, P), P), pastValue: tensor(rows(t.v, 0, P), P) };
      const ref = referenceAttention({ ...params, spec: baseline, guard: undefined }, x).y.data;
      const cpu = (a: Tensor64): CpuTensor => ({ shape: a.shape, data: Float32Array.from(a.data) });
      for (const backend of ['wasm', 'js'] as const) {
        const run = compileAttention(params, { backend, guard: { epsilon: BUDGET, block: 32, modelMask: baseline as MaskSpec } });
        const r = run.runGuarded({ q: cpu(x.q), k: cpu(x.k), v: cpu(x.v), pastKey: cpu(x.pastKey), pastValue: cpu(x.pastValue) });
        expect(r.y.length).toBe(H * S * D);
        let over = 0;
        ref.forEach((w, k) => {
          if (!(Math.abs(r.y[k]! - w) <= BUDGET + ATOL + RTOL * Math.abs(w))) over++;
        });
        console.log(`${backend}, ${family}, past ${P}: ${r.fallbackRows} of ${r.rows} rows fell back; ${over} coordinates over the budget`);
        expect(over).toBe(0);
        expect(r.rows).toBe(H * S);
        if (family === 'repeated') expect(r.fallbackRows).toBeGreaterThan(0);
        // local attention: the window at P + i holds the mass, so the sparse path runs (a window placed at i would
        // drop it and fall back on most rows)
        if (family === 'local') expect(r.fallbackRows).toBeLessThan(r.rows / 4);
      }
      if (family === 'repeated') {
        const unguarded = referenceAttention({ ...params, guard: undefined }, x).y.data;
        expect(Math.max(...unguarded.map((u, k) => Math.abs(u - ref[k]!)))).toBeGreaterThan(BUDGET);
      }
    });
  }
});
