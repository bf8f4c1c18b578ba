// evaluateHead's guarded statistics (BOUNDS.md (b')): the certificate m_hat computed from key-block summaries is
// never below the dropped mass measured in float64; local attention falls back on no row, uniform attention on
// every row; ballOnlyRows counts the rows the ball certifies and the box alone would recompute, exactLogZRows those
// the log-sum-exp of the kept scores certifies and their largest alone would recompute. Fixed seeds.

import { guardedDroppedMass, guardFallsBack, keyBlockSummaries, logSumExp, valueRange } from '@attnopt/bounds';
import { causal, gaussian, type MaskSpec, slidingWindow, intersect } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { emptyStats, evaluateHead, type HeadData, headResolver } from '../src/sparsify/index.js';

function head(n: number, d: number, qk: (i: number, c: number) => number, kk: (j: number, c: number) => number, seed: number): HeadData {
  const q = new Float64Array(n * d);
  const k = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) { q[i * d + c] = qk(i, c); k[i * d + c] = kk(i, c); }
  return { q, k, v: Float64Array.from(gaussian(seed, n * d)), nq: n, nk: n, d, dv: d, scale: 1, softcap: 0 };
}

const N = 256;
const D = 16;
const window: MaskSpec = intersect(causal(), slidingWindow(32, 0)) as MaskSpec;

function stats(h: HeadData, budget: number) {
  const st = [emptyStats()];
  evaluateHead(h, causal(), [window], st, headResolver(h), { fullMeasureUpTo: budget, stride: 1, guardBlockSize: 16 });
  return st[0]!;
}

/**
 * Rows of `h` (the window of 33 keys over causal, blocks of 16) whose certificate, log Z_S taken from the kept scores
 * by `logZ` and U by `which`, is over the budget 1e-2 (R over the row's causal keys): computed here, from the bounds
 * functions, not by evaluateHead.
 */
function rowsOver(h: HeadData, d: number, logZ: (kept: number[]) => number, which: 'box' | 'box-ball'): number {
  let over = 0;
  const summaries = keyBlockSummaries(h.k, N, d, 16);
  for (let i = 0; i < N; i++) {
    const scores = Array.from({ length: i + 1 }, (_, j) => { let x = 0; for (let c = 0; c < d; c++) x += h.q[i * d + c]! * h.k[j * d + c]!; return x; });
    const counts = new Float64Array(N / 16);
    for (let j = 0; j < i - 32; j++) counts[Math.floor(j / 16)]!++;
    if (counts.every((c) => c === 0)) continue;
    const mHat = guardedDroppedMass(h.q.subarray(i * d, (i + 1) * d), summaries, 1, 0, logZ(scores.slice(Math.max(0, i - 32))), counts, undefined, which);
    if (guardFallsBack(mHat, valueRange(h.v.subarray(0, (i + 1) * d), d), 1e-2)) over++;
  }
  return over;
}

describe('guarded statistics of a window on calibration data', () => {
  it('local attention (scores fall fast with |i - j|): the certificate covers the dropped mass, no row falls back', () => {
    // rotary-like features: q_i . k_j = A sum_f cos(w_f (i - j)), peaked at j = i
    const w = Array.from({ length: D / 2 }, (_, f) => 0.01 + 0.01 * f);
    const A = 6;
    const feat = (t: number, c: number) => (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t)) * A;
    const h = head(N, D, feat, feat, 3);
    const s = stats(h, 1e-2);
    expect(s.rows).toBe(N);
    expect(s.maxCertifiedMass).toBeGreaterThanOrEqual(s.maxDroppedMass * (1 - 1e-12)); // rounding of the two sums
    expect(s.fallbackRows).toBe(0);
    // the box alone certifies every row the box and the ball do: the lowering may leave the ball out; so does the
    // largest kept logit alone (the peak carries the kept mass)
    expect(s.ballOnlyRows).toBe(0);
    expect(s.exactLogZRows).toBe(0);
    expect(s.exactLogZBoxRows).toBe(0);
  });

  it('local attention over noisy keys: the ball certifies rows the box alone would recompute (ballOnlyRows counts them)', () => {
    // the rotary-like features of d 32 plus isotropic noise 1.2 on the keys: a box per channel widens with the noise
    // in every channel, the ball around its centre by about the noise's norm
    const d = 32;
    const w = Array.from({ length: d / 2 }, (_, f) => 0.01 + 0.01 * f);
    const noise = gaussian(5, N * d);
    const feat = (t: number, c: number) => (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t)) * 4;
    const h = head(N, d, feat, (j, c) => feat(j, c) + 1.2 * noise[j * d + c]!, 3);
    const s = stats(h, 1e-2);
    expect(s.fallbackRows).toBe(0);
    expect(s.ballOnlyRows).toBeGreaterThan(0);
    // the count, independently: rows whose box-only certificate is over the budget
    const boxOver = rowsOver(h, d, logSumExp, 'box');
    expect(s.ballOnlyRows).toBe(boxOver);
  });

  it('a flatter peak (amplitude 1.5): log Z_S as the largest kept logit alone recomputes rows the log-sum-exp certifies (exactLogZRows)', () => {
    const w = Array.from({ length: D / 2 }, (_, f) => 0.01 + 0.01 * f);
    const feat = (t: number, c: number) => (c % 2 === 0 ? Math.cos(w[c >> 1]! * t) : Math.sin(w[c >> 1]! * t)) * 1.5;
    const h = head(N, D, feat, feat, 3);
    const s = stats(h, 1e-2);
    expect(s.fallbackRows).toBe(0);
    expect(s.exactLogZRows).toBeGreaterThan(0);
    // the count, independently: rows whose certificate (the box and the ball) with log Z_S the largest kept score is
    // over the budget; the box alone loses no more rows here
    const maxLogitOver = rowsOver(h, D, (kept) => Math.max(...kept), 'box-ball');
    expect(s.exactLogZRows).toBe(maxLogitOver);
    expect(s.exactLogZBoxRows).toBe(maxLogitOver);
    expect(s.ballOnlyRows).toBe(0);
  });

  it('uniform attention (all keys equal): every row past the window falls back', () => {
    const h = head(N, D, () => 1, () => 0.5, 4);
    const s = stats(h, 1e-2);
    expect(s.maxCertifiedMass).toBeGreaterThanOrEqual(s.maxDroppedMass * (1 - 1e-12)); // rounding of the two sums
    // rows 0..32 keep every causal key (nothing dropped); the other N - 33 drop mass (j - 32)/(j + 1) > 1e-2 / R
    expect(s.fallbackRows).toBe(N - 33);
  });
});
