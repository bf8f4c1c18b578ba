// A guarded attnopt::Attention in the executor runs the guarded kernel: window(left=31) inside causal, budget
// 1e-3 on every output coordinate, with a key bias (ALiBi as slope_h · j, [1, H, 1, n]) or none, on local
// inputs (a topic per span of 32 keys) and on repeated spans (each query matches a key about 100 positions back,
// far outside the window).
// Checked against the float64 reference of the baseline (causal, same bias):
//   - every output coordinate within the budget plus float32 rounding: |y - ref| <= budget + 1e-5 + 1e-4 |ref|;
//   - the fallback reported through onGuard counts at least every (head, row) whose true dropped mass m (float64)
//     times the range R of V breaks the budget, m_hat >= m (1 - 1e-6) - 1e-7 being the certificate's float32
//     rounding (the backend's guarded test); on repeated spans that count is not 0, and the unguarded sparse form
//     (float64) is off by more than the budget there, so the guard is what keeps the output within it.

import { type AttentionParams, attentionNode, causal, Graph, intersect, slidingWindow, tensorType, Value } from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { CpuWorkerPool } from '@attnopt/backend-cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { type ExecTensor, type GuardEvent, runGraph, toNumbers } from '../src/index.js';
import { f32 } from './executor-build.js';

const H = 2;
const D = 32;
const N = 320;
const BUDGET = 1e-3;
const ATOL = 1e-5;
const RTOL = 1e-4;
const SLOPES = [1 / 16, 1 / 256]; // 2^(-8 (h + 1) / H) for H = 2

const sparse = intersect(causal(), slidingWindow(31, 0));
const params = (guarded: boolean): AttentionParams => ({
  numHeads: H,
  kvNumHeads: H,
  headDim: D,
  vHeadDim: D,
  scale: 1 / Math.sqrt(D),
  softcap: 0,
  layout: 'bhsd',
  spec: guarded ? sparse : causal(),
  ...(guarded ? { guard: { budget: BUDGET, blockSize: 32, baseline: causal() } } : {}),
});

/**
 * Q, K, V [1, H, N, D] where attention is local: keys follow a topic per span of 32 positions (a random direction
 * u_t of norm A, plus noise 0.01), each query looks for its own span's topic (score 40 against about N(0, 7) for
 * the others); V uniform in [-1, 1].
 */
function localInputs(seed: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const A = Math.sqrt(40 * Math.sqrt(D));
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(H * N * D);
  const v = new Float64Array(H * N * D);
  let s = seed;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5;
  for (let h = 0; h < H; h++) {
    const topics = Array.from({ length: Math.ceil(N / 32) }, () => {
      const u = Array.from({ length: D }, rnd);
      const norm = Math.hypot(...u);
      return u.map((x) => (A * x) / norm);
    });
    for (let i = 0; i < N; i++) {
      const at = (h * N + i) * D;
      const u = topics[Math.floor(i / 32)]!;
      for (let c = 0; c < D; c++) {
        q[at + c] = Math.fround(u[c]!);
        k[at + c] = Math.fround(u[c]! + 0.02 * rnd());
        v[at + c] = Math.fround(2 * rnd());
      }
    }
  }
  return { q, k, v };
}

/** From 100 on the keys repeat those 100 earlier, and each query looks for the copy's successor (an induction head). */
function repeatSpans(t: { q: Float64Array; k: Float64Array; v: Float64Array }) {
  for (let h = 0; h < H; h++) {
    for (let i = 100; i < N; i++) {
      for (let c = 0; c < D; c++) t.k[(h * N + i) * D + c] = t.k[(h * N + i - 100) * D + c]!;
      for (let c = 0; c < D; c++) t.q[(h * N + i) * D + c] = Math.fround(1.2 * t.k[(h * N + i - 99) * D + c]!);
    }
  }
  return t;
}

/** ALiBi written as a key bias: slope_h · j, [1, H, 1, N] (the -slope_h · i part is constant along a row). */
function alibi(): Float64Array {
  const b = new Float64Array(H * N);
  for (let h = 0; h < H; h++) for (let j = 0; j < N; j++) b[h * N + j] = Math.fround(SLOPES[h]! * j);
  return b;
}

function guardedGraph(bias: boolean): Graph {
  const g = new Graph('guarded');
  const io = (name: string, shape: number[]) => g.addInput(new Value(name, tensorType('f32', shape)));
  const [q, k, v] = ['q', 'k', 'v'].map((x) => io(x, [1, H, N, D]));
  const y = new Value('y');
  g.addNode(attentionNode(params(true), { q: q!, k: k!, v: v!, ...(bias ? { bias: io('bias', [1, H, 1, N]) } : {}) }, { y }, 'site0'));
  g.outputs.push(y);
  return g;
}

/** (head, row) pairs whose certificate must exceed the budget: (m (1 - 1e-6) - 1e-7) R > budget, m and R in float64. */
function mustFallBack(probs: Tensor64, v: Float64Array): number {
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

const pool = new CpuWorkerPool(2);
afterAll(() => pool.close());

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let x = 0; x < a.length; x++) m = Math.max(m, Math.abs(a[x]! - b[x]!));
  return m;
};

describe('a guarded site in the executor', () => {
  for (const bias of [false, true]) {
    for (const family of ['local', 'repeated'] as const) {
      it(`${family} inputs${bias ? ', ALiBi key bias [1, H, 1, n]' : ''}: within the budget of the causal reference, fallback reported`, async () => {
        const t = family === 'local' ? localInputs(7) : repeatSpans(localInputs(7));
        const b = alibi();
        const shape = [1, H, N, D];
        const feeds: Record<string, ExecTensor> = { q: f32(shape, [...t.q]), k: f32(shape, [...t.k]), v: f32(shape, [...t.v]), ...(bias ? { bias: f32([1, H, 1, N], [...b]) } : {}) };
        const events: GuardEvent[] = [];
        const out = await runGraph(guardedGraph(bias), feeds, { onGuard: (e) => events.push(e) });
        const t64 = (data: Float64Array): Tensor64 => ({ shape, data });
        const inputs = { q: t64(t.q), k: t64(t.k), v: t64(t.v), ...(bias ? { bias: { shape: [1, H, 1, N], data: b } } : {}) };
        const ref = referenceAttention({ ...params(false), scoresMode: 'softmax' }, inputs);
        const y = toNumbers(out['y']!);
        let over = 0;
        ref.y.data.forEach((w, x) => {
          if (!(Math.abs(y[x]! - w) <= BUDGET + ATOL + RTOL * Math.abs(w))) over++;
        });
        expect(over).toBe(0);

        expect(events).toHaveLength(1);
        const [e] = events;
        expect(e!.node.name).toBe('site0');
        expect(e!).toMatchObject({ budget: BUDGET, rows: H * N });
        const lowerBound = mustFallBack(ref.scores!, t.v);
        console.log(`${family}${bias ? ' + ALiBi' : ''}: ${e!.fallbackRows} of ${e!.rows} rows fell back (${e!.recomputedRows} recomputed); at least ${lowerBound} must`);
        expect(e!.fallbackRows).toBeGreaterThanOrEqual(lowerBound);
        expect(e!.recomputedRows).toBeGreaterThanOrEqual(e!.fallbackRows);
        expect(e!.recomputedRows).toBeLessThanOrEqual(e!.rows);
        if (family === 'repeated') {
          expect(lowerBound).toBeGreaterThan(0);
          // without the guard the sparse form breaks the budget on these inputs
          const unguarded = referenceAttention({ ...params(false), spec: sparse }, inputs).y.data;
          expect(maxAbsDiff(unguarded, ref.y.data)).toBeGreaterThan(BUDGET);
        } else {
          // local attention: the window holds the mass, few rows need the fallback
          expect(e!.fallbackRows).toBeLessThan(e!.rows / 4);
        }
      });
    }
  }

  it('on worker threads: the same Y and the same fallback as on the calling thread', async () => {
    const t = repeatSpans(localInputs(9));
    const shape = [1, H, N, D];
    const feeds: Record<string, ExecTensor> = { q: f32(shape, [...t.q]), k: f32(shape, [...t.k]), v: f32(shape, [...t.v]), bias: f32([1, H, 1, N], [...alibi()]) };
    const local: GuardEvent[] = [];
    const threads: GuardEvent[] = [];
    const a = await runGraph(guardedGraph(true), feeds, { onGuard: (e) => local.push(e) });
    const b = await runGraph(guardedGraph(true), feeds, { pool, onGuard: (e) => threads.push(e) });
    expect(toNumbers(b['y']!)).toEqual(toNumbers(a['y']!));
    expect(threads.map((e) => [e.fallbackRows, e.recomputedRows, e.rows])).toEqual(local.map((e) => [e.fallbackRows, e.recomputedRows, e.rows]));
    expect(local[0]!.fallbackRows).toBeGreaterThan(0);
  });
});
