// The extent of one attention call, resolved from the parameters and the call's sizes.

import { type AttentionParams, RUNTIME_HEAD_DIM, RUNTIME_HEAD_DIM_REASON } from '@attnopt/ir';

/** Sizes of one call of an attention site. */
export interface CallDims {
  readonly batch: number;
  /** Queries of this call. */
  readonly nq: number;
  /** Keys the queries see, cached ones included (the present K/V length, as in the IR's MaskDims). */
  readonly nk: number;
  /** Cached keys among the nk (past K/V); 0 when absent. */
  readonly past?: number;
  /**
   * The head size of Q and K in this call, for params that leave it to run time (headDim 0); the cost of such
   * a site is unknown without it (attentionCost throws). Must equal params.headDim when that is static.
   */
  readonly headDim?: number;
  /** The head size of V in this call, for params with vHeadDim 0 (as headDim). */
  readonly vHeadDim?: number;
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
  const d = headSize('headDim', p.headDim, dims.headDim);
  const dv = headSize('vHeadDim', p.vHeadDim, dims.vHeadDim);
  return { B: dims.batch, H: p.numHeads, Hkv: p.kvNumHeads, d, dv, nq: dims.nq, nk: dims.nk, past, E: elementBytes };
}

/** A head size of the params, or the call's when the params leave it to run time; the cost is unknown without one. */
function headSize(name: 'headDim' | 'vHeadDim', fromParams: number, fromCall: number | undefined): number {
  if (fromCall !== undefined && (!Number.isSafeInteger(fromCall) || fromCall < 1)) {
    throw new Error(`attention cost: ${name} must be an integer >= 1, got ${fromCall}`);
  }
  if (fromParams !== RUNTIME_HEAD_DIM) {
    if (fromCall !== undefined && fromCall !== fromParams) throw new Error(`attention cost: the call's ${name} ${fromCall} differs from the params' ${fromParams}`);
    return fromParams;
  }
  if (fromCall === undefined) {
    throw new Error(`attention cost is unknown: the ${RUNTIME_HEAD_DIM_REASON} (${name} 0); give CallDims.${name} for the call`);
  }
  return fromCall;
}
