// How many (head, row) pairs of the guarded test site (helpers/guarded-site.ts: [1, n, H · D], causal) a guarded
// window must send to its fallback: those whose true dropped mass m (float64, over the causal keys) times the
// range R of V over all keys breaks the budget. The certificate is never below m up to its float32 rounding,
// m_hat >= m (1 - 1e-6) - 1e-7 (the CPU backend's guarded test states it), so this count is a lower bound any
// correct guard reaches.

import { D, H, type Tensors, W } from './guarded-site.js';

/** The kept keys of `window(left=L, right=R)` (any alignment: no past keys here) with `sinks(E)`, from the chosen spec's text. */
export function keptOf(chosen: string): (i: number, j: number) => boolean {
  const w = /window\(left=(\d+), right=(-?\d+)(?:, align=[a-z-]+)?\)/.exec(chosen);
  if (!w) throw new Error(`expected a window in the chosen spec, got ${chosen}`);
  const left = Number(w[1]);
  const right = Number(w[2]);
  const sinks = Number(/sinks\((\d+)\)/.exec(chosen)?.[1] ?? 0);
  return (i, j) => j < sinks || (i - j <= left && j - i <= right);
}

/** (head, row) pairs with (m (1 - 1e-6) - 1e-7) R > budget on inputs `t` of `n` positions. */
export function mustFallBack(t: Tensors, n: number, kept: (i: number, j: number) => boolean, budget: number): number {
  let count = 0;
  for (let h = 0; h < H; h++) {
    let range = 0;
    for (let c = 0; c < D; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < n; j++) {
        lo = Math.min(lo, t.v[j * W + h * D + c]!);
        hi = Math.max(hi, t.v[j * W + h * D + c]!);
      }
      range = Math.max(range, hi - lo);
    }
    const s = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let c = 0; c < D; c++) dot += t.q[i * W + h * D + c]! * t.k[j * W + h * D + c]!;
        s[j] = dot / Math.sqrt(D);
        max = Math.max(max, s[j]!);
      }
      let z = 0;
      let dropped = 0;
      for (let j = 0; j <= i; j++) {
        const e = Math.exp(s[j]! - max);
        z += e;
        if (!kept(i, j)) dropped += e;
      }
      if (((dropped / z) * (1 - 1e-6) - 1e-7) * range > budget) count++;
    }
  }
  return count;
}
