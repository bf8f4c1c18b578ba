// The properties of BOUNDS.md (a) and (b) on one-row problems, as fast-check properties any compiler can run:
//   fc.assert(maskIdentityProperty(), { numRuns: 1000, seed: 1 })
// The sparse output o_S and the dense output o come from the reference (`referenceAttention` under the spec,
// and under `dense` with the same bias); the bounds come from @attnopt/bounds.
// Tolerances (float64, n <= 64 terms per sum): identities hold within atol = 1e-12 * max(1, max |v|), about 100x
// the worst rounding of a 64-term sum; certificates are checked as cert >= m (1 - 1e-9) (a tight certificate,
// e.g. Cauchy-Schwarz with d = 1, equals m in real arithmetic and may round 1 ulp below it); monotonicity and
// exact zero error are checked exactly (rounding is monotone, and the same softmax row gives the same bits).

import fc from 'fast-check';
import { dense, difference, empty, globalTokens, type MaskSpec, union } from '@attnopt/ir';
import { droppedMass, softmaxRow } from '@attnopt/reference';
import {
  blockLogB,
  blockUpperBound,
  cauchySchwarzUpperBounds,
  droppedMassCertificate,
  droppedMassCertificateFromLog,
  halfL1ToRenormalized,
  logSumExp,
  maskErrorBound,
  maskErrorBoundL2,
  maskErrorBoundMaxAbs,
  maskSplit,
  topkGapBoundFromScores,
} from '@attnopt/bounds';
import { keptKeys, keptSetSpecArbitrary, type RowProblem, type RowProblemOptions, referenceRow, rowProblemArbitrary } from './row-problem.js';

/** Relative slack of a certificate against the true dropped mass (see the header). */
export const CERTIFICATE_RTOL = 1e-9;

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < xs.length; k++) m = Math.max(m, Math.abs(xs[k]!));
  return m;
}

/** atol of the identities: 1e-12 * max(1, max |v|). */
export function identityTolerance(p: RowProblem): number {
  return 1e-12 * Math.max(1, maxAbs(p.values));
}

function fail(what: string, details: Record<string, unknown>): never {
  throw new Error(`${what}: ${JSON.stringify(details)}`);
}

/** Whether S keeps a key of finite score (so o_S is a convex combination of kept values). */
function keepsMass(p: RowProblem, kept: Uint8Array = p.kept): boolean {
  for (let j = 0; j < p.n; j++) if (kept[j] && p.scores[j]! > -Infinity) return true;
  return false;
}

/** For any row and kept set S: o - o_S = m (mu_T - o_S), with o and o_S from the reference (BOUNDS.md (a)). */
export function maskIdentityProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  return fc.property(rowProblemArbitrary(options), (p) => {
    const o = referenceRow(p, dense);
    const oS = referenceRow(p, p.spec);
    const m = droppedMass(p.scores, (j) => p.kept[j] === 1);
    const split = maskSplit(p.scores, p.values, p.dv, (j) => p.kept[j] === 1);
    const tol = identityTolerance(p);
    for (let c = 0; c < p.dv; c++) {
      const lhs = o[c]! - oS[c]!;
      const rhs = m * (split.muT[c]! - oS[c]!);
      if (!(Math.abs(lhs - rhs) <= tol)) fail('o - o_S != m (mu_T - o_S)', { c, lhs, rhs, m, tol });
      if (!(Math.abs(split.o[c]! - o[c]!) <= tol && Math.abs(split.oS[c]! - oS[c]!) <= tol)) {
        fail('maskSplit disagrees with the reference', { c, o: o[c], oS: oS[c], split: [split.o[c], split.oS[c]] });
      }
    }
    if (!(Math.abs(split.m - m) <= 1e-12)) fail('maskSplit m != droppedMass', { m, splitM: split.m });
  });
}

/**
 * For any row and S keeping a key of positive probability: |o_c - o_S,c| <= m (max v_c - min v_c),
 * ||o - o_S||_2 <= m diam{v}, and (1/2) ||p - p_S||_1 = m; when S keeps no mass, |o_c - o_S,c| <= 2 m max |v_c|.
 */
export function maskBoundProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  return fc.property(rowProblemArbitrary(options), (p) => {
    const o = referenceRow(p, dense);
    const oS = referenceRow(p, p.spec);
    const kept = (j: number) => p.kept[j] === 1;
    const m = droppedMass(p.scores, kept);
    const tol = identityTolerance(p);
    const maxAbsBound = maskErrorBoundMaxAbs(m, p.values, p.dv);
    let sq = 0;
    for (let c = 0; c < p.dv; c++) {
      const err = Math.abs(o[c]! - oS[c]!);
      sq += err * err;
      if (!(err <= maxAbsBound[c]! + tol)) fail('|o_c - o_S,c| > 2 m max|v_c|', { c, err, bound: maxAbsBound[c], m });
    }
    if (!keepsMass(p)) return;
    const coord = maskErrorBound(m, p.values, p.dv);
    for (let c = 0; c < p.dv; c++) {
      const err = Math.abs(o[c]! - oS[c]!);
      if (!(err <= coord[c]! + tol)) fail('|o_c - o_S,c| > m (max v_c - min v_c)', { c, err, bound: coord[c], m });
    }
    const l2 = maskErrorBoundL2(m, p.values, p.dv);
    if (!(Math.sqrt(sq) <= l2 + tol)) fail('||o - o_S|| > m diam', { err: Math.sqrt(sq), bound: l2, m });
    const prob = softmaxRow(p.scores);
    let ps = 0;
    for (let j = 0; j < p.n; j++) if (kept(j)) ps += prob[j]!;
    if (ps > 0) {
      const half = halfL1ToRenormalized(prob, kept);
      if (!(Math.abs(half - m) <= 1e-12)) fail('(1/2) ||p - p_S||_1 != m', { half, m });
    }
  });
}

/**
 * For any row: S' = S united with every key of finite score (here: global tokens at the support) drops nothing of
 * positive probability, and the sparse output equals the dense one bit for bit (error exactly 0, bound 0).
 */
export function exactWhenNothingDroppedProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  return fc.property(rowProblemArbitrary(options), (p) => {
    const support: number[] = [];
    p.scores.forEach((s, j) => s > -Infinity && support.push(j));
    const wide: MaskSpec = union(p.spec, globalTokens(support));
    const kept = keptKeys(wide, p);
    const m = droppedMass(p.scores, (j) => kept[j] === 1);
    if (m !== 0) fail('a superset of the support drops mass', { m });
    if (maskErrorBound(m, p.values, p.dv).some((b) => b !== 0)) fail('bound is not 0 for m = 0', {});
    const o = referenceRow(p, dense);
    const oS = referenceRow(p, wide);
    for (let c = 0; c < p.dv; c++) if (o[c] !== oS[c]) fail('error is not exactly 0', { c, o: o[c], oS: oS[c] });
  });
}

/** For any row and specs A, B: S = keys(A) is inside S' = keys(A union B), and m(S') <= m(S), exactly. */
export function monotoneDroppedMassProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem, MaskSpec]> {
  return fc.property(rowProblemArbitrary(options), keptSetSpecArbitrary(options.maxLen ?? 64), (p, extra) => {
    const wider = keptKeys(union(p.spec, extra), p);
    for (let j = 0; j < p.n; j++) if (p.kept[j] && !wider[j]) fail('keys(A) not inside keys(A union B)', { j });
    const m = droppedMass(p.scores, (j) => p.kept[j] === 1);
    const mWide = droppedMass(p.scores, (j) => wider[j] === 1);
    if (!(mWide <= m)) fail('m(S wider) > m(S)', { m, mWide });
  });
}

function certifies(what: string, cert: number, m: number, extra: Record<string, unknown> = {}): void {
  if (!(cert >= m * (1 - CERTIFICATE_RTOL))) fail(`${what} certificate below the true dropped mass`, { cert, m, ...extra });
}

/**
 * For any row and S: the Cauchy-Schwarz certificate (U_j = |scale| ||q|| ||k_j|| + max dropped b_j) and the per-block
 * certificate (Quest bound from the real per-block min/max of the keys, blocks of `block` keys, each block's
 * dropped keys counted) are >= the true dropped mass.
 */
export function certificateProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem, number]> {
  return fc.property(rowProblemArbitrary(options), fc.integer({ min: 1, max: 16 }), (p, block) => {
    const kept = (j: number) => p.kept[j] === 1;
    const m = droppedMass(p.scores, kept);
    const keptScores = p.scores.filter((_, j) => kept(j));
    const logZ = logSumExp(keptScores);
    const droppedKeys: number[] = [];
    let maxBias = -Infinity;
    for (let j = 0; j < p.n; j++) {
      if (kept(j)) continue;
      for (let c = 0; c < p.d; c++) droppedKeys.push(p.keys[j * p.d + c]!);
      maxBias = Math.max(maxBias, p.bias[j]!);
    }
    certifies('Cauchy-Schwarz', droppedMassCertificate(logZ, cauchySchwarzUpperBounds(p.q, droppedKeys, p.scale, maxBias)), m);
    const nBlocks = Math.ceil(p.n / block);
    const counts = new Float64Array(nBlocks);
    const bounds = new Float64Array(nBlocks);
    for (let b = 0; b < nBlocks; b++) {
      const kmin = new Float64Array(p.d).fill(Infinity);
      const kmax = new Float64Array(p.d).fill(-Infinity);
      let blockBias = -Infinity;
      for (let j = b * block; j < Math.min(p.n, (b + 1) * block); j++) {
        for (let c = 0; c < p.d; c++) {
          kmin[c] = Math.min(kmin[c]!, p.keys[j * p.d + c]!);
          kmax[c] = Math.max(kmax[c]!, p.keys[j * p.d + c]!);
        }
        if (!kept(j)) {
          counts[b]!++;
          blockBias = Math.max(blockBias, p.bias[j]!);
        }
      }
      bounds[b] = blockUpperBound(p.q, kmin, kmax, p.scale) + blockBias;
    }
    certifies('per-block (Quest)', droppedMassCertificateFromLog(logZ, blockLogB(counts, bounds)), m, { block });
  });
}

/**
 * For any row and k = |S|: keeping the k largest scores drops m_k <= the top-k gap bound, and m_k <= m(S)
 * (top-k minimizes the dropped mass among sets of size k).
 */
export function topkGapProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  return fc.property(rowProblemArbitrary(options), (p) => {
    let k = 0;
    p.kept.forEach((x) => (k += x));
    const order = [...p.scores.keys()].sort((a, b) => p.scores[b]! - p.scores[a]! || a - b);
    const top = new Uint8Array(p.n);
    for (const j of order.slice(0, k)) top[j] = 1;
    const mTop = droppedMass(p.scores, (j) => top[j] === 1);
    certifies('top-k gap', topkGapBoundFromScores(p.scores, k), mTop, { k });
    const mS = droppedMass(p.scores, (j) => p.kept[j] === 1);
    if (!(mTop <= mS * (1 + 1e-12) + 1e-300)) fail('top-k drops more than another set of the same size', { k, mTop, mS });
  });
}

/** For any row and S keeping a key of finite score: each coordinate of o_S lies in [min, max] of the kept values. */
export function convexHullProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  return fc.property(rowProblemArbitrary(options), (p) => {
    if (!keepsMass(p)) return;
    const oS = referenceRow(p, p.spec);
    const tol = identityTolerance(p);
    for (let c = 0; c < p.dv; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < p.n; j++) {
        if (!p.kept[j] || p.scores[j] === -Infinity) continue;
        lo = Math.min(lo, p.values[j * p.dv + c]!);
        hi = Math.max(hi, p.values[j * p.dv + c]!);
      }
      if (!(oS[c]! >= lo - tol && oS[c]! <= hi + tol)) fail('o_S outside the convex hull of the kept values', { c, oS: oS[c], lo, hi });
    }
  });
}

/** Specs that often leave a row with no key: empty, A \ A, or any spec (with a sometimes fully masked bias). */
function oftenEmptySpec(maxLen: number): fc.Arbitrary<MaskSpec> {
  const any = keptSetSpecArbitrary(maxLen);
  return fc.oneof(fc.constant<MaskSpec>(empty), any.map((s) => difference(s, s)), any);
}

/** For any row whose kept keys all have score -inf (fully masked): the output row is exactly 0, never NaN. */
export function fullyMaskedRowProperty(options: RowProblemOptions = {}): fc.IPropertyWithHooks<[RowProblem]> {
  const arb = rowProblemArbitrary({ ...options, spec: options.spec ?? oftenEmptySpec(options.maxLen ?? 64) });
  return fc.property(arb, (p) => {
    const y = referenceRow(p, p.spec);
    if (y.some((x) => Number.isNaN(x))) fail('NaN in the output', { y: [...y] });
    if (keepsMass(p)) return;
    if (y.some((x) => x !== 0)) fail('fully masked row does not give 0', { y: [...y] });
  });
}
