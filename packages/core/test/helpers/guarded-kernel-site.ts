// The guarded kernel test site of compile (window(left=31) inside causal, budget 1e-3, summary block 32, 2 heads
// of 32, n = 320, bhsd unless asked), its input families, an ALiBi key bias and the fallback any correct guard
// must reach on given inputs.

import {
  type AttentionLayout,
  type AttentionParams,
  attentionNode,
  causal,
  Graph,
  intersect,
  slidingWindow,
  SplitMix64,
  tensorType,
  Value,
} from '@attnopt/ir';
import type { Tensor64 } from '@attnopt/reference';

export const H = 2;
export const D = 32;
export const N = 320;
export const BUDGET = 1e-3;
export const ATOL = 1e-5;
export const RTOL = 1e-4;
const SLOPES = [1 / 16, 1 / 256]; // ALiBi: 2^(-8 (h + 1) / H)
export const sparse = intersect(causal(), slidingWindow(31, 0));

export function site(options: { guarded: boolean; bias?: boolean; layout?: AttentionLayout; dtype?: 'f32' | 'f16'; past?: boolean }) {
  const layout = options.layout ?? 'bhsd';
  const g = new Graph('guarded');
  const shape = layout === 'bhsd' ? [1, H, N, D] : [1, N, H, D];
  const io = (name: string, s: readonly (number | string)[] = shape) => g.addInput(new Value(name, tensorType(options.dtype ?? 'f32', s)));
  const [q, k, v] = [io('q'), io('k'), io('v')];
  const y = new Value('y', tensorType(options.dtype ?? 'f32', shape));
  const params: AttentionParams = {
    numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout, spec: sparse,
    ...(options.guarded ? { guard: { budget: BUDGET, blockSize: 32, baseline: causal() } } : {}),
  };
  const cache = options.past ? { pastKey: io('past_key', [1, H, 'past', D]), pastValue: io('past_value', [1, H, 'past', D]) } : {};
  const node = g.addNode(attentionNode(params, { q: q!, k: k!, v: v!, ...(options.bias ? { bias: io('bias', [1, H, 1, N]) } : {}), ...cache }, { y }, 'attention'));
  g.outputs.push(y);
  return { id: 'site0', node };
}

export type Family = 'natural' | 'local' | 'repeated';

/**
 * Q, K, V [1, H, N, D], V uniform in [-1, 1]: natural (Q, K uniform in [-2, 2]: diffuse, every row that drops a
 * key must fall back), local (a topic per span of 32 keys, a direction of norm A plus noise 0.01, each query on its
 * own span's topic: score 40 against about N(0, 7)) or repeated spans.
 */
export function inputs(family: Family, seed: number) {
  const rng = new SplitMix64(seed);
  const draw = (a: number) => Float64Array.from({ length: H * N * D }, () => Math.fround(a * (2 * rng.nextFloat() - 1)));
  const [q, k, v] = [draw(2), draw(2), draw(1)];
  if (family === 'local') {
    const A = Math.sqrt(40 * Math.sqrt(D));
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < N / 32; t++) {
        const u = Array.from({ length: D }, () => 2 * rng.nextFloat() - 1);
        const norm = Math.hypot(...u);
        for (let i = 32 * t; i < 32 * t + 32; i++) {
          for (let c = 0; c < D; c++) {
            q[(h * N + i) * D + c] = Math.fround((A * u[c]!) / norm);
            k[(h * N + i) * D + c] = Math.fround((A * u[c]!) / norm + 0.01 * (2 * rng.nextFloat() - 1));
          }
        }
      }
    }
  }
  if (family === 'repeated') {
    // from 100 on the keys repeat those 100 earlier; each query looks for the copy's successor, 99 back
    for (let h = 0; h < H; h++) {
      for (let i = 100; i < N; i++) {
        for (let c = 0; c < D; c++) k[(h * N + i) * D + c] = k[(h * N + i - 100) * D + c]!;
        for (let c = 0; c < D; c++) q[(h * N + i) * D + c] = Math.fround(3 * k[(h * N + i - 99) * D + c]!);
      }
    }
  }
  return { q, k, v };
}

export function alibi(): Float64Array {
  const b = new Float64Array(H * N);
  for (let h = 0; h < H; h++) for (let j = 0; j < N; j++) b[h * N + j] = Math.fround(SLOPES[h]! * j);
  return b;
}

/** (head, row) pairs with (m (1 - 1e-6) - 1e-7) R > budget: m the mass window(31) drops, R V's largest column range. */
export function mustFallBack(probs: Tensor64, v: Float64Array): number {
  let count = 0;
  for (let h = 0; h < H; h++) {
    let range = 0;
    for (let c = 0; c < D; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < N; j++) {
        lo = Math.min(lo, v[(h * N + j) * D + c]!);
        hi = Math.max(hi, v[(h * N + j) * D + c]!);
      }
      range = Math.max(range, hi - lo);
    }
    for (let i = 0; i < N; i++) {
      let dropped = 0;
      for (let j = 0; j < i - 31; j++) dropped += probs.data[(h * N + i) * N + j]!;
      if ((dropped * (1 - 1e-6) - 1e-7) * range > BUDGET) count++;
    }
  }
  return count;
}
