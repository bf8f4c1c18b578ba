// Nystrom attention (Nystromformer, arXiv 2102.03902) as MatMuls, following the reference's definition:
//   m = min(landmarks, nq, nk) at run time; landmark t of X (n rows) is the mean of rows
//   [floor(t n / m), floor((t + 1) n / m)): an m x n averaging matrix built from Range, times X;
//   F = softmax(s Q K̃ᵀ) [nq x m], A = softmax(s Q̃ K̃ᵀ) [m x m], G = softmax(s Q̃ Kᵀ) [m x nk];
//   y = F · A⁺ · (G V), evaluated right to left (no nq x nk, no m x nk x dv product).
// A and A⁺ are computed in float64 whatever the model's type (landmarks cast up, A⁺ cast back): A⁺ turns a
// relative error of A into κ(A) times as much, and A of segment means is ill-conditioned (κ 1e3..1e6 on
// random rows), so forming A in fp32 alone costs about κ(A) · 2⁻²⁴ relative; the m x m work is small.
// ONNX has no pseudo-inverse: A⁺ is approximated by Nystromformer's iteration (cubically convergent
// Newton–Schulz), 4 m x m MatMuls a step:
//   Z₀ = Aᵀ / (max column sum · max row sum of A),  Z ← ¼ Z (13 I - A Z (15 I - A Z (7 I - A Z))).
// With Y = A Z, one step maps I - Y to (I - Y)³ (4I - Y) / 4: a singular value σ of A starts at
// y₀ = σ² / (‖A‖₁ ‖A‖∞) ≥ 1 / (m κ(A)²), grows about 3.25x a step while small, then converges cubically. So
// the steps needed grow as 2 log κ(A) / log 3.25; NYSTROM_PINV_STEPS covers κ(A) up to about 1e6 (segment
// means of random rows give near-uniform A, κ in the 1e2..1e5 range on generated inputs). Extra steps do
// not hurt: the iteration is stable at its fixed point.

import { type DType, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

/** Newton–Schulz steps of the pseudo-inverse (see the comment at the top; the cost model counts the same). */
export const NYSTROM_PINV_STEPS = 28;

export interface NystromInputs {
  readonly landmarks: number;
  /** [B, H, S, D], [B, H, T, D], [B, H, T, Dv]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly dtype: DType;
  readonly scale: number;
  readonly opset: number;
  /** Newton–Schulz steps (default NYSTROM_PINV_STEPS). */
  readonly steps?: number;
}

const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;

/** The Nystrom attention output [B, H, S, Dv]. */
export function nystromAttention(b: NodeBuilder, x: NystromInputs): Value {
  const { dtype } = x;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const reduce = (op: 'ReduceSum' | 'ReduceMax', t: Value, axis: number, what: string) =>
    (op === 'ReduceSum' ? x.opset >= 13 : x.opset >= 18)
      ? b.op(op, [t, b.ints(`${what}_axes`, [axis])], what, { keepdims: int(1) })
      : b.op(op, [t], what, { axes: { type: 'ints', value: [BigInt(axis)] }, keepdims: int(1) });
  const len = (t: Value, what: string) => b.op('Gather', [b.op('Shape', [t], `${what}_shape`), i64(2, `${what}_axis`)], what, { axis: int(0) });
  const S = len(x.q, 'nys_nq');
  const T = len(x.k, 'nys_nk');
  const m = b.op('Min', [b.op('Min', [S, T], 'nys_shorter'), i64(x.landmarks, 'nys_landmarks_max')], 'nys_landmarks');
  const seg = b.reshape(b.op('Range', [i64(0, 'nys_r0'), m, i64(1, 'nys_r1')], 'nys_segment'), [-1, 1], 'nys_segment_col'); // [m, 1]
  const landmarks = (t: Value, n: Value, what: string) => {
    const bound = (off: number, w: string) => b.op('Div', [b.op('Mul', [off ? b.op('Add', [seg, i64(off, `${w}_off`)], `${w}_next`) : seg, n], `${w}_scaled`), m], w);
    const lo = bound(0, `${what}_lo`);
    const hi = bound(1, `${what}_hi`);
    const rows = b.op('Range', [i64(0, `${what}_r0`), n, i64(1, `${what}_r1`)], `${what}_rows`); // [n]
    const inside = b.op('And', [b.op('Not', [b.op('Less', [rows, lo], `${what}_before`)], `${what}_from`), b.op('Less', [rows, hi], `${what}_to`)], `${what}_member`);
    const count = b.cast(b.op('Sub', [hi, lo], `${what}_len`), dtype, `${what}_count`);
    const avg = b.op('Div', [b.cast(inside, dtype, `${what}_member_f`), count], `${what}_average`); // [m, n]
    return b.op('MatMul', [avg, t], what); // [B, H, m, D]
  };
  const ql = landmarks(x.q, S, 'nys_q_landmarks');
  const kl = landmarks(x.k, T, 'nys_k_landmarks');
  const tr = (t: Value, what: string) => b.transpose(t, [0, 1, 3, 2], what);
  const wide = (t: Value, what: string) => (dtype === 'f64' ? t : b.cast(t, 'f64', what));
  const scale = b.scalar('nys_scale', dtype, x.scale);
  const kernel = (p: Value, kT: Value, what: string) =>
    b.op('Softmax', [b.op('Mul', [b.op('MatMul', [p, kT], `${what}_dot`), scale], `${what}_logits`)], what, { axis: int(-1) });
  const f = kernel(x.q, tr(kl, 'nys_k_landmarks_t'), 'nys_f'); // [B, H, S, m]
  const a = b.op(
    'Softmax',
    [b.op('Mul', [b.op('MatMul', [wide(ql, 'nys_q_landmarks_f64'), wide(tr(kl, 'nys_k_landmarks_t2'), 'nys_k_landmarks_t_f64')], 'nys_a_dot'), b.scalar('nys_scale_f64', 'f64', x.scale)], 'nys_a_logits')],
    'nys_a',
    { axis: int(-1) },
  ); // [B, H, m, m] float64
  const g = kernel(ql, tr(x.k, 'nys_k_t'), 'nys_g'); // [B, H, m, T]
  const z64 = newtonSchulzPinv(b, a, m, 'f64', x.steps ?? NYSTROM_PINV_STEPS, reduce);
  const z = dtype === 'f64' ? z64 : b.cast(z64, dtype, 'nys_pinv');
  const gv = b.op('MatMul', [g, x.v], 'nys_gv'); // [B, H, m, Dv]
  return b.op('MatMul', [f, b.op('MatMul', [z, gv], 'nys_zgv')], 'nys_y');
}

/** A⁺ of every [.., m, m] matrix of a (rows summing to 1, entries positive) by `steps` Newton–Schulz steps. */
function newtonSchulzPinv(
  b: NodeBuilder,
  a: Value,
  m: Value,
  dtype: DType,
  steps: number,
  reduce: (op: 'ReduceSum' | 'ReduceMax', t: Value, axis: number, what: string) => Value,
): Value {
  const idx = b.op('Range', [b.scalar('nys_eye_r0', 'i64', 0), m, b.scalar('nys_eye_r1', 'i64', 1)], 'nys_eye_index');
  const eye = b.cast(b.op('Equal', [b.reshape(idx, [-1, 1], 'nys_eye_col'), idx], 'nys_eye_bool'), dtype, 'nys_eye'); // [m, m]
  const c = (k: number) => b.op('Mul', [eye, b.scalar(`nys_c${k}`, dtype, k)], `nys_${k}i`);
  const [i7, i13, i15] = [c(7), c(13), c(15)];
  const colMax = reduce('ReduceMax', reduce('ReduceSum', a, 2, 'nys_col_sums'), 3, 'nys_col_max');
  const rowMax = reduce('ReduceMax', reduce('ReduceSum', a, 3, 'nys_row_sums'), 2, 'nys_row_max');
  let z = b.op('Div', [b.transpose(a, [0, 1, 3, 2], 'nys_a_t'), b.op('Mul', [colMax, rowMax], 'nys_norm')], 'nys_z0');
  const quarter = b.scalar('nys_quarter', dtype, 0.25);
  for (let t = 0; t < steps; t++) {
    const az = b.op('MatMul', [a, z], `nys_az${t}`);
    const inner = b.op('MatMul', [az, b.op('Sub', [i7, az], `nys_7_az${t}`)], `nys_inner${t}`);
    const mid = b.op('MatMul', [az, b.op('Sub', [i15, inner], `nys_15_inner${t}`)], `nys_mid${t}`);
    z = b.op('MatMul', [b.op('Mul', [z, quarter], `nys_z_quarter${t}`), b.op('Sub', [i13, mid], `nys_13_mid${t}`)], `nys_z${t + 1}`);
  }
  return z;
}
