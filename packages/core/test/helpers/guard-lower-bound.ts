// How many (head, row) pairs of the guarded test site (helpers/guarded-site.ts: [1, n, H · D], causal) a guarded
// window or top-k form must send to its fallback: those whose true dropped mass m (float64, over the causal keys) times the
// range R of V over all keys breaks the budget. The certificate is never below m up to its float32 rounding,
// m_hat >= m (1 - 1e-6) - 1e-7 (the CPU backend's guarded test states it), so this count is a lower bound any
// correct guard reaches.

import { type MaskSpec, parseSpec, topkBlockIndices } from '@attnopt/ir';
import { D, H, type Tensors, W } from './guarded-site.js';

/**
 * The kept keys of head h, row i, from the chosen spec's text: `window(left=L, right=R)` (any alignment: no past keys
 * here) with `sinks(E)`, or top-k key blocks (`topk_blocks(block=B, k=K[, causal=..])`), resolved on the inputs `t`
 * of `n` positions by @attnopt/ir's selection rule.
 */
export function keptOf(chosen: string, t: Tensors, n: number): (h: number, i: number, j: number) => boolean {
  const spec = parseSpec(chosen) as MaskSpec;
  const leaf = spec.kind === 'intersect' ? spec.parts.find((p) => p.kind === 'topkBlocks') : spec.kind === 'topkBlocks' ? spec : undefined;
  if (leaf?.kind === 'topkBlocks') {
    const head = (x: Float32Array | Float64Array, h: number) => Float64Array.from({ length: n * D }, (_, e) => x[Math.floor(e / D) * W + h * D + (e % D)]!);
    const kept = Array.from({ length: H }, (_, h) => {
      const qk = { q: head(t.q, h), k: head(t.k, h), nq: n, nk: n, d: D, scale: 1 / Math.sqrt(D) };
      return Array.from({ length: Math.ceil(n / leaf.block) }, (_, r) => new Set(topkBlockIndices(leaf, qk, r)));
    });
    return (h, i, j) => kept[h]![Math.floor(i / leaf.block)]!.has(Math.floor(j / leaf.block));
  }
  const w = /window\(left=(\d+), right=(-?\d+)(?:, align=[a-z-]+)?\)/.exec(chosen);
  if (!w) throw new Error(`expected a window or top-k blocks in the chosen spec, got ${chosen}`);
  const left = Number(w[1]);
  const right = Number(w[2]);
  const sinks = Number(/sinks\((\d+)\)/.exec(chosen)?.[1] ?? 0);
  return (_h, i, j) => j < sinks || (i - j <= left && j - i <= right);
}

/** (head, row) pairs with (m (1 - 1e-6) - 1e-7) R > budget on inputs `t` of `n` positions. */
export function mustFallBack(t: Tensors, n: number, kept: (h: number, i: number, j: number) => boolean, budget: number): number {
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
        if (!kept(h, i, j)) dropped += e;
      }
      if (((dropped / z) * (1 - 1e-6) - 1e-7) * range > budget) count++;
    }
  }
  return count;
}
