// evaluateHead's row work: a key bias's largest value per key block over the keys a row drops (taken from the row's
// whole-block maxima where a dropped interval covers a block, key by key at its ends), and a stride over the rows
// (rowStride: the chooser evaluates at most EVALUATED_ROWS_PER_HEAD rows per head, spread over all of them).
// Checked against the certificate computed here row by row from @attnopt/bounds, with the dropped keys counted and
// their bias maximized key by key. Fixed seeds.

import { guardedDroppedMass, guardFallsBack, keyBlockSummaries, logSumExp, valueRange } from '@attnopt/bounds';
import { causal, gaussian, intersect, type MaskSpec, sinks, slidingWindow, union } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { EVALUATED_ROWS_PER_HEAD, rowStrideFor } from '../src/sparsify/evaluate.js';
import { emptyStats, evaluateHead, type HeadData, headResolver } from '../src/sparsify/index.js';

const N = 200;
const D = 16;
const BLOCK = 16;
const BUDGET = 1e-2;
/** causal ∩ (window of 37 keys ∪ sinks 3): the dropped interval [3, i - 36) starts and ends inside key blocks. */
const FORM = intersect(causal(), union(slidingWindow(36, 0), sinks(3))) as MaskSpec;

/** Rotary-like local scores plus a key bias that varies key by key (slope, seeded noise, spikes). */
function head(): HeadData {
  const w = Array.from({ length: D / 2 }, (_, f) => 0.02 + 0.015 * f);
  const q = new Float64Array(N * D);
  const k = new Float64Array(N * D);
  for (let i = 0; i < N; i++) for (let c = 0; c < D; c++) q[i * D + c] = k[i * D + c] = 1.6 * (c % 2 === 0 ? Math.cos(w[c >> 1]! * i) : Math.sin(w[c >> 1]! * i));
  const noise = gaussian(11, N);
  // a spike of +6 at offset 9 of every key block: a row whose dropped interval ends before it in that block drops
  // none of it (a whole-block maximum there would be 6 too high)
  const bias = Float64Array.from({ length: N }, (_, j) => 0.01 * j + 1.5 * noise[j]! + (j % BLOCK === 9 ? 6 : 0));
  return { q, k, v: Float64Array.from(gaussian(7, N * D)), nq: N, nk: N, d: D, dv: D, scale: 1, softcap: 0, biasRow: (_i, out) => out.set(bias) };
}

/** Per row: the certificate m_hat (0 where nothing is dropped) and whether it falls back, computed directly. */
function certificates(h: HeadData): { mHat: number; fallsBack: boolean }[] {
  const bias = new Float64Array(N);
  h.biasRow!(0, bias);
  const summaries = keyBlockSummaries(h.k, N, D, BLOCK, [0, 1, 2]);
  return Array.from({ length: N }, (_, i) => {
    const dropped = Array.from({ length: Math.max(0, i - 36 - 3) }, (_, t) => 3 + t);
    if (dropped.length === 0) return { mHat: 0, fallsBack: false };
    const counts = new Float64Array(Math.ceil(N / BLOCK));
    const blockBias = new Float64Array(counts.length).fill(-Infinity);
    for (const j of dropped) {
      const b = Math.floor(j / BLOCK);
      counts[b]!++;
      blockBias[b] = Math.max(blockBias[b]!, bias[j]!);
    }
    const score = (j: number) => { let x = 0; for (let c = 0; c < D; c++) x += h.q[i * D + c]! * h.k[j * D + c]!; return x + bias[j]!; };
    const kept = [0, 1, 2, ...Array.from({ length: Math.min(37, i + 1) }, (_, t) => i - t)].filter((j, t, all) => j <= i && all.indexOf(j) === t);
    const mHat = guardedDroppedMass(h.q.subarray(i * D, (i + 1) * D), summaries, 1, 0, logSumExp(kept.map(score)), counts, blockBias);
    return { mHat, fallsBack: guardFallsBack(mHat, valueRange(h.v.subarray(0, (i + 1) * D), D), BUDGET) };
  });
}

function evaluated(h: HeadData, rowStride?: number) {
  const st = [emptyStats()];
  evaluateHead(h, causal(), [FORM], st, headResolver(h), { fullMeasureUpTo: BUDGET, stride: 1, guardBlockSize: BLOCK, ...(rowStride ? { rowStride } : {}) });
  return st[0]!;
}

describe('evaluateHead: key-bias block maxima and a stride over the rows', () => {
  const h = head();
  const direct = certificates(h);

  it('every row: the certificate with the bias maximized over each block\'s dropped keys (intervals ending mid-block)', () => {
    const s = evaluated(h);
    expect(s.rows).toBe(N);
    const most = Math.max(...direct.map((r) => r.mHat));
    expect(most).toBeGreaterThan(0);
    expect(s.maxCertifiedMass).toBeCloseTo(most, 12);
    const falling = direct.filter((r) => r.fallsBack).length;
    expect(falling).toBeGreaterThan(0);
    expect(falling).toBeLessThan(N / 2);
    expect(s.fallbackRows).toBe(falling);
  });

  it('rowStride 3: the rows 0, 3, 6, ... alone, each as it is computed on every row', () => {
    const s = evaluated(h, 3);
    const rows = direct.filter((_, i) => i % 3 === 0);
    expect(s.rows).toBe(Math.ceil(N / 3));
    expect([...s.rowIds]).toEqual(Array.from({ length: Math.ceil(N / 3) }, (_, t) => 3 * t));
    expect(s.maxCertifiedMass).toBeCloseTo(Math.max(...rows.map((r) => r.mHat)), 12);
    expect(s.fallbackRows).toBe(rows.filter((r) => r.fallsBack).length);
    expect([...s.fallbackIds]).toEqual(direct.flatMap((r, i) => (i % 3 === 0 && r.fallsBack ? [i] : [])));
  });

  it('rowStrideFor: every row up to EVALUATED_ROWS_PER_HEAD, then a stride that keeps at most that many', () => {
    expect(rowStrideFor(1)).toBe(1);
    expect(rowStrideFor(EVALUATED_ROWS_PER_HEAD)).toBe(1);
    expect(rowStrideFor(EVALUATED_ROWS_PER_HEAD + 1)).toBe(2);
    for (const nq of [1500, 4096, 8191, 32768]) expect(Math.ceil(nq / rowStrideFor(nq))).toBeLessThanOrEqual(EVALUATED_ROWS_PER_HEAD);
  });
});
