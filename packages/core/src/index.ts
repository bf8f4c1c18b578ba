// @attnopt/core: the library API for other compilers. Public API.

export { type AttnoptModel, loadOnnx as importOnnx, saveOnnx as exportOnnx, writeOnnx } from './model.js';
export { recognize, type RecognizeResult } from './recognize.js';
export { inspectModel, type InspectReport, type InspectSite } from './inspect.js';
export { attentionSites } from '@attnopt/passes';
export * from './calibrate/index.js';
export { optimize, type OptimizeOptions, type OptimizeResult, type OptimizedSite, CERTIFIED_METADATA } from './optimize.js';
export { verifyModels, certifiedBound, type VerifyReport, type OutputComparison, type VerifyOptions } from './verify.js';
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
export {
  decide,
  describeTried,
  explain,
  explainDecisions,
  type DecideResult,
  type Explanation,
  type SiteExplanation,
  type SitePlan,
} from './explain.js';
export { buildReport, renderReport, type ReportData, type ReportOptions } from './report/index.js';
