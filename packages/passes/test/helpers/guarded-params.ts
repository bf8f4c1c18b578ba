// The site the guarded-lowering tests build: H heads of size D (bhsd, scale 1/sqrt(D)), the spec given, and with a
// budget the run-time guard over 64-key blocks whose falling-back rows see the baseline (default: the causal mask).

import { type AttentionGuard, type AttentionParams, type AttentionSpec, causal } from '@attnopt/ir';

/** The guard's cheaper choices the tests name (default absent: the box and the ball, log Z_S the log-sum-exp). */
export type GuardChoices = Pick<AttentionGuard, 'summaries' | 'logZ'>;

export function guardedSiteParams(heads: number, headDim: number, spec: AttentionSpec, budget?: number, baseline: AttentionSpec = causal('bottom-right'), choices: GuardChoices = {}): AttentionParams {
  return {
    numHeads: heads,
    kvNumHeads: heads,
    headDim,
    vHeadDim: headDim,
    scale: 1 / Math.sqrt(headDim),
    softcap: 0,
    layout: 'bhsd',
    spec,
    ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline, ...choices } } : {}),
  };
}
