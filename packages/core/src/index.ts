// @attnopt/core: the library API for other compilers. Public API.

export { type AttnoptModel, loadOnnx as importOnnx, saveOnnx as exportOnnx, writeOnnx } from './model.js';
export { recognize, type RecognizeResult } from './recognize.js';
export { inspectModel, type InspectReport, type InspectSite } from './inspect.js';
export { attentionSites } from '@attnopt/passes';
export * from './calibrate/index.js';
export { optimize, type OptimizeOptions, type OptimizeResult, type OptimizedSite, CERTIFIED_METADATA } from './optimize.js';
export { verifyModels, certifiedBound, type VerifyReport, type OutputComparison, type VerifyOptions } from './verify.js';
