// @attnopt/core: the library API for other compilers. Public API.

// The IR types a caller meets in these results (the whole IR is @attnopt/ir).
export {
  type Graph,
  type Node,
  type Value,
  type AttentionParams,
  type AttentionSpec,
  type MaskSpec,
  type DType,
  attentionParams,
  printSpec,
  parseSpec,
  printGraph,
  parseGraph,
} from '@attnopt/ir';
// Writing a file so readers see the old content or the complete new one (the CLI's outputs).
export { AtomicFile, OnnxImportError } from '@attnopt/onnx';
export { type AttnoptModel, loadModel, modelOpset, saveModel, writeModel } from './model.js';
export { modelFiles } from './model-files.js';
export { runMemory, type RunMemory } from './run-memory.js';
export { recognize, type RecognizeResult } from './recognize.js';
export { inspectModel, type InspectReport, type InspectSite } from './inspect.js';
export {
  attentionSoftmaxes,
  FUSED_ATTENTION_OPS,
  isFusedAttention,
  looksLikeAttention,
  LAYOUT_ONLY_OPS,
  noSitesReason,
  QDQ_OPS,
  watchMisses,
  type AttentionMiss,
  type MissWatch,
} from './misses.js';
export { attentionSites } from '@attnopt/passes';
export * from './calibrate/index.js';
export {
  optimize,
  type OptimizeOptions,
  type OptimizeResult,
  type OptimizedSite,
  type OptimizedGroup,
  CERTIFIED_METADATA,
  GUARANTEES_METADATA,
  type GuaranteesMetadata,
  type SiteGuarantee,
} from './optimize.js';
export { DECIDE_STAGES, OPTIMIZE_STAGES } from './pipeline.js';
// Rewrites timed against the sites as written before they stay (DecideOptions.measure).
export { MEASURED_GAIN, MEASURED_SAMPLES } from './measure/measure-sites.js';
export { onnxruntimeTimer, type SitePair, type SiteTimer, type SiteTiming, type TimerLimits } from './measure/site-timer.js';
export type { DecodeStep, MeasuredTime } from '@attnopt/passes';
export { decide, type DecideOptions, type DecideResult, type RelativeBudget, type GroupPlan, type SitePlan } from './decide.js';
export { type GuardFallbackRate, measureGuardFallback } from './guard-fallback.js';
export { verifyModels, certifiedBound, DEFAULT_TOLERANCE, type VerifyReport, type OutputComparison, type VerifyOptions, type VerifyThresholds } from './verify.js';
export { nextIdBits, targetIds, VERIFY_METRICS, type BitsSum, type VerifyMetric } from './bits-per-byte.js';
export { analyze, type AnalyzeOptions, type AnalyzeResult, type SiteFacts } from './analyze.js';
export {
  compile,
  type CompileOptions,
  type CompileSite,
  type CompileTarget,
  type CompiledKernel,
  type KernelBinding,
  type KernelFile,
  type KernelManifestEntry,
} from './compile.js';
export { describeTried, explain, explainDecisions, type Explanation, type SiteExplanation } from './explain.js';
export { buildReport, renderReport, type ReportData, type ReportOptions } from './report/index.js';
export {
  headRoleLabel,
  headRoles,
  headRolesText,
  modelHeadRoles,
  siteHeadRoles,
  HeadRoleAccumulator,
  type HeadRole,
  type HeadRoleOptions,
  type HeadRoleResult,
  type HeadRoleStats,
  type SiteHeadRoles,
} from './head-roles.js';
