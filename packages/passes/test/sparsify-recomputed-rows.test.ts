// The guarded lowering recomputes, in every (batch, head) of a call, as many rows as the (batch, head) with the most
// fallback rows (TopK of its flags), so the rows a guarded site recomputes per head are the most of any head, not
// their mean and not their union. The chooser prices that (recomputedRowRate). Two heads of one site, the same rows (the same rowBase): head A
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

function stats(h: HeadData, rowBase = 1000, st = emptyStats()) {
  evaluateHead(h, causal(), [window], [st], headResolver(h), { fullMeasureUpTo: 1e-3, stride: 1, guardBlockSize: 16, rowBase });
  return st;
}

describe('the rows a guarded site recomputes: in each (batch, head), as many as the one with the most', () => {
  it('two heads falling back on different rows: each recomputes as many rows as the head with more, not their union', () => {
    const a = stats(head((i) => i < N / 2));
    const b = stats(head((i) => i >= N / 2));
    // every uniform row past the window falls back, in its own head only
    expect(a.fallbackRows).toBe(N / 2);
    expect(b.fallbackRows).toBe(N / 2 - W - 1);
    const site = mergedStats([a, b]);
    expect(recomputedRowRate(site)).toBe(N / 2 / N);
    expect(recomputedRowRate(a)).toBe(a.fallbackRows / N);
    expect(recomputedRowRate(b)).toBe(b.fallbackRows / N);
    // the union would be every row past the window in one head or the other: twice as many
    expect(recomputedRowRate(site)).toBeLessThan((a.fallbackRows + b.fallbackRows) / N);
  });

  it('two batches of one sample: every batch recomputes as many rows as the batch with the most', () => {
    // one head, batch 0 falls back on the second half, batch 1 only past the window of the first half
    const rowBase = (batch: number) => (0 * 65536 + batch) * 2 ** 20;
    const st = stats(head((i) => i >= N / 2), rowBase(1), stats(head((i) => i < N / 2), rowBase(0)));
    expect(st.fallbackRows).toBe(N / 2 + (N / 2 - W - 1));
    expect(recomputedRowRate(st)).toBe((2 * (N / 2)) / (2 * N));
    // another sample is its own call: its most does not reach the first sample's batches
    const other = stats(head(() => true), (1 * 65536 + 0) * 2 ** 20, stats(head((i) => i < N / 2), rowBase(0)));
    expect(recomputedRowRate(other)).toBe(N / 2 / (2 * N));
  });
});
