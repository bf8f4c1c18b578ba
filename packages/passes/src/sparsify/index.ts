// sparsify: per site, the cheapest form within the error budget, guarded by default (see pass.ts and choose.ts).
export { type CalibrationSample, type CalibrationTensor, type SiteCalibration, type HeadData, headData } from './calibration.js';
export { DEFAULT_LANDMARKS, defaultCandidates, restrictToBaseline } from './candidates.js';
export { chooseSiteSpec, type DecodeStep, HELD_OUT_FRACTION, MAX_GUARDED_FALLBACK, type Guarantee, type MeasuredTime, type SiteDecision, type SparsifyOptions, type TriedForm, type HeadDetail, type HeadGroup, type UniformChoice } from './choose.js';
export { groupsText, headsText, planHeadGroups, type HeadGroupPlan } from './head-groups.js';
export { HEAD_GROUP, type HeadGroupAnnotation, type HeadSplit, headSplitBlocker, headSplitOf, splitHeads } from './split-heads.js';
export { emptyStats, evaluateHead, mergedStats, recomputedRowRate, scoreRow, type CandidateStats } from './evaluate.js';
export { headResolver } from './resolve.js';
export { applyDecision, sparsifyPass, attentionSites, describeDecision, SPARSIFY, SPARSIFY_DECISION, type SparsifyPassOptions } from './pass.js';
export { keepAsWritten } from './kept.js';
export { siteCostInputs } from './site-inputs.js';
export { siteVariant } from './site-variant.js';
export { baselineOutput, emptyLowRankStats, evaluateLowRankHead, linformerOutput, lowRankOutput, nystromHeadOutput, performerOutput, type EvaluableLowRank } from './lowrank.js';
