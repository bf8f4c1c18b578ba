// The data of one (batch, head) that data-dependent leaves are evaluated on.

/** Q and K of one (batch, head), row-major: q is nq x d, k is nk x d. `scale` multiplies q . k. */
export interface HeadQK {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly nq: number;
  readonly nk: number;
  readonly d: number;
  readonly scale: number;
}

export function checkHead(head: HeadQK): void {
  if (head.q.length !== head.nq * head.d || head.k.length !== head.nk * head.d) {
    throw new Error(`head data: q needs ${head.nq} x ${head.d} and k ${head.nk} x ${head.d} values`);
  }
}

export function checkDims(what: string, head: HeadQK, dims: { nq: number; nk: number }): void {
  if (dims.nq !== head.nq || dims.nk !== head.nk) {
    throw new Error(`${what}: asked for ${dims.nq} x ${dims.nk} but built from Q, K of ${head.nq} x ${head.nk}`);
  }
}
