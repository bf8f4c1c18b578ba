// The site the guarded-lowering tests build: H heads of size D (bhsd, scale 1/sqrt(D)), the spec given, and with a
// budget the run-time guard over 64-key blocks whose falling-back rows see the baseline (default: the causal mask).

import { type AttentionParams, type AttentionSpec, causal, type GuardSummaries } from '@attnopt/ir';

/** `summaries`: the guard's score bound summaries (default absent: the box and the ball). */
export function guardedSiteParams(heads: number, headDim: number, spec: AttentionSpec, budget?: number, baseline: AttentionSpec = causal('bottom-right'), summaries?: GuardSummaries): AttentionParams {
  return {
    numHeads: heads,
    kvNumHeads: heads,
    headDim,
    vHeadDim: headDim,
    scale: 1 / Math.sqrt(headDim),
    softcap: 0,
    layout: 'bhsd',
    spec,
    ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline, ...(summaries ? { summaries } : {}) } } : {}),
  };
}
