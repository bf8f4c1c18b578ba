// Vector math emitted inline into the generated kernels: a fast 2^x over f32x4 and the 4 x 4
// transpose-reduction that turns four vectors of partial results into one vector of four totals.
//
// exp2: x = k + f with k = round(x) (the 1.5 · 2^23 trick: adding it rounds to an integer and leaves
// k in the low mantissa bits) and f in [-1/2, 1/2]; 2^x = 2^k · p(f), p the degree-6 Taylor polynomial
// of e^(f ln 2). Truncation error at |f| = 1/2: (ln2/2)^7 / 7! · 2^(1/2) < 1.7e-7 relative; with the
// float32 rounding of the Horner steps the measured maximum is below EXP2_MAX_REL_ERROR (simd-math.test.ts).
// Below -127 the result is exactly 0 (2^k built from a zero exponent field); above 127 the input is
// clamped when `clampHigh` (callers whose input is never positive leave it off).

import type { FunctionBuilder } from './emitter.js';

/** The relative error bound of emitExp2 on [-126, 127] that the tests check. */
export const EXP2_MAX_REL_ERROR = 4e-7;

const ROUND_MAGIC = 12582912; // 1.5 * 2^23
/** Taylor coefficients of 2^f = e^(f ln2): (ln 2)^n / n!, n = 0..6. */
export const EXP2_COEFFS: readonly number[] = Array.from({ length: 7 }, (_, n) => {
  let c = 1;
  for (let k = 1; k <= n; k++) c *= Math.LN2 / k;
  return c;
});

/** Pops x (f32x4), pushes 2^x per lane. Uses the v128 locals `${tmp}x`, `${tmp}y`, `${tmp}f`. */
export function emitExp2(f: FunctionBuilder, tmp: string, clampHigh = false): void {
  const [x, y, fr] = [`${tmp}x`, `${tmp}y`, `${tmp}f`];
  f.local(x, 'v128').local(y, 'v128').local(fr, 'v128');
  if (clampHigh) f.f32x4Const(127).f32x4Pmin();
  f.f32x4Const(-127).f32x4Pmax().tee(x);
  f.f32x4Const(ROUND_MAGIC).f32x4Add().tee(y); // y = k + 1.5 · 2^23, k = round(x) in its low bits
  f.f32x4Const(ROUND_MAGIC).f32x4Sub().set(fr); // k as a float
  f.get(x).get(fr).f32x4Sub().set(fr); // f = x - k, exact
  const c = EXP2_COEFFS;
  f.f32x4Const(c[6]!);
  for (let n = 5; n >= 0; n--) f.get(fr).f32x4Mul().f32x4Const(c[n]!).f32x4Add();
  // 2^k: (k + 127) << 23; the shift drops the magic's high bits; k = -127 gives +0
  f.get(y).i32(127).i32x4Splat().i32x4Add().i32(23).i32x4Shl().f32x4Mul();
}

/** Byte lanes of a shuffle selecting 32-bit lanes `lanes` (0-3 first vector, 4-7 second). */
export function lanes32(lanes: readonly number[]): number[] {
  return lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
}

/** Pops a vector, pushes its 32-bit lane `lane` in all four lanes. */
export function emitSplatLane(f: FunctionBuilder, v: string, lane: number): void {
  f.get(v).get(v).i8x16Shuffle(lanes32([lane, lane, lane, lane]));
}

/**
 * Pushes (op-reduce(a0), op-reduce(a1), op-reduce(a2), op-reduce(a3)) for four v128 locals: each
 * lane of the result is the sum (or pseudo-max) of the four lanes of one input. 6 shuffles, 3 ops.
 */
export function emitTransposeReduce(f: FunctionBuilder, op: 'add' | 'max', a: readonly [string, string, string, string], tmp: string): void {
  const [u, w] = [`${tmp}u`, `${tmp}w`];
  f.local(u, 'v128').local(w, 'v128');
  const combine = () => (op === 'add' ? f.f32x4Add() : f.f32x4Pmax());
  const pair = (p: string, q: string, out: string) => {
    f.get(p).get(q).i8x16Shuffle(lanes32([0, 4, 1, 5]));
    f.get(p).get(q).i8x16Shuffle(lanes32([2, 6, 3, 7]));
    combine().set(out);
  };
  pair(a[0], a[1], u); // (a0.0 ∘ a0.2, a1.0 ∘ a1.2, a0.1 ∘ a0.3, a1.1 ∘ a1.3)
  pair(a[2], a[3], w);
  f.get(u).get(w).i8x16Shuffle(lanes32([0, 1, 4, 5]));
  f.get(u).get(w).i8x16Shuffle(lanes32([2, 3, 6, 7]));
  combine();
}
