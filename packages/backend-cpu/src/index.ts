// @attnopt/backend-cpu: generated WebAssembly SIMD128 and JavaScript flash-attention kernels for every
// mask spec, on the calling thread or on worker threads with shared memory. Public API.

export { FunctionBuilder, ModuleBuilder, type ValType, sharedMemory } from './wasm/emitter.js';
export { type KernelShape, type AttendFn, MASKED, kernelCacheKey, wasmAttentionKernel, jsAttentionKernel, jsAttentionKernelSource } from './kernels.js';
export { maskPredicateSource, compileMaskPredicate, type KeepPredicate } from './mask-predicate.js';
export { type FullKernelShape, fullKernelShape, kernelBindings, scratchBytes, wasmGuardedAttentionKernel, guardMetadata, guardedKernelBindings } from './kernels.js';
export { EXP2_MAX_REL_ERROR } from './wasm/simd-math.js';
export { CpuWorkerPool, SharedWorkspace, type KernelCode, type KernelEntry, type PoolJob } from './pool.js';
export { type GuardOptions, GUARD_SUMMARIES, GUARD_ITEM, GUARD_ITEM_WORDS, CERTIFICATE_SLACK } from './guard/guard-shape.js';
export { jsGuardedKernelSource } from './guard/js-guard.js';
export {
  type CpuTensor,
  type CpuBoolTensor,
  type CpuAttentionInputs,
  type CpuKernelOptions,
  type CpuRunOptions,
  type CpuAttentionKernel,
  type GuardedResult,
  type GuardInfo,
  compileAttention,
} from './attention.js';
