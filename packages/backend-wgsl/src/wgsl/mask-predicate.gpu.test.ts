// The generated WGSL keep predicate evaluated on the device (lavapipe without a GPU) for every (i, j) of small
// problems, against the reference row sets. Data-dependent leaves read device buffers filled by the runtime:
// attention.gpu.test.ts checks those through whole kernels.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { intervals, type MaskDims, type MaskSpec, queryOffset, rowKeys, globalTokens, slidingWindow, union, blockSparse, difference } from '@attnopt/ir';
import { maskSpecArbitrary } from '@attnopt/properties';
import type { WgslRuntime } from '../runtime.js';
import { testRuntime } from '../testing/gpu.js';
import { maskPredicate } from './mask-predicate.js';

/** keep(i, j) of `spec` for every (i, j), row-major, as computed by the generated WGSL. */
async function deviceMask(rt: WgslRuntime, spec: MaskSpec, dims: MaskDims): Promise<Uint32Array> {
  const pred = maskPredicate(spec);
  const code = [
    pred.always ? 'fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool { return true; }' : pred.code,
    'struct Dims { nq: u32, nk: u32, off_br: i32, past: i32 }',
    '@group(0) @binding(0) var<storage, read_write> kept: array<u32>;',
    '@group(0) @binding(1) var<uniform> dims: Dims;',
    '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {',
    '  if (g.x >= dims.nq * dims.nk) { return; }',
    '  kept[g.x] = select(0u, 1u, keep(i32(g.x / dims.nk), i32(g.x % dims.nk), dims.off_br, dims.past, 0u, 0u));',
    '}',
  ].join('\n');
  const device = rt.device;
  const module = device.createShaderModule({ code });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (errors.length > 0) throw new Error(`keep predicate of ${JSON.stringify(spec)}: ${errors.map((m) => m.message).join('; ')}\n${code}`);
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const count = dims.nq * dims.nk;
  const kept = device.createBuffer({ size: count * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const uniforms = new Int32Array([dims.nq, dims.nk, queryOffset('bottom-right', dims), queryOffset('past', dims)]);
  const ubuf = rt.upload(uniforms, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: kept } },
      { binding: 1, resource: { buffer: ubuf } },
    ],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(Math.ceil(count / 64));
  pass.end();
  device.queue.submit([enc.finish()]);
  const out = new Uint32Array(await rt.download(kept, count * 4));
  kept.destroy();
  ubuf.destroy();
  return out;
}

async function expectReferenceMask(rt: WgslRuntime, spec: MaskSpec, dims: MaskDims): Promise<void> {
  const got = await deviceMask(rt, spec, dims);
  for (let i = 0; i < dims.nq; i++) {
    const row = rowKeys(spec, i, dims);
    for (let j = 0; j < dims.nk; j++) {
      if ((got[i * dims.nk + j] === 1) !== intervals.contains(row, j)) throw new Error(`${JSON.stringify(spec)} at ${JSON.stringify(dims)}: (${i}, ${j})`);
    }
  }
}

describe('WGSL keep predicate vs the reference row sets', () => {
  it('known specs: a shared global table, block layout, union and difference', async () => {
    const rt = await testRuntime();
    const dims = { nq: 9, nk: 12, past: 2 };
    await expectReferenceMask(rt, union(slidingWindow(2, 1, 'bottom-right'), globalTokens([0, 7], 'past')), dims);
    await expectReferenceMask(rt, difference(blockSparse(4, 3, [[0, 2], [], [3]]), slidingWindow(1, 0, 'past')), dims);
    expect(maskPredicate(globalTokens([1, 4])).code.match(/const global\d+_tokens/g)).toHaveLength(1);
  });

  it('for any index spec and dims, keeps exactly the reference keys on every (i, j)', async () => {
    const rt = await testRuntime();
    await fc.assert(
      fc.asyncProperty(
        maskSpecArbitrary({ maxLen: 12, dataDependent: false }),
        fc.record({ nq: fc.integer({ min: 1, max: 12 }), nk: fc.integer({ min: 1, max: 12 }), past: fc.integer({ min: 0, max: 4 }) }),
        (spec, dims) => expectReferenceMask(rt, spec, dims),
      ),
      { numRuns: 60, seed: 16 },
    );
  });
});
