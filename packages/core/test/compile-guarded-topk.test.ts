// compile on a guarded top-k blocks site (topk_blocks(block=32, k=3) over a dense baseline, budget 1e-3, summary
// block 32, 2 heads of 32, n = 320), the form sparsify now offers as guarded:
//   - wgsl: the WGSL guarded kernel, with the top-k codes in its data_codes binding (its numbers are checked on a
//     WebGPU adapter in backend-wgsl's guarded-data.gpu.test.ts);
//   - cpu: the guarded kernel, its key sets selected by the host (the leaf resolver, as for any data-dependent
//     spec). Run through backend-cpu's guarded kernel with the float64 reference's resolver, every output coordinate
//     is within the budget of the float64 dense reference plus float32 rounding, |y - ref| <= budget + 1e-5 +
//     1e-4 |ref|, on diffuse inputs (every row falls back; the unguarded top-k is off by more than the budget) and
//     on local ones (fewer than a quarter of the rows fall back).

import { compileAttention, type CpuTensor } from '@attnopt/backend-cpu';
import { attentionNode, attentionParams, dense, Graph, type MaskSpec, SplitMix64, tensorType, topkBlocks, Value } from '@attnopt/ir';
import { dataLeafResolver, referenceAttention } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';

const H = 2;
const D = 32;
const N = 320;
const BUDGET = 1e-3;
const ATOL = 1e-5;
const RTOL = 1e-4;
const SHAPE = [1, H, N, D];

function site() {
  const g = new Graph('guarded_topk');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', SHAPE))));
  const y = new Value('y', tensorType('f32', SHAPE));
  const params = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd' as const, spec: topkBlocks(32, 3), guard: { budget: BUDGET, blockSize: 32, baseline: dense } };
  const node = g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attention'));
  g.outputs.push(y);
  return { id: 'site0', node };
}

/**
 * diffuse: Q, K uniform in [-2, 2]; local: rotary-like q_i = k_i = 6 (cos w_f i, sin w_f i)_f, 8 geometric
 * frequencies (each twice), so q_i . k_j = 72 sum_f cos(w_f (i - j)) peaks at j = i. V uniform in [-1, 1].
 */
function inputs(family: 'diffuse' | 'local') {
  const rng = new SplitMix64(3);
  const draw = (a: number) => Float64Array.from({ length: H * N * D }, () => Math.fround(a * (2 * rng.nextFloat() - 1)));
  const [q, k, v] = [draw(2), draw(2), draw(1)];
  if (family === 'local') {
    for (let t = 0; t < H * N * D; t++) {
      const i = Math.floor(t / D) % N;
      const c = t % D;
      const w = 0.0015 * 1.6 ** ((c >> 1) % 8);
      q[t] = k[t] = Math.fround(6 * (c % 2 === 0 ? Math.cos(w * i) : Math.sin(w * i)));
    }
  }
  return { q, k, v };
}

describe('compile: a guarded top-k blocks site', () => {
  it('wgsl: the guarded kernel, the top-k codes bound as data_codes', () => {
    const m = compile(site(), { target: 'wgsl' }).manifest;
    expect(m.guardedAsBaseline).toBeUndefined();
    expect(m.spec).toBe('topk_blocks(block=32, k=3)');
    expect(m.guard).toMatchObject({ tier: 'guarded', budget: BUDGET, blockSize: 32, baseline: 'dense' });
    const attention = m.guard!.steps!.at(-1)!;
    expect(attention.bindings.map((b) => b.name)).toContain('data_codes');
    expect(attention.bindings.find((b) => b.name === 'data_codes')!.description).toMatch(/top-k key blocks: 0\/1 per/);
    expect(attention.bindings.find((b) => b.name === 'u')!.type).toMatch(/leaf0_q: u32, leaf0_k: u32/);
  });

  it('cpu: the guarded kernel, with the key block as its summary block', () => {
    const m = compile(site(), { target: 'cpu' }).manifest;
    expect(m.guardedAsBaseline).toBeUndefined();
    expect(m.guard).toMatchObject({ tier: 'guarded', budget: BUDGET, blockSize: 32, baseline: 'dense' });
  });

  for (const family of ['diffuse', 'local'] as const) {
    it(`cpu, ${family} inputs: within the budget of the dense reference, key sets from the host's resolver`, () => {
      const p = attentionParams(site().node);
      const x = inputs(family);
      const t64 = (data: Float64Array) => ({ shape: SHAPE, data });
      const ref = referenceAttention({ ...p, spec: dense, guard: undefined }, { q: t64(x.q), k: t64(x.k), v: t64(x.v) }).y.data;
      const cpu = (data: Float64Array): CpuTensor => ({ shape: SHAPE, data: Float32Array.from(data) });
      const head = (h: number) => ({ q: x.q.subarray(h * N * D, (h + 1) * N * D), k: x.k.subarray(h * N * D, (h + 1) * N * D), nq: N, nk: N, d: D, scale: p.scale });
      const run = compileAttention(p, { backend: 'js', guard: { epsilon: BUDGET, block: 32, modelMask: dense as MaskSpec } });
      const r = run.runGuarded({ q: cpu(x.q), k: cpu(x.k), v: cpu(x.v) }, { resolver: (_b, h) => dataLeafResolver(head(h)) });
      let over = 0;
      ref.forEach((w, i) => {
        if (!(Math.abs(r.y[i]! - w) <= BUDGET + ATOL + RTOL * Math.abs(w))) over++;
      });
      expect(over).toBe(0);
      // local attention: the chosen blocks hold the mass and the certificate shows it (the sparse path is what runs)
      if (family === 'local') expect(r.fallbackRows).toBeLessThan(r.rows / 4);
      if (family === 'diffuse') {
        expect(r.fallbackRows).toBe(r.rows);
        const unguarded = referenceAttention({ ...p, guard: undefined }, { q: t64(x.q), k: t64(x.k), v: t64(x.v) }).y.data;
        expect(Math.max(...unguarded.map((u, i) => Math.abs(u - ref[i]!)))).toBeGreaterThan(BUDGET);
      }
    });
  }
});
