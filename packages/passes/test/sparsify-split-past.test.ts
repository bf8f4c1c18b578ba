// Sparsify, then lower, a GQA site with cached keys whose heads differ (bhsd, 4 query heads of 32 over 2 key/value
// heads, causal(past)): heads 0-1 read positional keys (rotary-like features, attention local), heads 2-3 noise
// (attention spread). On calibration data of 256 new queries over 3840 cached keys (at 768 the split's saving is
// within the cost model's margin), the chooser (onnxruntime's cost model, budget 1e-2, guarded tier) splits the site
// into head groups: heads 0-1 a guarded sparse form, heads 2-3 causal. Its notes say that a decode step runs the site's exact dense form through one If around the whole split,
// and the lowering emits that If (split-decode-route.ts). In onnxruntime, on inputs of another seed: a decode step
// (1 query over 1000 cached keys) gives the causal float64 reference on every head within 1e-5, with no row
// certified (flags [0, 0, 0]); a prefill call (256 queries over 768) gives it within the budget + 1e-4 on heads 0-1
// (the guarded group) and 1e-5 on heads 2-3. Priced with decode steps after the call, each step of the split costs
// the site as written plus the route's If (no group's own form, no copies of the cache).

import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, Graph, isAttention, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { DECODE_ROUTE_BRANCH_SECONDS, DECODE_ROUTE_NODES, guardFallbackLabel, lowerAttentionPass } from '../src/lower/index.js';
import { chooseSiteSpec, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';
import { maxAbsDiff } from './helpers/past-inputs.js';

const H = 4;
const HK = 2;
const D = 32;
const BUDGET = 1e-2;
const PARAMS: AttentionParams = { numHeads: H, kvNumHeads: HK, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal('past') };

interface Call {
  readonly P: number;
  readonly nq: number;
  readonly q: Float64Array; // [H, nq, D]
  readonly k: Float64Array; // [HK, P + nq, D]
  readonly v: Float64Array;
}

/** Seeded float32-rounded inputs: key/value head 0 and query heads 0-1 positional, the rest noise. */
function call(P: number, nq: number, seed: number): Call {
  let state = seed >>> 0;
  const rand = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const T = P + nq;
  const pos = (i: number, c: number) => 6 * (c % 2 === 0 ? Math.cos(0.0015 * 1.6 ** (c >> 1) * i) : Math.sin(0.0015 * 1.6 ** (c >> 1) * i));
  const f32 = (n: number, f: (k: number) => number) => Float64Array.from(Float32Array.from({ length: n }, (_, k) => f(k)));
  const q = f32(H * nq * D, (x) => (Math.floor(x / (nq * D)) < 2 ? pos(P + (Math.floor(x / D) % nq), x % D) + 0.05 * rand() : 0.1 * rand()));
  const k = f32(HK * T * D, (x) => (Math.floor(x / (T * D)) === 0 ? pos(Math.floor(x / D) % T, x % D) + 0.05 * rand() : 0.1 * rand()));
  return { P, nq, q, k, v: f32(HK * T * D, rand) };
}

/** Rows [from, to) of each key/value head as [1, HK, to - from, D]. */
function rows(c: Call, t: Float64Array, from: number, to: number): Float64Array {
  const T = c.P + c.nq;
  const out = new Float64Array(HK * (to - from) * D);
  for (let u = 0; u < HK; u++) out.set(t.subarray((u * T + from) * D, (u * T + to) * D), u * (to - from) * D);
  return out;
}

function parts(c: Call) {
  const T = c.P + c.nq;
  const t = (data: Float64Array, heads: number, n: number) => ({ shape: [1, heads, n, D], data });
  return {
    q: t(c.q, H, c.nq),
    k: t(rows(c, c.k, c.P, T), HK, c.nq),
    v: t(rows(c, c.v, c.P, T), HK, c.nq),
    pastKey: t(rows(c, c.k, 0, c.P), HK, c.P),
    pastValue: t(rows(c, c.v, 0, c.P), HK, c.P),
  };
}

function site(): Graph {
  const g = new Graph('split_past');
  const input = (name: string, heads: number, seq: string) => g.addInput(new Value(name, tensorType('f32', [1, heads, seq, D])));
  const y = new Value('y', tensorType('f32'));
  const inputs = { q: input('q', H, 'seq'), k: input('k', HK, 'seq'), v: input('v', HK, 'seq'), pastKey: input('past_key', HK, 'past'), pastValue: input('past_value', HK, 'past') };
  g.addNode(attentionNode(PARAMS, inputs, { y }, 'attn'));
  g.outputs.push(y);
  return g;
}

async function run(model: Uint8Array, c: Call): Promise<{ y: Float64Array; flags: { dims: readonly number[]; values: Float64Array } }> {
  const s = parts(c);
  const t = (x: { shape: number[]; data: Float64Array }) => ortTensor('f32', x.shape, x.data);
  const out = await runModel(model, { q: t(s.q), k: t(s.k), v: t(s.v), past_key: t(s.pastKey), past_value: t(s.pastValue) });
  const [, flags] = Object.entries(out).find(([name]) => guardFallbackLabel(name) !== undefined)!;
  return { y: ortValues(out.y!), flags: { dims: flags.dims, values: ortValues(flags) } };
}

describe('sparsify splits a site with cached keys by heads; the lowering routes the whole split', () => {
  const g = site();
  const decisions: SiteDecision[] = [];
  const calibration = { id: 'site0', samples: [parts(call(3840, 256, 1))] };
  runPipeline(g, [sparsifyPass({ calibration: [calibration], target: onnxruntimeCpuProfile, budget: BUDGET, seed: 1, onDecision: (d) => decisions.push(d) })]);
  const groupNodes = g.nodes.filter(isAttention).length;
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  const flags = g.nodes.flatMap((n) => n.outputs).filter((o) => guardFallbackLabel(o.name) !== undefined);
  g.outputs.push(...flags);
  const model = exportOnnx(newOnnxModel(g, { opset: 21 }));

  it('the chooser splits heads 0-1 (guarded) from 2-3 (causal) and says a decode step runs the whole site dense', () => {
    const [d] = decisions;
    expect(groupNodes, d!.notes.join(' | ')).toBe(2);
    expect(d!.groups?.map((x) => [x.heads, x.guarantee])).toEqual([
      [[0, 1], 'guarded'],
      [[2, 3], 'exact'],
    ]);
    expect(d!.notes.some((n) => /fewer than 64 new queries \(a decode step\) runs the site's exact dense form: the lowering wraps the whole site, its head groups, in one If/.test(n))).toBe(true);
    const routes = g.nodes.filter((n) => n.op === 'If');
    expect(routes.map((n) => n.name)).toEqual(['attn/decode_route']);
    expect(flags.map((f) => f.name)).toEqual(['attn/guard_falls_back.site0.heads0-1']);
  });

  it('decodeSteps: each step of the split is priced as the site as written plus the route', () => {
    const at = (decodeSteps: number) => chooseSiteSpec(PARAMS, calibration, { target: onnxruntimeCpuProfile, budget: BUDGET, seed: 1, decodeSteps });
    const [none, steps] = [at(0), at(50)];
    expect([none.groups?.length, steps.groups?.length]).toEqual([2, 2]);
    const route = DECODE_ROUTE_NODES * onnxruntimeCpuProfile.opOverheadSeconds + DECODE_ROUTE_BRANCH_SECONDS;
    const extra = steps.timeAfter - none.timeAfter - (steps.timeBefore - none.timeBefore);
    expect(Math.abs(extra - 50 * route)).toBeLessThanOrEqual(1e-9);
  });

  it.each([
    [1, 1000, 1e-5],
    [256, 768, BUDGET + 1e-4],
  ])('%i new queries over %i cached keys: within %s of the causal reference', async (nq, P, tolerance) => {
    const c = call(P, nq, 2);
    const out = await run(model, c);
    const ref = referenceAttention(PARAMS, parts(c)).y.data;
    const heads = (y: ArrayLike<number>, h0: number, h1: number) => Array.from(y).slice(h0 * nq * D, h1 * nq * D);
    expect(maxAbsDiff(heads(out.y, 0, 2), heads(ref, 0, 2))).toBeLessThanOrEqual(tolerance);
    expect(maxAbsDiff(heads(out.y, 2, 4), heads(ref, 2, 4))).toBeLessThanOrEqual(1e-5);
    expect(out.flags.dims).toEqual(nq < 64 ? [0, 0, 0] : [1, 2, nq]);
  });
});
