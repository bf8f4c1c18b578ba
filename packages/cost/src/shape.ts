// The extent of one attention call, resolved from the parameters and the call's sizes.

import type { AttentionParams } from '@attnopt/ir';

/** Sizes of one call of an attention site. */
export interface CallDims {
  readonly batch: number;
  /** Queries of this call. */
  readonly nq: number;
  /** Keys the queries see, cached ones included (the present K/V length, as in the IR's MaskDims). */
  readonly nk: number;
  /** Cached keys among the nk (past K/V); 0 when absent. */
  readonly past?: number;
}

/** Every size the counting needs, in one place: B, heads, head sizes, lengths, bytes per element. */
export interface Extent {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly d: number;
  readonly dv: number;
  readonly nq: number;
  readonly nk: number;
  readonly past: number;
  readonly E: number;
}

export function extentOf(p: AttentionParams, dims: CallDims, elementBytes = 4): Extent {
  const past = dims.past ?? 0;
  for (const [name, v] of [['batch', dims.batch], ['nq', dims.nq], ['nk', dims.nk]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`attention cost: ${name} must be an integer >= 0, got ${v}`);
  }
  if (!Number.isSafeInteger(past) || past < 0 || past > dims.nk) throw new Error(`attention cost: past must be in 0..nk, got ${past}`);
  return { B: dims.batch, H: p.numHeads, Hkv: p.kvNumHeads, d: p.headDim, dv: p.vHeadDim, nq: dims.nq, nk: dims.nk, past, E: elementBytes };
}
