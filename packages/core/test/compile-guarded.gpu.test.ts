// codegen's guarded WGSL kernel on a real WebGPU adapter (lavapipe without a GPU; the test FAILS without one):
// the three files compile into compute pipelines, and the guarded pass they make (run through backend-wgsl's
// runGuardedAttention, whose attention program compile-guarded.test.ts shows is the emitted one) stays within the
// budget of the float64 causal reference, |y - ref| <= budget + 1e-5 + 1e-4 |ref| (f32 storage and arithmetic), on
// local inputs and repeated spans, with and without an ALiBi key bias (given to the kernel as the site declares it,
// [1, H, 1, n], read with row stride 0: nothing expands it to n x n), and its fallback counter reaches every (head, row) whose true dropped mass times
// V's range breaks the budget (not 0 on repeated spans).

import { runGuardedAttention, WgslRuntime, type WgslProgram } from '@attnopt/backend-wgsl';
import { attentionParams, causal, type MaskSpec } from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../src/index.js';
import { alibi, ATOL, BUDGET, D, H, inputs, mustFallBack, N, RTOL, site } from './helpers/guarded-kernel-site.js';

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await WgslRuntime.create();
});

describe('codegen: the guarded WGSL kernel on the device', () => {
  it('its three programs compile into pipelines', async () => {
    const kernel = compile(site({ guarded: true, bias: true }), { target: 'wgsl' });
    for (const step of kernel.manifest.guard!.steps!) {
      const code = String(kernel.files.find((f) => f.name === step.file)!.contents);
      const program = { name: step.program, code, cacheKey: `codegen:${step.file}`, features: [] } as unknown as WgslProgram;
      const errors = (await rt.compilationMessages(program)).filter((m) => m.type === 'error');
      expect(errors.map((m) => m.message)).toEqual([]);
      await expect(rt.pipeline(program)).resolves.toBeDefined();
    }
  });

  for (const bias of [false, true]) {
    for (const family of ['local', 'repeated'] as const) {
      it(`${family} inputs${bias ? ', ALiBi key bias' : ''}: within the budget, fallback counted`, async () => {
        const { node } = site({ guarded: true, bias });
        const m = compile({ id: 'site0', node }, { target: 'wgsl' }).manifest;
        const p = attentionParams(node);
        const t = inputs(family, 5);
        const b = alibi();
        const shape = [1, H, N, D];
        const t64 = (data: Float64Array): Tensor64 => ({ shape, data });
        const ref = referenceAttention({ ...p, spec: causal(), guard: undefined, scoresMode: 'softmax' }, { q: t64(t.q), k: t64(t.k), v: t64(t.v), ...(bias ? { bias: { shape: [1, H, 1, N], data: b } } : {}) });
        const f32 = (data: Float64Array) => ({ shape, data: Float32Array.from(data) });
        // the key bias as the site declares it, [1, H, 1, N]: H · N values, read with bias_si = 0
        if (bias) expect(m.shapes.bias).toBe(`[1, ${H}, 1, ${N}]`);
        const keyBias = { shape: [1, H, 1, N], data: Float32Array.from(b) };
        const r = await runGuardedAttention(rt, p, { q: f32(t.q), k: f32(t.k), v: f32(t.v), ...(bias ? { bias: keyBias } : {}) }, {
          epsilon: m.guard!.budget,
          block: m.guard!.blockSize,
          modelMask: causal() as MaskSpec,
        });
        let over = 0;
        ref.y.data.forEach((w, x) => {
          if (!(Math.abs(r.y[x]! - w) <= BUDGET + ATOL + RTOL * Math.abs(w))) over++;
        });
        expect(over).toBe(0);
        const lowerBound = mustFallBack(ref.scores!, t.v);
        console.log(`wgsl, ${family}${bias ? ' + ALiBi' : ''}: ${r.fallbackRows} of ${r.rows} rows fell back; at least ${lowerBound} must`);
        expect(r.rows).toBe(H * N);
        expect(r.fallbackRows).toBeGreaterThanOrEqual(lowerBound);
        if (family === 'repeated') expect(lowerBound).toBeGreaterThan(0);
        else expect(r.fallbackRows).toBeLessThan(r.rows / 4);
      });
    }
  }
});
