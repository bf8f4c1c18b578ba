// The banded and guarded lowerings with a key bias (a float bias constant along the query axis, key-bias.ts) in
// onnxruntime against the float64 reference of the site with the same bias, n = 1024:
// - ALiBi as BLOOM writes it, slope_h · j [1, H, 1, T] (slopes 1/4 and 1/64), a key-padding mask [B, 1, 1, T]
//   (-1e4 on the last keys of batch 1, or -inf on its first: fully masked rows) and a rank-1 bias [T] in [-2, 2];
// - banded (unguarded) keeps exactly the spec's keys: |y - ref| <= 1e-4 against the reference of the window spec;
// - guarded (budget 1e-3) within the budget of the causal reference plus float32 rounding (1e-4: values of size
//   <= 1, f32 scores up to about 300 in size with the ALiBi bias, 2^-24 * 300 * a few), on local, diffuse and
//   adversarial inputs; on the adversarial family the
//   unguarded form breaks the budget (the guard did the work); budget 0 gives the causal reference.
// A bias that varies along the query axis keeps its site from the banded and guarded forms (negative case).

import { type AttentionParams, type AttentionSpec, attentionNode, causal, Graph, intersect, sinks, slidingWindow, SplitMix64, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { cannotLower, GUARD_FALLBACK_VALUE, lowerAttentionPass, loweringPlan } from '../src/lower/index.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { localInputs, repeatSpans } from './helpers/guarded-inputs.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const B = 2;
const H = 2;
const D = 16;
const N = 1024;
const SPEC: AttentionSpec = intersect(causal('bottom-right'), union(slidingWindow(255, 0, 'bottom-right'), sinks(4)));
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SLOPES = [1 / 4, 1 / 64];

interface KeyBias {
  readonly name: string;
  readonly shape: (number | string)[];
  readonly values: (n: number) => { shape: number[]; data: Float64Array };
}

const BIASES: KeyBias[] = [
  {
    name: 'ALiBi slope_h * j [1, H, 1, T]',
    shape: [1, H, 1, 'seq'],
    values: (n) => ({ shape: [1, H, 1, n], data: Float64Array.from({ length: H * n }, (_, t) => SLOPES[Math.floor(t / n)]! * (t % n)) }),
  },
  {
    name: 'key padding -1e4 [B, 1, 1, T]',
    shape: [B, 1, 1, 'seq'],
    values: (n) => ({ shape: [B, 1, 1, n], data: Float64Array.from({ length: B * n }, (_, t) => (t >= n && t % n >= 700 ? -1e4 : 0)) }),
  },
  {
    // left padding: the first 300 keys of batch 1 are -inf, so its rows below 300 keep only -inf keys (sinks and
    // window) and so does their causal baseline: fully masked rows, 0 in the IR, NaN in a plain Softmax
    name: 'left key padding -inf [B, 1, 1, T]',
    shape: [B, 1, 1, 'seq'],
    values: (n) => ({ shape: [B, 1, 1, n], data: Float64Array.from({ length: B * n }, (_, t) => (t >= n && t % n < 300 ? -Infinity : 0)) }),
  },
  {
    name: 'rank 1 [T] in [-2, 2]',
    shape: ['seq'],
    values: (n) => {
      const rng = new SplitMix64(7);
      return { shape: [n], data: Float64Array.from({ length: n }, () => 4 * rng.nextFloat() - 2) };
    },
  },
];

const params = (spec: AttentionSpec, budget?: number): AttentionParams => guardedSiteParams(H, D, spec, budget);

function build(p: AttentionParams, bias: KeyBias, banded = true, flags = false): { model: Uint8Array; graph: Graph } {
  const g = new Graph('key_bias');
  const q = g.addInput(new Value('q', tensorType('f32', [B, H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', [B, H, 'seq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', [B, H, 'seq', D])));
  const b = g.addInput(new Value('bias', tensorType('f32', bias.shape)));
  const y = new Value('y', tensorType('f32'));
  const node = attentionNode(p, { q, k, v, bias: b }, { y }, 'attn');
  g.addNode(node);
  g.outputs.push(y);
  if (banded) {
    expect(cannotLower(node, { opset: 21, strategy: 'banded' })).toBeUndefined();
    expect(loweringPlan(node, { opset: 21 }).strategy).toBe('banded');
  }
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(banded ? { strategy: 'banded' as const } : {}), blockSize: 64 })]);
  if (flags) g.outputs.push(g.nodes.flatMap((n) => n.outputs).find((o) => o.name.endsWith(`/${GUARD_FALLBACK_VALUE}`))!);
  return { model: exportOnnx(newOnnxModel(g, { opset: 21 })), graph: g };
}

const local = (seed: number) => localInputs(seed, B, H, N, D);

/** Independent uniform q, k in [-1, 1]: diffuse attention, where only the bias makes a head local. */
function diffuse(seed: number) {
  const rng = new SplitMix64(seed);
  const u = () => Float64Array.from({ length: B * H * N * D }, () => rng.nextFloat() * 2 - 1);
  return { q: u(), k: u(), v: u() };
}

const FAMILIES: [string, (seed: number) => ReturnType<typeof local>, boolean][] = [
  ['local (rotary-like, peaked at the query)', local, false],
  ['diffuse (uniform q, k)', diffuse, false],
  [
    'repeated spans: the keys of a span repeat 300 positions later (just past the window), the queries look back at them',
    (seed) => repeatSpans(local(seed), 300, B, H, N, D),
    true,
  ],
];

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let t = 0; t < a.length; t++) m = Math.max(m, Math.abs(a[t]! - b[t]!));
  return m;
};

const f32 = (t: Float64Array) => Float64Array.from(Float32Array.from(t));

async function runAll(model: Uint8Array, x: ReturnType<typeof local>, bias: { shape: number[]; data: Float64Array }) {
  const shape = [B, H, N, D];
  return runModel(model, { q: ortTensor('f32', shape, x.q), k: ortTensor('f32', shape, x.k), v: ortTensor('f32', shape, x.v), bias: ortTensor('f32', bias.shape, bias.data) });
}

async function run(model: Uint8Array, x: ReturnType<typeof local>, bias: { shape: number[]; data: Float64Array }): Promise<Float64Array> {
  return ortValues((await runAll(model, x, bias)).y!);
}

function reference(spec: AttentionSpec, x: ReturnType<typeof local>, bias: { shape: number[]; data: Float64Array }): Float64Array {
  const shape = [B, H, N, D];
  return referenceAttention(params(spec), { q: { shape, data: f32(x.q) }, k: { shape, data: f32(x.k) }, v: { shape, data: f32(x.v) }, bias: { shape: bias.shape, data: f32(bias.data) } }).y.data;
}

for (const bias of BIASES)
  describe(`key bias ${bias.name}: banded exact, guarded window 256 + sinks 4 within the budget`, () => {
    const banded = build(params(SPEC), bias).model;
    const guarded = build(params(SPEC, BUDGET), bias).model;
    const forced = build(params(SPEC, 0), bias).model;
    const values = bias.values(N);
    it.each(FAMILIES)('%s', async (_name, family, adversarial) => {
      const x = family(11);
      const causalRef = reference(causal('bottom-right'), x, values);
      expect(maxAbsDiff(await run(banded, x, values), reference(SPEC, x, values))).toBeLessThanOrEqual(ROUNDING);
      expect(maxAbsDiff(await run(guarded, x, values), causalRef)).toBeLessThanOrEqual(BUDGET + ROUNDING);
      if (adversarial) expect(maxAbsDiff(await run(banded, x, values), causalRef)).toBeGreaterThan(BUDGET + ROUNDING);
      expect(maxAbsDiff(await run(forced, x, values), causalRef)).toBeLessThanOrEqual(ROUNDING);
    }, 120_000);
  });

describe('ALiBi with steep slopes (1/2, 1/4), window 64, diffuse q and k', () => {
  // the dropped keys are at least 64 back, so their bias is at least 16 below the nearest key's; the bound takes
  // the bias over the dropped keys of each block, not over the whole block (which holds kept keys too), so no row
  // falls back; with the whole block's largest bias about 63 rows in 64 would
  it('lets no row fall back, within the budget of the causal reference', async () => {
    const steep: KeyBias = {
      name: 'steep ALiBi',
      shape: [1, H, 1, 'seq'],
      values: (n) => ({ shape: [1, H, 1, n], data: Float64Array.from({ length: H * n }, (_, t) => [1 / 2, 1 / 4][Math.floor(t / n)]! * (t % n)) }),
    };
    const spec = intersect(causal('bottom-right'), slidingWindow(63, 0, 'bottom-right'));
    const { model } = build(params(spec, BUDGET), steep, true, true);
    const values = steep.values(N);
    const x = diffuse(3);
    const out = await runAll(model, x, values);
    const flags = ortValues(out[Object.keys(out).find((k) => k !== 'y')!]!);
    expect(flags.length).toBe(B * H * N);
    expect(flags.reduce((a, f) => a + f, 0)).toBe(0);
    expect(maxAbsDiff(ortValues(out.y!), reference(causal('bottom-right'), x, values))).toBeLessThanOrEqual(BUDGET + ROUNDING);
  }, 60_000);
});

describe('a bias that varies along the query axis', () => {
  it('keeps the site dense (no banded or guarded form)', () => {
    const g = new Graph('pair_bias');
    const q = g.addInput(new Value('q', tensorType('f32', [1, H, 'seq', D])));
    const k = g.addInput(new Value('k', tensorType('f32', [1, H, 'seq', D])));
    const v = g.addInput(new Value('v', tensorType('f32', [1, H, 'seq', D])));
    const b = g.addInput(new Value('bias', tensorType('f32', [1, H, 'seq', 'seq'])));
    const node = attentionNode(params(SPEC, BUDGET), { q, k, v, bias: b }, { y: new Value('y', tensorType('f32')) }, 'attn');
    g.addNode(node);
    expect(loweringPlan(node, { opset: 21 }).strategy).toBe('dense');
    expect(loweringPlan(node, { opset: 21 }).why).toMatch(/n x n/);
  });
});
