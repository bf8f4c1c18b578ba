// Binned pictures of one head's attention: the mean softmax probability per (query bin, key bin) from its
// calibration Q and K, and the fraction of pairs a spec keeps per bin. Rows are scored one at a time and the
// spec is asked per row (rowKeys): memory is O(nk + bins²), never n x n.

import { type LeafResolver, type MaskDims, type MaskSpec, rowKeys, softmaxInPlace } from '@attnopt/ir';
import { type HeadData, scoreRow } from '@attnopt/passes';

/** Bin r of `bins` over n positions holds [binStart(r), binStart(r + 1)). */
export const binStart = (r: number, n: number, bins: number): number => Math.floor((r * n) / bins);

/** The bin of position i (inverse of binStart). */
function binOf(i: number, n: number, bins: number): number {
  let r = Math.min(bins - 1, Math.floor((i * bins) / n));
  while (r + 1 < bins && binStart(r + 1, n, bins) <= i) r++;
  while (r > 0 && binStart(r, n, bins) > i) r--;
  return r;
}

/** Accumulates one head's probabilities: call `add` per head, then `mean` for the averaged map. */
export class MassAccumulator {
  private readonly sum: Float64Array;
  private readonly rowsSeen: Float64Array;

  constructor(
    readonly nq: number,
    readonly nk: number,
    readonly rows: number,
    readonly cols: number,
    readonly rowStride: number,
  ) {
    this.sum = new Float64Array(rows * cols);
    this.rowsSeen = new Float64Array(rows);
  }

  /**
   * Adds head `head`'s softmax rows 0, rowStride, 2 rowStride, ...: the site's own `spec` (and bias) decide
   * which keys each row sees, as the model computes it.
   */
  add(head: HeadData, spec: MaskSpec, resolve?: LeafResolver): void {
    if (head.nq !== this.nq || head.nk !== this.nk) throw new Error(`attention mass: head is ${head.nq} x ${head.nk}, the map ${this.nq} x ${this.nk}`);
    const dims: MaskDims = { nq: head.nq, nk: head.nk };
    const row = new Float64Array(head.nk);
    const bias = head.biasRow ? new Float64Array(head.nk) : undefined;
    const colOf = Int32Array.from({ length: head.nk }, (_, j) => binOf(j, head.nk, this.cols));
    for (let i = 0; i < head.nq; i += this.rowStride) {
      softmaxInPlace(scoreRow(head, i, rowKeys(spec, i, dims, resolve), row, bias));
      const r = binOf(i, head.nq, this.rows);
      this.rowsSeen[r]! += 1;
      const base = r * this.cols;
      for (let j = 0; j < head.nk; j++) this.sum[base + colOf[j]!]! += row[j]!;
    }
  }

  /** Mean probability per bin: the bin's summed probabilities over (rows seen x keys in the key bin). */
  mean(): number[] {
    const out: number[] = new Array(this.rows * this.cols).fill(0);
    for (let r = 0; r < this.rows; r++) {
      const seen = this.rowsSeen[r]!;
      if (seen === 0) continue;
      for (let c = 0; c < this.cols; c++) {
        const width = binStart(c + 1, this.nk, this.cols) - binStart(c, this.nk, this.cols);
        out[r * this.cols + c] = this.sum[r * this.cols + c]! / (seen * width);
      }
    }
    return out;
  }
}

/** Fraction of the (query, key) pairs of each bin that `spec` keeps, every query row counted. */
export function keepPattern(spec: MaskSpec, dims: MaskDims, rows: number, cols: number, resolve?: LeafResolver): number[] {
  const kept = new Float64Array(rows * cols);
  for (let i = 0; i < dims.nq; i++) {
    const base = binOf(i, dims.nq, rows) * cols;
    const set = rowKeys(spec, i, dims, resolve);
    for (let t = 0; t < set.length; t += 2) {
      const lo = set[t]!;
      const hi = set[t + 1]!;
      for (let c = binOf(lo, dims.nk, cols); c < cols && binStart(c, dims.nk, cols) < hi; c++) {
        kept[base + c]! += Math.min(hi, binStart(c + 1, dims.nk, cols)) - Math.max(lo, binStart(c, dims.nk, cols));
      }
    }
  }
  const out: number[] = new Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const h = binStart(r + 1, dims.nq, rows) - binStart(r, dims.nq, rows);
    for (let c = 0; c < cols; c++) {
      const w = binStart(c + 1, dims.nk, cols) - binStart(c, dims.nk, cols);
      out[r * cols + c] = kept[r * cols + c]! / (h * w);
    }
  }
  return out;
}
