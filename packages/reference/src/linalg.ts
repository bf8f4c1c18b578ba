// Dense float64 linear algebra on row-major matrices, small sizes only (the reference is slow on purpose).

/** A row-major rows x cols matrix. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

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

/** Thin SVD A = U diag(s) V^T by one-sided Jacobi (Hestenes), converged to float64 precision. */
export function svd(a: Matrix): { u: Matrix; s: Float64Array; v: Matrix } {
  const { rows: m, cols: n } = a;
  if (m < n) {
    const t = svd(transposeMatrix(a));
    return { u: t.v, s: t.s, v: t.u };
  }
  const u = Float64Array.from(a.data); // m x n, columns orthogonalized in place
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const up = u[i * n + p]!;
          const uq = u[i * n + q]!;
          alpha += up * up;
          beta += uq * uq;
          gamma += up * uq;
        }
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const up = u[i * n + p]!;
          const uq = u[i * n + q]!;
          u[i * n + p] = c * up - s * uq;
          u[i * n + q] = s * up + c * uq;
        }
        for (let i = 0; i < n; i++) {
          const vp = v[i * n + p]!;
          const vq = v[i * n + q]!;
          v[i * n + p] = c * vp - s * vq;
          v[i * n + q] = s * vp + c * vq;
        }
      }
    }
    if (!rotated) break;
  }
  const s = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let norm = 0;
    for (let i = 0; i < m; i++) norm += u[i * n + j]! ** 2;
    s[j] = Math.sqrt(norm);
    if (s[j]! > 0) for (let i = 0; i < m; i++) u[i * n + j]! /= s[j]!;
  }
  return { u: matrix(m, n, u), s, v: matrix(n, n, v) };
}

/**
 * The Moore-Penrose pseudo-inverse A⁺ (cols x rows) from the SVD: singular values at or below
 * max(rows, cols) * eps * sigma_max are treated as zero (the numpy / LAPACK default cutoff).
 */
export function pinv(a: Matrix): Matrix {
  const { u, s, v } = svd(a);
  const k = s.length;
  const smax = s.reduce((x, y) => Math.max(x, y), 0);
  const cutoff = Math.max(a.rows, a.cols) * Number.EPSILON * smax;
  const out = new Float64Array(a.cols * a.rows);
  for (let t = 0; t < k; t++) {
    if (!(s[t]! > cutoff)) continue;
    const inv = 1 / s[t]!;
    for (let i = 0; i < a.cols; i++) {
      const vi = v.data[i * k + t]! * inv;
      for (let j = 0; j < a.rows; j++) out[i * a.rows + j]! += vi * u.data[j * k + t]!;
    }
  }
  return matrix(a.cols, a.rows, out);
}

/** Row-wise softmax of s * A (each row through softmaxRow semantics, max-subtracted). */
export function softmaxRows(a: Matrix, scale: number): Matrix {
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < a.rows; i++) {
    let max = -Infinity;
    for (let j = 0; j < a.cols; j++) max = Math.max(max, scale * a.data[i * a.cols + j]!);
    let sum = 0;
    for (let j = 0; j < a.cols; j++) sum += out[i * a.cols + j] = Math.exp(scale * a.data[i * a.cols + j]! - max);
    for (let j = 0; j < a.cols; j++) out[i * a.cols + j]! /= sum;
  }
  return matrix(a.rows, a.cols, out);
}

/**
 * left A⁺ right, through the SVD in factored form: sum over kept t of (left v_t)(u_tᵀ right) / sigma_t, same
 * cutoff as pinv. Forming A⁺ first would lose the cancellation between entries of size 1 / sigma_min when A is
 * ill-conditioned (a softmax matrix of small scores is); the factored product keeps float64 accuracy.
 */
export function pinvProduct(left: Matrix, a: Matrix, right: Matrix): Matrix {
  if (left.cols !== a.cols || a.rows !== right.rows) {
    throw new Error(`pinvProduct: (${left.rows} x ${left.cols}) (${a.rows} x ${a.cols})⁺ (${right.rows} x ${right.cols})`);
  }
  const { u, s, v } = svd(a);
  const k = s.length;
  const smax = s.reduce((x, y) => Math.max(x, y), 0);
  const cutoff = Math.max(a.rows, a.cols) * Number.EPSILON * smax;
  const lv = matmul(left, v); // left.rows x k
  const ur = matmul(transposeMatrix(u), right); // k x right.cols
  const out = new Float64Array(left.rows * right.cols);
  for (let t = 0; t < k; t++) {
    if (!(s[t]! > cutoff)) continue;
    for (let i = 0; i < left.rows; i++) {
      const x = lv.data[i * k + t]! / s[t]!;
      for (let j = 0; j < right.cols; j++) out[i * right.cols + j]! += x * ur.data[t * right.cols + j]!;
    }
  }
  return matrix(left.rows, right.cols, out);
}
