// @attnopt/cost: FLOPs, bytes moved, peak memory and roofline time of an attention site per spec, layout
// and target profile. Public API of the package: import from here only.

export { attentionCost, type AttentionCost, type CostOptions } from './attention-cost.js';
export { guardCertificateCost, guardCertificateOps } from './guard.js';
export type { CallDims } from './shape.js';
export { type OpCost, timeOp } from './ops.js';
export { blockCounts, expectedPairs, pairsKept, type BlockCounts } from './work.js';
export {
  type Execution,
  type MachineInfo,
  rateAt,
  type RatePoint,
  type TargetKind,
  type TargetProfile,
  throughput,
  validateProfile,
  type WorkKind,
} from './profile.js';
export { attnoptCpuProfile, onnxruntimeCpuProfile, PROFILES, webgpuGenericProfile } from './profiles/index.js';
