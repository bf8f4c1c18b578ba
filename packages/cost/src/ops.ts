// One kernel's work and its roofline time; a site's cost is the sum over the kernels its target runs.

import { type TargetProfile, throughput } from './profile.js';

/** One kernel (an ONNX node of the lowered graph, or a fused kernel) and what it does. */
export interface OpCost {
  /** The ONNX op type, or a fused kernel's name. */
  readonly op: string;
  /** What it computes, in words (e.g. "Q Kᵀ", "keep-mask"). */
  readonly what: string;
  /** Matrix-multiply FLOPs (multiply-add = 2). */
  readonly flops: number;
  /** Softmax work in FLOPs (about 5 per score: max, subtract, exp, sum, divide). */
  readonly softmaxFlops: number;
  /** Elements a softmax reads (rates are measured per element). */
  readonly softmaxElements: number;
  /** Bytes read and written. */
  readonly bytes: number;
  /** Other (elementwise, hashing, sorting) work in operations: counted, timed through `bytes`. */
  readonly otherOps: number;
  /** Roofline time: max(compute, memory) + the profile's per-op overhead (s). */
  readonly seconds: number;
}

export type OpWork = Omit<OpCost, 'seconds'>;

export const work = (op: string, what: string, w: Partial<Omit<OpWork, 'op' | 'what'>>): OpWork => ({
  op,
  what,
  flops: w.flops ?? 0,
  softmaxFlops: w.softmaxFlops ?? 0,
  softmaxElements: w.softmaxElements ?? 0,
  bytes: w.bytes ?? 0,
  otherOps: w.otherOps ?? 0,
});

/**
 * Roofline time of one kernel: max(matmul FLOPs / matmul rate + softmax elements / softmax rate,
 * bytes / bandwidth) + per-op overhead. Elementwise kernels (no FLOPs, no softmax) are timed by the
 * profile's measured bytes/s for their op type, which already includes their arithmetic.
 */
export function timeOp(profile: TargetProfile, w: OpWork): OpCost {
  let compute = 0;
  if (w.flops > 0) compute += w.flops / throughput(profile, 'matmul', w.flops);
  if (w.softmaxElements > 0) compute += w.softmaxElements / throughput(profile, 'softmax', w.softmaxElements);
  const isElementwise = w.flops === 0 && w.softmaxElements === 0;
  const memory = isElementwise
    ? w.bytes / throughput(profile, 'elementwise', w.bytes, w.op)
    : w.bytes / profile.bytesPerSecond;
  return { ...w, seconds: Math.max(compute, memory) + profile.opOverheadSeconds };
}
