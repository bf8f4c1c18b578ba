// compile on a guarded site (window(left=31) inside causal, budget 1e-3, summary block 32, 2 heads of 32, n = 320)
// emits the target's guarded kernel and a manifest recording the tier, the budget, the summary block, the
// baseline and the summaries:
//   - cpu: the WebAssembly module and its JavaScript twin are the code backend-cpu's guarded kernel runs for this
//     site (same shape and budget: the same cache key and the same bytes). Run through it, on natural inputs and
//     on repeated spans (each query matches a key about 100 positions back), with and without an ALiBi key bias
//     [1, H, 1, n], and on local inputs (a topic per span of 32 keys), every output coordinate is within the budget of the float64 causal reference plus float32
//     rounding, |y - ref| <= budget + 1e-5 + 1e-4 |ref|, and the fallback count it reports reaches every (head,
//     row) whose true dropped mass m times V's range breaks the budget (with the certificate's float32 rounding
//     m_hat >= m (1 - 1e-6) - 1e-7); on repeated spans that is not 0 and the unguarded sparse form is off by more
//     than the budget; on local inputs fewer than a quarter of the rows fall back (the sparse path is what runs).
//   - wgsl: the three programs of the guarded pass (the attention program as backend-wgsl generates it for the site);
//     a site the WGSL guarded kernel does not cover (layout bshd, f16 storage) gets its exact baseline and says why.

import { compileAttention, type CpuTensor, jsGuardedKernelSource, kernelCacheKey, wasmGuardedAttentionKernel } from '@attnopt/backend-cpu';
import { guardedAttentionProgram } from '@attnopt/backend-wgsl';
import { attentionParams, causal, intersect, lshBuckets, type MaskSpec, printSpec } from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';
import { alibi, ATOL, BUDGET, D, H, inputs, mustFallBack, N, RTOL, site, sparse } from './helpers/guarded-kernel-site.js';

describe('compile: a guarded site on the CPU', () => {
  it('emits the guarded kernel; the manifest records tier, budget, summary block, baseline and summaries', () => {
    const kernel = compile(site({ guarded: true, bias: true }), { target: 'cpu' });
    const m = kernel.manifest;
    expect(m.guardedAsBaseline).toBeUndefined();
    expect(m.spec).toBe(printSpec(intersect(causal(), sparse)));
    expect(m.entryPoint).toBe('attendGuarded');
    expect(m.guard).toMatchObject({ tier: 'guarded', budget: BUDGET, blockSize: 32, baseline: 'causal' });
    expect([...m.guard!.summaries].sort()).toEqual(['key-center-radius', 'key-minmax-per-channel', 'max-bias', 'value-range']);
    expect(m.guard!.fallback).toMatch(/flagged/);
    expect(m.computes).toMatch(/guarded: .* exceeds 0\.001 is recomputed over the keys causal keeps/);
    expect(kernel.files.map((f) => f.name)).toEqual(['site0.wasm', 'site0.attend.js', 'site0.keep.js', 'site0.baseline.keep.js']);
    expect(m.bindings.map((b) => b.name)).toEqual(['env.memory', 'item', 'scratch', 'entries', 'segments', 'cert']);
  });

  for (const bias of [false, true]) {
    for (const family of ['natural', 'local', 'repeated'] as const) {
      it(`${family} inputs${bias ? ', ALiBi key bias' : ''}: the emitted kernel (wasm and js) stays within the budget and reports its fallback`, () => {
        const { node } = site({ guarded: true, bias });
        const kernel = compile({ id: 'site0', node }, { target: 'cpu' });
        const m = kernel.manifest;
        const file = (name: string) => kernel.files.find((f) => f.name === name)!.contents;
        const p = attentionParams(node);
        const t = inputs(family, 11);
        const b = alibi();
        const shape = [1, H, N, D];
        const t64 = (data: Float64Array): Tensor64 => ({ shape, data });
        const ref = referenceAttention({ ...p, spec: causal(), guard: undefined, scoresMode: 'softmax' }, { q: t64(t.q), k: t64(t.k), v: t64(t.v), ...(bias ? { bias: { shape: [1, H, 1, N], data: b } } : {}) });
        const lowerBound = mustFallBack(ref.scores!, t.v);
        const cpu = (data: Float64Array, s = shape): CpuTensor => ({ shape: s, data: Float32Array.from(data) });
        for (const backend of ['wasm', 'js'] as const) {
          const run = compileAttention(p, { backend, guard: { epsilon: m.guard!.budget, block: m.guard!.blockSize, modelMask: causal() as MaskSpec } });
          // the files are the code this kernel runs: generated from the same shape and budget
          expect(`${kernelCacheKey('wasm', run.shape)}-guard${BUDGET}`).toBe(m.cacheKey);
          expect(file('site0.wasm')).toEqual(wasmGuardedAttentionKernel(run.shape, BUDGET).bytes);
          expect(file('site0.attend.js')).toBe(jsGuardedKernelSource(run.shape, D, D, BUDGET));
          const r = run.runGuarded({ q: cpu(t.q), k: cpu(t.k), v: cpu(t.v), ...(bias ? { bias: cpu(b, [1, H, 1, N]) } : {}) });
          let over = 0;
          ref.y.data.forEach((w, x) => {
            if (!(Math.abs(r.y[x]! - w) <= BUDGET + ATOL + RTOL * Math.abs(w))) over++;
          });
          expect(over).toBe(0);
          console.log(`${backend}, ${family}${bias ? ' + ALiBi' : ''}: ${r.fallbackRows} of ${r.rows} rows fell back (${r.recomputedRows} recomputed); at least ${lowerBound} must`);
          expect(r.rows).toBe(H * N);
          expect(r.fallbackRows).toBeGreaterThanOrEqual(lowerBound);
          expect(r.recomputedRows).toBeGreaterThanOrEqual(r.fallbackRows);
          // local attention: the window holds the mass and the certificate shows it for most rows
          if (family === 'local') expect(r.fallbackRows).toBeLessThan(r.rows / 4);
        }
        if (family === 'repeated') {
          expect(lowerBound).toBeGreaterThan(0);
          const unguarded = referenceAttention({ ...p, guard: undefined }, { q: t64(t.q), k: t64(t.k), v: t64(t.v), ...(bias ? { bias: { shape: [1, H, 1, N], data: b } } : {}) }).y.data;
          expect(Math.max(...unguarded.map((u, x) => Math.abs(u - ref.y.data[x]!)))).toBeGreaterThan(BUDGET);
        }
      });
    }
  }
});

describe('compile: a guarded site in WGSL', () => {
  it('emits the three programs of the guarded pass; the attention program is the backend\'s for this site', () => {
    const kernel = compile(site({ guarded: true, bias: true }), { target: 'wgsl' });
    const m = kernel.manifest;
    expect(m.guardedAsBaseline).toBeUndefined();
    expect(m.spec).toBe(printSpec(sparse));
    expect(m.guard).toMatchObject({ tier: 'guarded', budget: BUDGET, blockSize: 32, baseline: 'causal' });
    expect(m.guard!.steps!.map((s) => s.program)).toEqual(['guard_summaries', 'guard_value_range', 'guarded_attention']);
    expect(kernel.files.map((f) => f.name)).toEqual(['site0.guard_summaries.wgsl', 'site0.guard_value_range.wgsl', 'site0.wgsl']);
    const program = guardedAttentionProgram({ spec: sparse, modelMask: causal(), headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, epsilon: BUDGET, bias: true, kvLength: false });
    expect(kernel.files[2]!.contents).toBe(program.code);
    expect(m.cacheKey).toBe(program.cacheKey);
    expect(m.bindings.map((b) => b.name)).toContain('COUNTER');
    expect(m.bindings.map((b) => b.name)).toContain('BIAS');
  });

  it('the WGSL guarded kernel covers every layout, past keys and f16 storage', () => {
    // any layout (strides as uniforms)
    const bshd = compile(site({ guarded: true, layout: 'bshd' }), { target: 'wgsl' });
    expect(bshd.manifest.guardedAsBaseline).toBeUndefined();
    expect(bshd.manifest.guard).toMatchObject({ tier: 'guarded', budget: BUDGET });
    expect(bshd.manifest.bindings.find((b) => b.name === 'u')!.type).toMatch(/q_base: u32, q_sb: u32, q_sh: u32, q_ss: u32/);
    // and past keys (the host hands the kernel the present keys and the cached count as u.past)
    const cached = compile(site({ guarded: true, past: true }), { target: 'wgsl' });
    expect(cached.manifest.guardedAsBaseline).toBeUndefined();
    expect(cached.manifest.bindings.find((b) => b.name === 'u')!.type).toMatch(/past: i32/);
    expect(cached.manifest.bindings.find((b) => b.name === 'K')!.description).toMatch(/present keys/);
    // and f16 storage (the programs enable f16)
    const f16 = compile(site({ guarded: true, dtype: 'f16' }), { target: 'wgsl' });
    expect(f16.manifest.guardedAsBaseline).toBeUndefined();
    expect(f16.manifest.dtype).toBe('f16');
    expect(f16.files.every((f) => String(f.contents).startsWith('enable f16;'))).toBe(true);
    expect(f16.manifest.features).toContain('shader-f16');
    // the CPU guarded kernel takes any layout
    expect(compile(site({ guarded: true, layout: 'bshd' }), { target: 'cpu' }).manifest.guard).toBeDefined();
  });

  it('a guard whose baseline is no fixed key set gets the exact baseline on both targets, and the manifest says why', () => {
    const { node } = site({ guarded: true });
    const p = attentionParams(node);
    const lsh = lshBuckets(2, 4, 1);
    node.attrs.set('guardBaseline', { type: 'spec', value: lsh });
    expect(attentionParams(node).guard!.baseline).toEqual(lsh);
    for (const target of ['cpu', 'wgsl'] as const) {
      const m = compile({ id: 'site0', node }, { target }).manifest;
      expect(m.guard).toBeUndefined();
      expect(m.guardedAsBaseline).toMatch(/its baseline lsh\(hashes=2, buckets=4, seed=1\) is not a fixed key set a falling-back row can attend/);
    }
    expect(p.guard!.baseline).toEqual(causal());
  });
});

describe('compile: an unguarded site', () => {
  for (const target of ['cpu', 'wgsl'] as const) {
    it(`${target}: keeps its sparse spec, no guard and no note`, () => {
      const kernel = compile(site({ guarded: false }), { target });
      expect(kernel.manifest.spec).toBe(printSpec(sparse));
      expect(kernel.manifest.guard).toBeUndefined();
      expect(kernel.manifest.guardedAsBaseline).toBeUndefined();
    });
  }
});
