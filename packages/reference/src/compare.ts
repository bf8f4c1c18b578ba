// Comparing a computed tensor with the reference: |a - b| <= atol + rtol * |b| elementwise, with NaN,
// +Inf and -Inf compared exactly (NaN matches only NaN, an infinity only the same infinity).

export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

export interface Mismatch {
  readonly index: number;
  readonly actual: number;
  readonly expected: number;
}

export interface Comparison {
  /** Every element within tolerance and every non-finite value matched exactly. */
  readonly ok: boolean;
  /** Largest |actual - expected| over elements where both are finite. */
  readonly maxAbsError: number;
  /** The first few failing elements. */
  readonly mismatches: readonly Mismatch[];
}

/** Whether one element passes: finite values by atol + rtol * |expected|, non-finite values exactly. */
export function closeTo(actual: number, expected: number, tol: Tolerance): boolean {
  if (Number.isNaN(expected) || Number.isNaN(actual)) return Number.isNaN(expected) && Number.isNaN(actual);
  if (!Number.isFinite(expected) || !Number.isFinite(actual)) return actual === expected;
  return Math.abs(actual - expected) <= tol.atol + tol.rtol * Math.abs(expected);
}

/** Compares two equally long arrays (shapes are the caller's to check). */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): Comparison {
  if (actual.length !== expected.length) {
    throw new Error(`compare: ${actual.length} values against ${expected.length} expected`);
  }
  let maxAbsError = 0;
  const mismatches: Mismatch[] = [];
  let failures = 0;
  for (let k = 0; k < expected.length; k++) {
    const a = actual[k]!;
    const e = expected[k]!;
    if (Number.isFinite(a) && Number.isFinite(e)) maxAbsError = Math.max(maxAbsError, Math.abs(a - e));
    if (!closeTo(a, e, tol)) {
      failures++;
      if (mismatches.length < 5) mismatches.push({ index: k, actual: a, expected: e });
    }
  }
  return { ok: failures === 0, maxAbsError, mismatches };
}
