// Kernel sequences: several generated programs dispatched in order in one compute pass (WebGPU orders the
// dispatches of a pass and makes each one's storage writes visible to the next). Every step's grid is
// split into 2-D dispatches within maxComputeWorkgroupsPerDimension; each dispatch gets its own uniform
// block with `wg_base` (first workgroup) and `wg_per_row` (workgroups per row of the 2-D grid).

import type { WgslRuntime } from './runtime.js';
import { packUniforms, type WgslProgram } from './wgsl/builder.js';

/** One dispatch of a split grid: workgroups [base, base + x * y). */
export interface Dispatch {
  readonly base: number;
  readonly x: number;
  readonly y: number;
}

/** Covers `total` workgroups with 2-D dispatches of at most `maxPerDim` per dimension (several when needed). */
export function dispatchPlan(total: number, maxPerDim: number): Dispatch[] {
  if (total === 0) return [];
  const x = Math.min(total, maxPerDim);
  const rows = Math.ceil(total / x);
  const out: Dispatch[] = [];
  for (let r = 0; r < rows; r += maxPerDim) {
    out.push({ base: r * x, x, y: Math.min(maxPerDim, rows - r) });
  }
  return out;
}

/** A program, its storage buffers in binding order, its uniforms (less wg_base / wg_per_row) and its grid. */
export interface KernelStep {
  readonly program: WgslProgram;
  readonly storage: readonly GPUBuffer[];
  readonly uniforms: Readonly<Record<string, number>>;
  readonly workgroups: number;
}

/** Steps with pipelines and bind groups made: record them into a pass as often as wanted. */
export interface EncodedSteps {
  readonly dispatches: number;
  record(pass: GPUComputePassEncoder): void;
}

/**
 * Compiles (cached) and binds every step; uniform buffers go to `owned` for the caller to release. Grids are
 * split for `maxPerDim` workgroups per dimension (default: the device's limit).
 */
export async function encodeSteps(
  rt: WgslRuntime,
  steps: readonly KernelStep[],
  owned: GPUBuffer[],
  maxPerDim: number = rt.limits.maxComputeWorkgroupsPerDimension,
): Promise<EncodedSteps> {
  const encoded = await Promise.all(
    steps.map(async (step) => {
      const pipeline = await rt.pipeline(step.program);
      const layout = pipeline.getBindGroupLayout(0);
      const groups = dispatchPlan(step.workgroups, maxPerDim).map((d) => {
        const ub = rt.upload(
          new Uint8Array(packUniforms(step.program.uniforms, { ...step.uniforms, wg_base: d.base, wg_per_row: d.x })),
          GPUBufferUsage.UNIFORM,
        );
        owned.push(ub);
        const entries: GPUBindGroupEntry[] = step.storage.map((buffer, binding) => ({ binding, resource: { buffer } }));
        entries.push({ binding: step.program.uniformBinding, resource: { buffer: ub } });
        return { d, group: rt.device.createBindGroup({ layout, entries }) };
      });
      return { pipeline, groups };
    }),
  );
  return {
    dispatches: encoded.reduce((n, e) => n + e.groups.length, 0),
    record(pass) {
      for (const { pipeline, groups } of encoded) {
        pass.setPipeline(pipeline);
        for (const { d, group } of groups) {
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(d.x, d.y);
        }
      }
    },
  };
}

/** Runs encoded steps in one compute pass and waits for the queue. */
export async function runSteps(rt: WgslRuntime, label: string, ...parts: readonly EncodedSteps[]): Promise<void> {
  const enc = rt.device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  for (const p of parts) p.record(pass);
  pass.end();
  rt.device.queue.submit([enc.finish()]);
  await rt.device.queue.onSubmittedWorkDone();
}
