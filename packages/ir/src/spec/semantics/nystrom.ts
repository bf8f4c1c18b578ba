// Nystrom attention (Nystromformer, arXiv 2102.03902) for one head, in float64 with an exact pseudo-inverse:
// the semantics the reference, the sparsify pass and every backend reproduce.
//
// Landmarks: m = min(landmarks, nq, nk); the rows [floor(t n / m), floor((t + 1) n / m)) form segment t
// (t < m, nearly equal contiguous segments) and each landmark is its segment's mean, for Q (n = nq) and K
// (n = nk) separately. With s the scale:
//   out = softmax(s Q K~ᵀ) pinv(softmax(s Q~ K~ᵀ)) softmax(s Q~ Kᵀ) V
// pinv is the Moore-Penrose pseudo-inverse from the SVD (one-sided Jacobi), singular values at or below
// max(rows, cols) * eps * sigma_max taken as zero (the numpy / LAPACK cutoff). Like the other low-rank forms,
// the site's mask, bias and softcap are not applied.
// landmarks >= n with nq == nk makes Q~ = Q and K~ = K, and A A⁺ A = A gives exactly dense attention.

import { softmaxInPlace } from '../../softmax.js';
import type { HeadQK } from './head.js';

/** A row-major rows x cols float64 matrix. */
export interface DenseMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** Q, K and V of one (batch, head): v is nk x dv. */
export interface HeadQKV extends HeadQK {
  readonly v: Float64Array;
  readonly dv: number;
}

const mat = (rows: number, cols: number, data: Float64Array = new Float64Array(rows * cols)): DenseMatrix => ({ rows, cols, data });

function transpose(a: DenseMatrix): DenseMatrix {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j]!;
  return mat(a.cols, a.rows, out);
}

/** A B. */
function product(a: DenseMatrix, b: DenseMatrix): DenseMatrix {
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let t = 0; t < a.cols; t++) {
      const x = a.data[i * a.cols + t]!;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j]! += x * b.data[t * b.cols + j]!;
    }
  }
  return mat(a.rows, b.cols, out);
}

/** Row-wise softmax(s A Bᵀ) (A: n x d, B: m x d), max-subtracted: n x m. */
function softmaxScores(a: DenseMatrix, b: DenseMatrix, scale: number): DenseMatrix {
  const { rows: n, cols: d } = a;
  const m = b.rows;
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += a.data[i * d + t]! * b.data[j * d + t]!;
      out[i * m + j] = scale * s;
    }
    softmaxInPlace(out.subarray(i * m, (i + 1) * m));
  }
  return mat(n, m, out);
}

/** Thin SVD A = U diag(s) Vᵀ by one-sided Jacobi (Hestenes), converged to float64 precision. */
export function thinSvd(a: DenseMatrix): { u: DenseMatrix; s: Float64Array; v: DenseMatrix } {
  const { rows: m, cols: n } = a;
  if (m < n) {
    const t = thinSvd(transpose(a));
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
  return { u: mat(m, n, u), s, v: mat(n, n, v) };
}

/** The singular values kept by the pseudo-inverse: above max(rows, cols) * eps * sigma_max. */
function pinvCutoff(a: DenseMatrix, s: Float64Array): number {
  const smax = s.reduce((x, y) => Math.max(x, y), 0);
  return Math.max(a.rows, a.cols) * Number.EPSILON * smax;
}

/** The Moore-Penrose pseudo-inverse A⁺ (cols x rows) from the SVD, with the cutoff above. */
export function pseudoInverse(a: DenseMatrix): DenseMatrix {
  const { u, s, v } = thinSvd(a);
  const k = s.length;
  const cutoff = pinvCutoff(a, s);
  const out = new Float64Array(a.cols * a.rows);
  for (let t = 0; t < k; t++) {
    if (!(s[t]! > cutoff)) continue;
    const inv = 1 / s[t]!;
    for (let i = 0; i < a.cols; i++) {
      const vi = v.data[i * k + t]! * inv;
      for (let j = 0; j < a.rows; j++) out[i * a.rows + j]! += vi * u.data[j * k + t]!;
    }
  }
  return mat(a.cols, a.rows, out);
}

/**
 * left A⁺ right, through the SVD in factored form: sum over kept t of (left v_t)(u_tᵀ right) / sigma_t, same
 * cutoff as pseudoInverse. Forming A⁺ first would lose the cancellation between entries of size 1 / sigma_min
 * when A is ill-conditioned (a softmax matrix of small scores is); the factored product keeps float64 accuracy.
 */
export function pseudoInverseProduct(left: DenseMatrix, a: DenseMatrix, right: DenseMatrix): DenseMatrix {
  if (left.cols !== a.cols || a.rows !== right.rows) {
    throw new Error(`pseudoInverseProduct: (${left.rows} x ${left.cols}) (${a.rows} x ${a.cols})⁺ (${right.rows} x ${right.cols})`);
  }
  const { u, s, v } = thinSvd(a);
  const k = s.length;
  const cutoff = pinvCutoff(a, s);
  const lv = product(left, v); // left.rows x k
  const ur = product(transpose(u), right); // k x right.cols
  const out = new Float64Array(left.rows * right.cols);
  for (let t = 0; t < k; t++) {
    if (!(s[t]! > cutoff)) continue;
    for (let i = 0; i < left.rows; i++) {
      const x = lv.data[i * k + t]! / s[t]!;
      for (let j = 0; j < right.cols; j++) out[i * right.cols + j]! += x * ur.data[t * right.cols + j]!;
    }
  }
  return mat(left.rows, right.cols, out);
}

/** The number of landmarks a Nystrom spec uses for nq queries and nk keys: min(landmarks, nq, nk). */
export function nystromLandmarkCount(landmarks: number, nq: number, nk: number): number {
  return Math.min(landmarks, nq, nk);
}

/** The m segment means of the rows of x (n x d): the Nystrom landmarks (m x d). */
export function segmentMeans(x: DenseMatrix, m: number): DenseMatrix {
  const { rows: n, cols: d } = x;
  const out = new Float64Array(m * d);
  for (let t = 0; t < m; t++) {
    const lo = Math.floor((t * n) / m);
    const hi = Math.floor(((t + 1) * n) / m);
    for (let i = lo; i < hi; i++) for (let c = 0; c < d; c++) out[t * d + c]! += x.data[i * d + c]!;
    for (let c = 0; c < d; c++) out[t * d + c]! /= hi - lo;
  }
  return mat(m, d, out);
}

/** The Nystrom output (nq x dv, row-major) of one head with `landmarks` landmarks. */
export function nystromOutput(head: HeadQKV, landmarks: number): Float64Array {
  const { nq, nk, d, dv, scale } = head;
  if (!Number.isSafeInteger(landmarks) || landmarks < 1) throw new Error(`nystrom: landmarks must be an integer >= 1, got ${landmarks}`);
  const m = nystromLandmarkCount(landmarks, nq, nk);
  if (m === 0) return new Float64Array(nq * dv);
  const q = mat(nq, d, head.q);
  const k = mat(nk, d, head.k);
  const v = mat(nk, dv, head.v);
  const ql = segmentMeans(q, m);
  const kl = segmentMeans(k, m);
  const f = softmaxScores(q, kl, scale); // nq x m
  const a = softmaxScores(ql, kl, scale); // m x m
  const b = softmaxScores(ql, k, scale); // m x nk
  return pseudoInverseProduct(f, a, product(b, v)).data; // F A⁺ (B V), A⁺ never formed
}
