// @attnopt/passes: recognize, analyze, sparsify, lower. Public API.

export { liftSite, siteOrigin, SITE_ORIGIN, LIFT_RECORD, type LiftRecord, type SiteMatch, type SiteOrigin } from './recognize/lift.js';
export { unliftSite, unliftBlocker } from './recognize/unlift.js';
export { DECOMPOSED_RULES, decomposedAttention, DECOMPOSED_ATTENTION } from './recognize/decomposed/index.js';
export {
  FUSED_RULES,
  onnxAttentionRule,
  msAttentionRule,
  multiHeadAttentionRule,
  groupQueryAttentionRule,
} from './recognize/fused/index.js';
export {
  lowerAttentionPass,
  hasKeyBias,
  lowerAttention,
  cannotLower,
  loweringPlan,
  nativeBandedBlocker,
  NATIVE_ATTENTION_OPSET,
  keySupport,
  bandBlockSize,
  bandedKeysPerQuery,
  type LowerOptions,
  type LoweringPlan,
  type LoweringStrategy,
  type KeySupport,
  GUARDED_OPSET,
  guardableSpec,
  guardedBlocker,
  guardedInputsBlocker,
  guardFallbackLabel,
} from './lower/index.js';
export { recognizePass, RECOGNITION_RULES } from './recognize/index.js';
export {
  analyzeMaskPass,
  combineSpecs,
  siteDims,
  ANALYZE_MASK,
  proveMaskSpec,
  formulaToSpec,
  maskProven,
  undoMaskProofs,
  MASKED_AT_OR_BELOW,
  type MaskProof,
  type SiteDims,
  type Formula,
  type Sym,
} from './mask-analysis/index.js';
export {
  inferShape,
  inferRank,
  inferDtype,
  staticShape,
  staticDim,
  staticNumbers,
  staticScalar,
  staticInts,
  symbolicShape,
  symbolicValue,
  sameDim,
} from './shape-inference/shapes.js';
export { invalidateShapes, analyzeGraph as analyzeShapes } from './shape-inference/symbolic-shapes/engine.js';
export { type Expr, evaluate as evaluateDim } from './shape-inference/symbolic-shapes/expr.js';
export {
  type CalibrationSample,
  type CalibrationTensor,
  type SiteCalibration,
  type HeadData,
  headData,
  defaultCandidates,
  restrictToBaseline,
  chooseSiteSpec,
  type SiteDecision,
  type SparsifyOptions,
  type Guarantee,
  type TriedForm,
  type HeadDetail,
  type HeadGroup,
  type UniformChoice,
  HEAD_GROUP,
  type HeadGroupAnnotation,
  emptyStats,
  evaluateHead,
  scoreRow,
  type CandidateStats,
  headResolver,
  sparsifyPass,
  attentionSites,
  describeDecision,
  SPARSIFY,
  SPARSIFY_DECISION,
  type SparsifyPassOptions,
} from './sparsify/index.js';
