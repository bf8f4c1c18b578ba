// The data of one (batch, head) that data-dependent leaves (topkBlocks, lsh) are evaluated on.

/** Q and K of one (batch, head), row-major: q is nq x d, k is nk x d. `scale` multiplies q . k. */
export interface HeadQK {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly nq: number;
  readonly nk: number;
  readonly d: number;
  readonly scale: number;
}
