/// <reference types="@webgpu/types" />
// Builds everything the browser example needs to run one generated attention kernel without the package:
// the WGSL, the packed uniforms per dispatch, the storage buffers in binding order, and the float64
// reference output to compare with. Pure: no device needed.

import { attentionShape, attentionUniforms, blockLists, DEFAULT_LIMITS, packBlocks, packUniforms, planAttention } from '@attnopt/backend-wgsl';
import { type AttentionParams, causal, SplitMix64 } from '@attnopt/ir';
import { referenceAttention } from '@attnopt/reference';

export interface ExampleKernel {
  readonly name: string;
  readonly description: string;
  readonly wgsl: string;
  readonly cacheKey: string;
  readonly workgroupSize: number;
  /** Storage buffers in binding order: element type and values. */
  readonly storage: readonly { name: string; type: 'f32' | 'u32' | 'i32'; data: number[]; readWrite: boolean }[];
  readonly uniformBinding: number;
  readonly dispatches: readonly { x: number; y: number; uniforms: number[] }[];
  readonly outputBinding: number;
  readonly expected: number[];
  readonly flops: number;
}

export function exampleKernel(n = 128, d = 64): ExampleKernel {
  const B = 1;
  const H = 4;
  const G = 2;
  const params: AttentionParams = { numHeads: H, kvNumHeads: G, headDim: d, vHeadDim: d, scale: 1 / Math.sqrt(d), softcap: 0, layout: 'bhsd', spec: causal() };
  const rng = new SplitMix64(7);
  const vals = (count: number) => Array.from({ length: count }, () => Math.fround(2 * rng.nextFloat() - 1));
  const q = { shape: [B, H, n, d], data: Float64Array.from(vals(B * H * n * d)) };
  const k = { shape: [B, G, n, d], data: Float64Array.from(vals(B * G * n * d)) };
  const v = { shape: [B, G, n, d], data: Float64Array.from(vals(B * G * n * d)) };
  const inputs = { q, k, v };
  const plan = planAttention(params, inputs, { dtype: 'f32', limits: DEFAULT_LIMITS, subgroups: false });
  const shape = attentionShape(params, inputs);
  const lists = blockLists(params.spec as never, { batch: B, nq: n, nk: n, past: 0, hasPast: false }, plan.config.blockQ, plan.config.blockK);
  const packed = packBlocks(lists);
  const common = attentionUniforms(plan, params, shape, packed);
  const expected = referenceAttention(params, inputs).y.data;
  return {
    name: plan.program.name,
    description: `causal GQA attention, batch ${B}, ${H} query heads / ${G} KV heads, n = ${n}, head dim ${d}, f32`,
    wgsl: plan.program.code,
    cacheKey: plan.program.cacheKey,
    workgroupSize: plan.program.workgroupSize,
    storage: [
      { name: 'Q', type: 'f32', data: [...q.data], readWrite: false },
      { name: 'K', type: 'f32', data: [...k.data], readWrite: false },
      { name: 'V', type: 'f32', data: [...v.data], readWrite: false },
      { name: 'Y', type: 'f32', data: new Array<number>(expected.length).fill(0), readWrite: true },
      { name: 'blocks', type: 'u32', data: [...packed.data], readWrite: false },
    ],
    uniformBinding: plan.program.uniformBinding,
    dispatches: plan.dispatches.map((dp) => ({
      x: dp.x,
      y: dp.y,
      uniforms: [...new Uint32Array(packUniforms(plan.program.uniforms, { ...common, wg_base: dp.base, wg_per_row: dp.x }))],
    })),
    outputBinding: 3,
    expected: [...expected],
    flops: 4 * B * H * d * ((n * (n + 1)) / 2),
  };
}
