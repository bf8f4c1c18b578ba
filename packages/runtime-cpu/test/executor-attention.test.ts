// attnopt::Attention inside a graph: the executor runs it through the generated kernels (wasm and js, on
// the calling thread and on worker threads) and gives Y and the present key/value; checked against the
// float64 reference. Tolerance (fp32 kernels vs float64): |got - ref| <= 1e-5 + 1e-4 |ref|. Data-dependent specs
// (top-k blocks, LSH) have their key sets selected by the executor from Q and the present K, as the reference
// selects them; a guarded one stays within its budget (plus that tolerance) of the causal reference.

import {
  type AttentionParams,
  attentionNode,
  causal,
  Graph,
  intersect,
  lshBuckets,
  slidingWindow,
  SplitMix64,
  tensorType,
  topkBlocks,
  Value,
} from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuWorkerPool } from '@attnopt/backend-cpu';
import { type ExecTensor, planGraph, runGraph, toNumbers } from '../src/index.js';
import { bool, f32 } from './executor-build.js';

const ATOL = 1e-5;
const RTOL = 1e-4;
const pool = new CpuWorkerPool(2);
afterAll(() => pool.close());

function random(shape: number[], seed: number): ExecTensor {
  const rng = new SplitMix64(seed);
  return f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.nextFloat() * 2 - 1));
}
const t64 = (t: ExecTensor): Tensor64 => ({ shape: t.shape, data: toNumbers(t) });

function expectClose(got: ExecTensor, want: Tensor64): void {
  expect(got.shape).toEqual(want.shape);
  const g = toNumbers(got);
  let bad = 0;
  want.data.forEach((w, k) => {
    if (!(Math.abs(g[k]! - w) <= ATOL + RTOL * Math.abs(w))) bad++;
  });
  expect(bad).toBe(0);
}

/** Q, K, V (and past K/V) -> Attention -> y, presentKey, presentValue. */
function attentionGraph(params: AttentionParams, inputs: Record<string, ExecTensor>): Graph {
  const g = new Graph('attention');
  const v = (name: string) => (inputs[name] ? g.addInput(new Value(name, tensorType(inputs[name]!.dtype, inputs[name]!.shape))) : undefined);
  const outs = { y: new Value('y'), presentKey: new Value('present_key'), presentValue: new Value('present_value') };
  g.addNode(
    attentionNode(
      params,
      { q: v('q')!, k: v('k'), v: v('v'), bias: v('bias'), pastKey: v('past_key'), pastValue: v('past_value') },
      outs,
      'site0',
    ),
  );
  g.outputs.push(outs.y, outs.presentKey, outs.presentValue);
  return g;
}

describe('attnopt::Attention in the executor', () => {
  const B = 2;
  const H = 4;
  const KVH = 2;
  const d = 8;
  const nq = 5;
  const past = 3;
  const params: AttentionParams = { numHeads: H, kvNumHeads: KVH, headDim: d, vHeadDim: d, scale: 0.3, softcap: 0, layout: 'bhsd', spec: causal('bottom-right') };
  const inputs = {
    q: random([B, H, nq, d], 1),
    k: random([B, KVH, nq, d], 2),
    v: random([B, KVH, nq, d], 3),
    // key padding of batch 1's two first keys, as a boolean keep-mask broadcast over heads and queries
    bias: bool([B, 1, 1, past + nq], [...Array(past + nq).fill(1), 0, 0, ...Array(past + nq - 2).fill(1)]),
    past_key: random([B, KVH, past, d], 4),
    past_value: random([B, KVH, past, d], 5),
  };
  const ref64 = {
    q: t64(inputs.q),
    k: t64(inputs.k),
    v: t64(inputs.v),
    bias: { shape: inputs.bias.shape, data: inputs.bias.data as Uint8Array },
    pastKey: t64(inputs.past_key),
    pastValue: t64(inputs.past_value),
  };
  const ref = referenceAttention(params, ref64);

  it.each(['wasm', 'js'] as const)('GQA, past K/V, bool mask, causal: Y and present K/V match the reference (%s, calling thread)', async (backend) => {
    const out = await runGraph(attentionGraph(params, inputs), inputs, { attention: { backend, blockQ: 4, blockK: 8 } });
    expectClose(out['y']!, ref.y);
    expectClose(out['present_key']!, ref.presentKey);
    expectClose(out['present_value']!, ref.presentValue);
  });

  it('on worker threads', async () => {
    const out = await runGraph(attentionGraph(params, inputs), inputs, { pool });
    expectClose(out['y']!, ref.y);
  });

  it('bsd layout with a sliding window: Y is [batch, seq, heads * dim], present K/V in bhsd', async () => {
    const p: AttentionParams = { ...params, kvNumHeads: H, layout: 'bsd', spec: slidingWindow(2) };
    const x = { q: random([B, nq, H * d], 6), k: random([B, nq, H * d], 7), v: random([B, nq, H * d], 8) };
    const out = await runGraph(attentionGraph(p, x), x);
    const r = referenceAttention(p, { q: t64(x.q), k: t64(x.k), v: t64(x.v) });
    expectClose(out['y']!, r.y);
    expectClose(out['present_key']!, r.presentKey);
    expectClose(out['present_value']!, r.presentValue);
  });

  it.each(['wasm', 'js'] as const)('causal ∩ top-k blocks ranked causally, GQA, past K/V, bool mask: the key sets selected from Q and the present K (%s)', async (backend) => {
    const p: AttentionParams = { ...params, spec: intersect(causal('bottom-right'), topkBlocks(2, 2, 'quest', 'bottom-right')) };
    const out = await runGraph(attentionGraph(p, inputs), inputs, { attention: { backend, blockQ: 4, blockK: 8 } });
    const r = referenceAttention(p, ref64);
    expectClose(out['y']!, r.y);
    // and the selection matters: the causal reference differs
    expect(toNumbers(out['y']!).some((y, k) => Math.abs(y - ref.y.data[k]!) > 1e-3)).toBe(true);
  });

  it('LSH buckets (bshd) and top-k blocks by mean scores (packed QKV): the same outputs as the reference', async () => {
    const lsh: AttentionParams = { ...params, kvNumHeads: H, layout: 'bshd', spec: lshBuckets(2, 4, 3) };
    const x = { q: random([B, nq, H, d], 9), k: random([B, nq, H, d], 10), v: random([B, nq, H, d], 11) };
    expectClose((await runGraph(attentionGraph(lsh, x), x))['y']!, referenceAttention(lsh, { q: t64(x.q), k: t64(x.k), v: t64(x.v) }).y);
    const packed: AttentionParams = { ...params, kvNumHeads: H, layout: 'packed-qkv', spec: topkBlocks(2, 1, 'mean') };
    const qkv = { q: random([B, nq, 3 * H * d], 12) };
    expectClose((await runGraph(attentionGraph(packed, qkv), qkv))['y']!, referenceAttention(packed, { q: t64(qkv.q) }).y);
  });

  it('a guarded top-k site runs the guarded kernel: within its budget of the causal reference, its fallback reported', async () => {
    const budget = 1e-3;
    const p: AttentionParams = { ...params, spec: intersect(causal('bottom-right'), topkBlocks(2, 1, 'quest', 'bottom-right')), guard: { budget, blockSize: 2, baseline: causal('bottom-right') } };
    const guards: { fallbackRows: number; rows: number }[] = [];
    const out = await runGraph(attentionGraph(p, inputs), inputs, { onGuard: (g) => guards.push(g) });
    expect(guards).toHaveLength(1);
    expect(guards[0]!.rows).toBe(B * H * nq);
    expect(guards[0]!.fallbackRows).toBeGreaterThan(0); // random inputs: dropped keys carry mass
    const y = toNumbers(out['y']!);
    ref.y.data.forEach((w, k) => expect(Math.abs(y[k]! - w)).toBeLessThanOrEqual(budget + ATOL + RTOL * Math.abs(w)));
  });
});
