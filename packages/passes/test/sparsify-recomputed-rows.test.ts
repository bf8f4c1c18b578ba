// The guarded lowering recomputes a fallback row in every head of its Attention when any head falls back there,
// so the rows a guarded site recomputes are the union over its heads of their fallback rows, not their mean. The
// chooser prices that union (recomputedRowRate). Two heads of one site, the same rows (the same rowBase): head A
// attends locally on the first half of the rows and uniformly on the second, head B the other way round. A
// uniform row past the window drops most of its mass and falls back; a local one drops almost none.

import { causal, intersect, type MaskSpec, slidingWindow } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { emptyStats, evaluateHead, type HeadData, headResolver, mergedStats, recomputedRowRate } from '../src/sparsify/index.js';

const N = 256;
const D = 16;
const W = 32;
const window: MaskSpec = intersect(causal(), slidingWindow(W, 0)) as MaskSpec;
const freqs = Array.from({ length: D / 2 }, (_, f) => 0.01 + 0.01 * f);

/** A head whose row i is local (rotary-like, peaked at j = i) where `local(i)`, else uniform (q_i = 0). */
function head(local: (i: number) => boolean): HeadData {
  const q = new Float64Array(N * D);
  const k = new Float64Array(N * D);
  const v = new Float64Array(N * D);
  for (let i = 0; i < N; i++) {
    freqs.forEach((w, f) => {
      k[i * D + 2 * f] = 6 * Math.cos(w * i);
      k[i * D + 2 * f + 1] = 6 * Math.sin(w * i);
      if (local(i)) {
        q[i * D + 2 * f] = 6 * Math.cos(w * i);
        q[i * D + 2 * f + 1] = 6 * Math.sin(w * i);
      }
    });
    for (let c = 0; c < D; c++) v[i * D + c] = ((i * 7 + c * 3) % 11) / 5 - 1;
  }
  return { q, k, v, nq: N, nk: N, d: D, dv: D, scale: 1, softcap: 0 };
}

function stats(h: HeadData) {
  const st = [emptyStats()];
  evaluateHead(h, causal(), [window], st, headResolver(h), { fullMeasureUpTo: 1e-3, stride: 1, guardBlockSize: 16, rowBase: 1000 });
  return st[0]!;
}

describe('the rows a guarded site recomputes: the union over its heads', () => {
  it('two heads falling back on different rows recompute the rows of both, in each', () => {
    const a = stats(head((i) => i < N / 2));
    const b = stats(head((i) => i >= N / 2));
    // every uniform row past the window falls back, in its own head only
    const uniformPast = (lo: number, hi: number) => Array.from({ length: hi - lo }, (_, x) => 1000 + lo + x).filter((id) => id - 1000 > W);
    for (const id of uniformPast(N / 2, N)) expect(a.fallbackIds.has(id), `head A row ${id - 1000}`).toBe(true);
    for (const id of uniformPast(0, N / 2)) expect(b.fallbackIds.has(id), `head B row ${id - 1000}`).toBe(true);
    const site = mergedStats([a, b]);
    const union = new Set([...a.fallbackIds, ...b.fallbackIds]);
    expect(site.rowIds.size).toBe(N);
    expect(recomputedRowRate(site)).toBe(union.size / N);
    // about twice the per-(head, row) rate the chooser reports
    const perHeadRow = site.fallbackRows / site.rows;
    expect(recomputedRowRate(site)).toBeGreaterThan(1.8 * perHeadRow);
    expect(recomputedRowRate(a)).toBe(a.fallbackIds.size / N);
  });
});
