// Whole heads of attention inputs that break sparse forms, for kernel tests of guarded attention (every query row
// of every head at once, where row-problem.ts builds one row): Q, K, V [1, heads, n, d] in bhsd, f32 values held in
// float64, from seededValues (Q and K in [-1, 1], V in [-2, 2]) and then, per family:
//   natural     as drawn (diffuse attention: every row that drops a key carries mass there);
//   repeated    a span of `period` tokens repeats, its queries sharpened 4x: each query matches the keys one period
//               back and every period before (an induction head's input);
//   outlier     key 1 is 6 / sqrt(scale d) on every channel and every query is |q|: the key far from a window that
//               every query prefers;
//   sinkMass    the same with key 0, the sink, so that a form with sinks keeps most of the mass;
//   logits80    q and k of equal magnitude sqrt(80 / (scale d)) per channel: logits up to 80;
//   equalKeys   every key equals key 0 (uniform attention);
//   sinkLocal   the attention-sink pattern, not adversarial: every query points along one direction u (A = 2.5 /
//               scale along it), key 0 lies along u 16x longer than the content keys (its logit 40), and each query
//               leans towards its own key: local attention whose mass sits on the sink, where a guarded window with
//               sinks recomputes no row (so a test sees its certificate pass).

import type { Tensor64 } from '@attnopt/reference';
import { seededValues } from './attention-inputs.js';

export const ADVERSARIAL_HEAD_FAMILIES = ['natural', 'repeated', 'outlier', 'sinkMass', 'logits80', 'equalKeys', 'sinkLocal'] as const;
export type AdversarialHeadFamily = (typeof ADVERSARIAL_HEAD_FAMILIES)[number];

export interface AdversarialHeadOptions {
  readonly n: number;
  readonly d: number;
  readonly heads: number;
  readonly seed: number;
  /** The scale the kernel multiplies q · k by (it sets the outlier's and logits80's magnitudes). */
  readonly scale: number;
  /** The repeated family's period (default 5). */
  readonly period?: number;
}

/** Q, K, V [1, heads, n, d] of one family (see the comment at the top). */
export function adversarialHeads(family: AdversarialHeadFamily, o: AdversarialHeadOptions): { q: Tensor64; k: Tensor64; v: Tensor64 } {
  const { n, d, heads: H, seed, scale } = o;
  const period = o.period ?? 5;
  const q = seededValues(seed * 3 + 1, H * n * d, 1);
  const k = seededValues(seed * 3 + 2, H * n * d, 1);
  const v = seededValues(seed * 3 + 3, H * n * d, 2);
  const at = (h: number, i: number) => (h * n + i) * d;
  for (let h = 0; h < H; h++) {
    if (family === 'repeated') {
      // the span's queries sharpened 4x, then every token i >= period is token i mod period again
      for (let x = at(h, 0); x < at(h, Math.min(n, period)); x++) q[x] = 4 * q[x]!;
      for (let i = period; i < n; i++) {
        for (let c = 0; c < d; c++) {
          k[at(h, i) + c] = k[at(h, i % period) + c]!;
          q[at(h, i) + c] = q[at(h, i % period) + c]!;
        }
      }
    } else if (family === 'outlier' || family === 'sinkMass') {
      const j = family === 'sinkMass' ? 0 : Math.min(n - 1, 1);
      for (let c = 0; c < d; c++) k[at(h, j) + c] = 6 / Math.sqrt(scale * d);
      for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) q[at(h, i) + c] = Math.abs(q[at(h, i) + c]!);
    } else if (family === 'logits80') {
      const a = Math.sqrt(80 / (scale * d));
      for (let x = at(h, 0); x < at(h + 1, 0); x++) {
        q[x] = Math.sign(q[x]!) * a;
        k[x] = Math.sign(k[x]!) * a;
      }
    } else if (family === 'equalKeys') {
      for (let i = 1; i < n; i++) for (let c = 0; c < d; c++) k[at(h, i) + c] = k[at(h, 0) + c]!;
    } else if (family === 'sinkLocal') {
      const u = seededValues(h + 99, d, 1);
      const norm = Math.hypot(...u);
      const A = 2.5 / scale;
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < d; c++) {
          const x = at(h, i) + c;
          q[x] = (A * u[c]!) / norm + 0.5 * k[x]! + 0.1 * q[x]!;
          if (i === 0) k[x] = (16 * u[c]!) / norm;
        }
      }
    }
  }
  const t = (data: Float64Array): Tensor64 => ({ shape: [1, H, n, d], data: data.map(Math.fround) });
  return { q: t(q), k: t(k), v: t(v) };
}
