// @attnopt/bounds: the theorems of BOUNDS.md as functions, each with its statement and source above it. Public API.

export { logSumExp, logAddExp } from './log-space.js';
export {
  type MaskSplit,
  maskSplit,
  maskErrorBound,
  maskErrorBoundMaxAbs,
  maskErrorBoundL2,
  valueDiameter,
  halfL1ToRenormalized,
  maskRowErrorBound,
} from './mask.js';
export {
  droppedMassCertificate,
  droppedMassCertificateFromLog,
  cauchySchwarzUpperBounds,
  blockUpperBound,
  blockLogB,
  topkGapBound,
  topkGapBoundFromScores,
} from './certificates.js';
export { eckartYoungFloor, jlTailProbability } from './low-rank.js';
export { softmaxKernel, performerKernelMse, performerKernelFourthMoment } from './performer.js';
export { angleBetween, angularCollisionProbability, lshInclusionProbability, expectedLshDroppedMass } from './lsh.js';
export {
  type KeyBlockSummaries,
  type ScoreBoundSummaries,
  blockCount,
  keyBlockSummaries,
  keptKeyStandIn,
  blockScoreUpperBound,
  softcappedUpperBound,
  keptLogSumExp,
  type KeptLogZ,
  keptLogZ,
  guardedDroppedMass,
  guardedLogB,
  guardedOutputBound,
  valueRange,
  guardFallsBack,
} from './key-blocks.js';
export { type ConformalConfidence, conformalRank, conformalQuantile } from './conformal.js';
export { type KeyGroupSummaries, keyGroupSummaries, lshRoundLogB, lshDroppedMass, type LshHeadGroups, lshHeadGroups } from './lsh-certificate.js';
