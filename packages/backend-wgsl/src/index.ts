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
export { type MaskPredicate, maskPredicate } from './wgsl/mask-predicate.js';
export {
  type StorageDType,
  type KernelLimits,
  type KernelConfig,
  DEFAULT_LIMITS,
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
  dispatchPlan,
  attentionShape,
  blockLists,
  planAttention,
  prepareAttention,
  runAttention,
} from './attention.js';
export { type RuntimeFeatures, INSTALL_HINT, WgslCompileError, WgslRuntime, gpuEntryPoint } from './runtime.js';
