// The decode route (decode-route.ts) in onnxruntime: a sparse site with cached keys lowers to If(new queries < one
// block, the exact dense form, the sparse form). Site: bhsd, 2 heads of 16, past keys, guarded window 256 + sinks 4
// over causal(past) (budget 1e-3) and the same window unguarded. Checked against the float64 reference
// (@attnopt/reference) with |y - ref| <= 1e-5 for the exact branch (float32 scores over <= 1100 keys, values in
// [-1, 1]) and <= budget + 1e-4 for the guarded branch:
// - a decode step (1 query over 1000 cached keys) and a few queries (8) take the exact form: the guarded site gives
//   the causal reference, the unguarded one its own window's reference, and no fallback flags ([0, 0, 0]);
// - a prefill call (200 queries) takes the sparse form: flags [1, 2, 200] come out of the If under the name the
//   lowering gives them, and the output is the guarded form's, within the budget;
// - on inputs where the window drops the key that carries the mass (one outlier key far back), the exact branch
//   matches the causal reference where the unguarded form is far off (it fails if the branches are swapped);
// - the cost model's count of the nodes a form emits is the sparse form's plus the route's;
// - with onnxruntime's native banded form (opset 23), the sparse branch keeps it and both branches give the window's
//   reference;
// - a site without a past input whose keys are declared apart from its queries (a static cache buffer) is routed;
// - decodeQueries 0 or a strategy named by the caller lowers without the route, and a site without cached keys never
//   takes it.

import { type AttentionParams, attentionNode, causal, Graph, intersect, isAttention, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { DECODE_ROUTE_BANDED_QUERIES, DECODE_ROUTE_NODES, decodeRouteQueries, GUARD_FALLBACK_VALUE, lowerAttentionPass, type LowerOptions } from '../src/lower/index.js';
import { emittedNodeCounter } from '../src/sparsify/emitted-nodes.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';
import { type FallbackFlags, maxAbsDiff, pastInputs, type PastInputs, pastParts, pastReference, runPast } from './helpers/past-inputs.js';

const H = 2;
const D = 16;
const BUDGET = 1e-3;
const BASELINE = causal('past');
const WINDOW = intersect(causal('past'), union(slidingWindow(255, 0, 'past'), sinks(4)));
const guardedParams = guardedSiteParams(H, D, WINDOW, BUDGET, BASELINE);
const unguardedParams = guardedSiteParams(H, D, WINDOW);

function site(p: AttentionParams, past = true): { g: Graph; node: ReturnType<typeof attentionNode> } {
  const g = new Graph('decode_route');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'seq', D]))));
  const pastKV = past ? ['past_key', 'past_value'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'past', D])))) : [];
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q: q!, k: k!, v: v!, ...(past ? { pastKey: pastKV[0]!, pastValue: pastKV[1]! } : {}) }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  return { g, node };
}

function lowered(p: AttentionParams, options: Partial<LowerOptions> = {}): Graph {
  const { g } = site(p);
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...options })]);
  return g;
}

/** The lowered site with its fallback flags (when it has them) as a second output. */
function build(p: AttentionParams, options: Partial<LowerOptions> = {}): Uint8Array {
  const g = lowered(p, options);
  const flags = g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`));
  if (flags) g.outputs.push(flags);
  return exportOnnx(newOnnxModel(g, { opset: options.opset ?? 21 }));
}

const inputs = (P: number, nq: number, seed: number, outlier = false): PastInputs => pastInputs(H, D, P, nq, seed, outlier);
const parts = pastParts;
const reference = pastReference;

async function run(model: Uint8Array, x: PastInputs): Promise<{ y: Float64Array; flags?: FallbackFlags }> {
  const out = await runPast(model, x);
  const flags = out.flags.get('');
  return { y: out.y, ...(flags ? { flags } : {}) };
}

describe('the decode route: a sparse site with cached keys takes its exact dense form on calls of few queries', () => {
  const guarded = build(guardedParams);
  const unguarded = build(unguardedParams);

  it('wraps the site in one If on the new queries: below the guard key block (64), below 8 unguarded', () => {
    const g = lowered(guardedParams);
    const ifs = g.nodes.filter((n) => n.op === 'If' && n.name.endsWith('/decode_route'));
    expect(ifs).toHaveLength(1);
    expect(g.nodes.some(isAttention)).toBe(false);
    expect(ifs[0]!.subgraphs().flatMap((s) => s.nodes).some(isAttention)).toBe(false);
    expect(ifs[0]!.outputs.map((o) => o.name)).toEqual(['y', `attn/${GUARD_FALLBACK_VALUE}`]);
    expect(decodeRouteQueries(site(guardedParams).node, { opset: 21 })).toBe(64);
    expect(decodeRouteQueries(site(unguardedParams).node, { opset: 21 })).toBe(DECODE_ROUTE_BANDED_QUERIES);
    expect(decodeRouteQueries(site(guardedParams).node, { opset: 21, decodeQueries: 5 })).toBe(5);
  });

  it.each([
    [1, 1000],
    [8, 300],
  ])('%i new queries over %i cached keys: the guarded site gives the causal reference, no flags', async (nq, P) => {
    for (const outlier of [false, true]) {
      const x = inputs(P, nq, 7 + nq, outlier);
      const out = await run(guarded, x);
      expect(maxAbsDiff(out.y, reference(BASELINE, x))).toBeLessThanOrEqual(1e-5);
      expect(out.flags?.dims).toEqual([0, 0, 0]);
    }
  });

  it('a decode step of the unguarded window computes the window itself (its own spec), not the baseline', async () => {
    const x = inputs(1000, 1, 3, true);
    const y = (await run(unguarded, x)).y;
    expect(maxAbsDiff(y, reference(WINDOW, x))).toBeLessThanOrEqual(1e-5);
    // the outlier key carries the mass: dropping it changes the output (the check above can tell the two apart)
    expect(maxAbsDiff(y, reference(BASELINE, x))).toBeGreaterThan(0.1);
  });

  it('a prefill call (200 queries over 300 cached keys) takes the guarded sparse form: flags per row, within the budget', async () => {
    for (const outlier of [false, true]) {
      const x = inputs(300, 200, 11, outlier);
      const out = await run(guarded, x);
      expect(out.flags?.dims).toEqual([1, H, 200]);
      expect(maxAbsDiff(out.y, reference(BASELINE, x))).toBeLessThanOrEqual(BUDGET + 1e-4);
      const unguardedY = (await run(unguarded, x)).y;
      if (outlier) {
        expect(out.flags!.values.some((f) => f === 1)).toBe(true);
        expect(maxAbsDiff(unguardedY, reference(BASELINE, x))).toBeGreaterThan(0.1);
      } else {
        // no row falls back: the guarded output is the sparse form's, bit for bit
        expect(out.flags!.values.every((f) => f === 0)).toBe(true);
        expect(maxAbsDiff(out.y, unguardedY)).toBe(0);
      }
    }
  });

  it("onnxruntime's native form (opset 23): the sparse branch keeps it, the dense branch is standard ops", async () => {
    const g = lowered(unguardedParams, { opset: 23, native: 'onnxruntime' });
    const route = g.nodes.find((n) => n.name.endsWith('/decode_route'))!;
    const [exact, sparse] = route.subgraphs().map((s) => s.nodes.map((n) => n.op));
    expect(sparse).toContain('Attention');
    expect(exact).not.toContain('Attention');
    const model = build(unguardedParams, { opset: 23, native: 'onnxruntime' });
    for (const [P, nq] of [
      [1000, 1],
      [300, 200],
    ] as const) {
      const x = inputs(P, nq, 17 + nq, true);
      expect(maxAbsDiff((await run(model, x)).y, reference(WINDOW, x)), `${nq} queries`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('a site that reads a key buffer of its own length (a static cache, no past input) takes the route too', async () => {
    const br = intersect(causal('bottom-right'), union(slidingWindow(255, 0, 'bottom-right'), sinks(4)));
    const p = guardedSiteParams(H, D, br, BUDGET, causal('bottom-right'));
    const g = new Graph('static_cache');
    const q = g.addInput(new Value('q', tensorType('f32', [1, H, 'seq', D])));
    const [k, v] = ['k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'cache', D]))));
    const y = new Value('y', tensorType('f32'));
    const node = attentionNode(p, { q, k: k!, v: v! }, { y }, 'attn');
    g.addNode(node);
    g.outputs.push(y);
    expect(decodeRouteQueries(node, { opset: 21 })).toBe(64);
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    expect(g.nodes.filter((n) => n.op === 'If' && n.name.endsWith('/decode_route'))).toHaveLength(1);
    const bytes = exportOnnx(newOnnxModel(g, { opset: 21 }));
    // one query over 1000 keys (the last position): the causal reference, exactly
    const x = inputs(999, 1, 13, true);
    const s = parts(x);
    const all = (d: Float64Array, from: Float64Array) => {
      const out = new Float64Array(H * 1000 * D);
      for (let h = 0; h < H; h++) {
        out.set(from.subarray(h * 999 * D, (h + 1) * 999 * D), h * 1000 * D);
        out.set(d.subarray(h * D, (h + 1) * D), (h * 1000 + 999) * D);
      }
      return out;
    };
    const [kAll, vAll] = [all(s.k, s.pastKey), all(s.v, s.pastValue)];
    const out = await runModel(bytes, { q: ortTensor('f32', [1, H, 1, D], s.q), k: ortTensor('f32', [1, H, 1000, D], kAll), v: ortTensor('f32', [1, H, 1000, D], vAll) });
    const t = (d: Float64Array, n: number) => ({ shape: [1, H, n, D], data: d });
    const ref = referenceAttention(guardedSiteParams(H, D, causal('bottom-right')), { q: t(s.q, 1), k: t(kAll, 1000), v: t(vAll, 1000) }).y.data;
    expect(maxAbsDiff(ortValues(out.y!), ref)).toBeLessThanOrEqual(1e-5);
  });

  it("the cost model's node count is the sparse form's (what a call of the calibration's shape runs) plus the route's", () => {
    const { g, node } = site(guardedParams);
    const counted = emittedNodeCounter(node)(WINDOW, guardedParams.guard);
    const sparse = lowered(guardedParams, { decodeQueries: 0 }).nodes.length;
    expect(counted).toBe(sparse + DECODE_ROUTE_NODES);
    expect(g.nodes).toHaveLength(1); // the count lowers a scratch copy
  });

  it('decodeQueries 0, a named strategy, or a site without cached keys: no route', async () => {
    expect(lowered(guardedParams, { decodeQueries: 0 }).nodes.some((n) => n.op === 'If' && n.name.endsWith('/decode_route'))).toBe(false);
    expect(lowered(guardedParams, { strategy: 'banded' }).nodes.some((n) => n.op === 'If' && n.name.endsWith('/decode_route'))).toBe(false);
    const { g, node } = site(guardedParams, false);
    expect(decodeRouteQueries(node, { opset: 21 })).toBeUndefined();
    runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
    expect(g.nodes.some((n) => n.op === 'If' && n.name.endsWith('/decode_route'))).toBe(false);
    // without the route a decode step runs the guarded form itself (flags for its one row)
    const out = await run(build(guardedParams, { decodeQueries: 0 }), inputs(1000, 1, 5));
    expect(out.flags?.dims).toEqual([1, H, 1]);
  });
});
