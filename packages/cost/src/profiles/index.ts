// The shipped target profiles: this machine's CPU through onnxruntime (measured), attnopt's CPU backend
// (derived from the same measurements until the backend exists), and a generic WebGPU device (stated).

import type { TargetProfile } from '../profile.js';
import { thisMachineCpu } from './this-machine-cpu.js';

/** onnxruntime on this machine's CPU, 2 intra-op threads: measured by tools/src/profile/measure-cpu.ts. */
export const onnxruntimeCpuProfile: TargetProfile = thisMachineCpu;

/**
 * attnopt's CPU backend (fused, 64x64 tiles, empty tiles skipped) on this machine: not measured yet. It
 * assumes the fused kernel reaches onnxruntime's measured matmul and softmax rates and one launch per site.
 */
export const attnoptCpuProfile: TargetProfile = {
  ...thisMachineCpu,
  name: 'attnopt-cpu (this machine, derived)',
  target: 'attnopt-cpu',
  execution: 'fused-blocked',
  source: `derived from ${thisMachineCpu.name}: onnxruntime's matmul and softmax rates, one kernel per site; not measured`,
  tile: { blockQ: 64, blockK: 64 },
  runOverheadSeconds: 10e-6,
};

/**
 * A generic WebGPU device, stated not measured: 1 TFLOP/s fp32 sustained on tiled matmul (a mid-range
 * integrated or entry discrete GPU), 100 GB/s, 20 µs per dispatch, 100 µs per submitted plan.
 */
export const webgpuGenericProfile: TargetProfile = {
  name: 'webgpu (generic, stated)',
  target: 'webgpu',
  execution: 'fused-blocked',
  source: 'stated: 2 TFLOP/s peak, 1 TFLOP/s sustained on matmul, 100 GB/s, 20 µs per dispatch; replace with a measured profile',
  peakFlopsPerSecond: 2e12,
  matmul: [
    { size: 1e6, perSecond: 50e9 },
    { size: 1e9, perSecond: 1e12 },
  ],
  softmax: [{ size: 1e6, perSecond: 50e9 }],
  elementwise: { default: [{ size: 1e6, perSecond: 100e9 }] },
  bytesPerSecond: 100e9,
  opOverheadSeconds: 20e-6,
  runOverheadSeconds: 100e-6,
  tile: { blockQ: 64, blockK: 64 },
};

export const PROFILES: Readonly<Record<string, TargetProfile>> = {
  'onnxruntime-cpu': onnxruntimeCpuProfile,
  'attnopt-cpu': attnoptCpuProfile,
  webgpu: webgpuGenericProfile,
};
