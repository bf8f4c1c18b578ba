// @attnopt/backend-wgsl: WGSL generation, dispatch plans and a WebGPU runtime. Public API of the package.

export {
  type UniformType,
  type UniformField,
  type StorageBinding,
  type WgslHelper,
  type WgslProgram,
  HELPERS,
  ShaderBuilder,
  packUniforms,
} from './wgsl/builder.js';
export { type MaskPredicate, dataLeafUniforms, maskPredicate } from './wgsl/mask-predicate.js';
export {
  type StorageDType,
  type KernelLimits,
  type KernelConfig,
  DEFAULT_LIMITS,
  DEFAULT_WORKGROUP_STORAGE,
  chooseTiling,
  kernelConfig,
  attentionProgram,
} from './attention-program.js';
export {
  type HostTensor,
  type WgslAttentionInputs,
  type AttentionRunOptions,
  type Dispatch,
  type AttentionShape,
  type BlockLists,
  type AttentionPlan,
  type PreparedAttention,
  type DeviceInputs,
  type Strides,
  dispatchPlan,
  attentionShape,
  attentionUniforms,
  blockLists,
  packBlocks,
  planAttention,
  prepareAttention,
  runAttention,
} from './attention.js';
export { type RuntimeFeatures, INSTALL_HINT, WgslCompileError, WgslRuntime, gpuEntryPoint } from './runtime.js';
export { type KernelStep, type EncodedSteps, encodeSteps, runSteps } from './sequence.js';
export { type Operand, contiguous, shared, transpose, operandUniforms } from './kernels/operand.js';
export { type ElementType, matmulProgram } from './kernels/matmul.js';
export { softmaxRowsProgram } from './kernels/softmax-rows.js';
export { rowDivideProgram } from './kernels/row-divide.js';
export { performerFeaturesProgram } from './kernels/performer-features.js';
export { lshHashProgram, lshChunkProgram } from './kernels/lsh.js';
export { prepareLowRank, segmentMeanMatrix } from './low-rank.js';
export { type PreparedDataLeaves, prepareDataLeaves } from './data-leaves.js';
export {
  type WgslGuardOptions,
  type WgslGuardedInputs,
  type WgslGuardedResult,
  type WgslGuardInfo,
  WGSL_CERTIFICATE_SLACK,
  guardSegments,
  guardSummariesProgram,
  guardValueRangeProgram,
  guardedAttentionProgram,
  guardInfo,
  prepareGuardedAttention,
  type PreparedGuardedAttention,
  runGuardedAttention,
} from './guarded.js';
