// Dense float64 linear algebra on row-major matrices, small sizes only (the reference is slow on purpose).
// The SVD and the pseudo-inverse are the ones Nystrom's semantics define, in @attnopt/ir (one copy).

import { type DenseMatrix, softmaxInPlace } from '@attnopt/ir';

export { thinSvd as svd, pseudoInverse as pinv, pseudoInverseProduct as pinvProduct } from '@attnopt/ir';

/** A row-major rows x cols matrix. */
export type Matrix = DenseMatrix;

export function matrix(rows: number, cols: number, data?: Float64Array): Matrix {
  const d = data ?? new Float64Array(rows * cols);
  if (d.length !== rows * cols) throw new Error(`matrix ${rows} x ${cols} needs ${rows * cols} values, got ${d.length}`);
  return { rows, cols, data: d };
}

/** A B. */
export function matmul(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows} x ${a.cols} times ${b.rows} x ${b.cols}`);
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let t = 0; t < a.cols; t++) {
      const x = a.data[i * a.cols + t]!;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j]! += x * b.data[t * b.cols + j]!;
    }
  }
  return matrix(a.rows, b.cols, out);
}

/** A B^T. */
export function matmulTransposed(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.cols) throw new Error(`matmulTransposed: ${a.rows} x ${a.cols} times (${b.rows} x ${b.cols})^T`);
  const out = new Float64Array(a.rows * b.rows);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) {
      let s = 0;
      for (let t = 0; t < a.cols; t++) s += a.data[i * a.cols + t]! * b.data[j * b.cols + t]!;
      out[i * b.rows + j] = s;
    }
  }
  return matrix(a.rows, b.rows, out);
}

export function transposeMatrix(a: Matrix): Matrix {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j]!;
  return matrix(a.cols, a.rows, out);
}

/** Row-wise softmax of s * A (each row through softmaxRow semantics, max-subtracted). */
export function softmaxRows(a: Matrix, scale: number): Matrix {
  const out = new Float64Array(a.data.length);
  for (let k = 0; k < out.length; k++) out[k] = scale * a.data[k]!;
  for (let i = 0; i < a.rows; i++) softmaxInPlace(out.subarray(i * a.cols, (i + 1) * a.cols));
  return matrix(a.rows, a.cols, out);
}
