// Sparse lowerings (banded windows, sinks, global tokens, ...) in onnxruntime (optimizations off) against
// referenceAttention: fp32, |ort - ref| <= 1e-5 + 1e-4 |ref|. Symbolic sequence lengths: one exported model runs
// at two lengths (odd ones, so the block padding matters).

import {
  type AttentionParams,
  type AttentionSpec,
  attentionNode,
  linformer,
  performer,
  blockSparse,
  causal,
  dilatedWindow,
  difference,
  Graph,
  globalTokens,
  intersect,
  sinks,
  slidingWindow,
  SplitMix64,
  tensorType,
  topkBlocks,
  union,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { compareArrays, referenceAttention, type ReferenceInputs } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { type LowerOptions, loweringPlan, lowerAttentionPass } from '../src/lower/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

export interface SparseProblem {
  readonly params: AttentionParams;
  readonly batch: number;
  /** Extra keys beyond the queries (nk = nq + extraKeys), this call's keys. */
  readonly extraKeys: number;
  readonly past: number;
  readonly kvLength?: boolean;
  /** Static query length (the model then runs at this length only). */
  readonly staticSeq?: number;
}

interface Built {
  readonly bytes: Uint8Array;
  readonly graph: Graph;
}

/** The Attention site with symbolic batch and sequence lengths, lowered and exported. */
function build(p: SparseProblem, options: LowerOptions): Built {
  const { numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv, layout } = p.params;
  const by = (heads: number, s: string, d: number) =>
    layout === 'bsd' ? ['batch', s, heads * d] : layout === 'bshd' ? ['batch', s, heads, d] : ['batch', heads, s, d];
  const g = new Graph('lower_sparse');
  const fix = (d: string | number) =>
    p.staticSeq === undefined || typeof d === 'number' ? d : d === 'seq' ? p.staticSeq : d === 'kseq' ? p.staticSeq + p.extraKeys : d === 'past' ? p.past : p.batch;
  const input = (name: string, dtype: 'f32' | 'i64', shape: (string | number)[]) => g.addInput(new Value(name, tensorType(dtype, shape.map(fix))));
  const q = layout === 'packed-qkv' ? input('q', 'f32', ['batch', 'seq', (H + 2 * Hk) * D]) : input('q', 'f32', by(H, 'seq', D));
  const k = layout === 'packed-qkv' ? undefined : input('k', 'f32', by(Hk, 'kseq', D));
  const v = layout === 'packed-qkv' ? undefined : input('v', 'f32', by(Hk, 'kseq', Dv));
  const pastK = p.past > 0 ? input('past_key', 'f32', ['batch', Hk, 'past', D]) : undefined;
  const pastV = p.past > 0 ? input('past_value', 'f32', ['batch', Hk, 'past', Dv]) : undefined;
  const kvLen = p.kvLength ? input('kv_length', 'i64', ['batch']) : undefined;
  const y = new Value('y', tensorType('f32'));
  const pk = new Value('present_key', tensorType('f32'));
  const pv = new Value('present_value', tensorType('f32'));
  g.addNode(
    attentionNode(
      p.params,
      { q, ...(k ? { k } : {}), ...(v ? { v } : {}), ...(pastK ? { pastKey: pastK, pastValue: pastV! } : {}), ...(kvLen ? { kvLength: kvLen } : {}) },
      { y, presentKey: pk, presentValue: pv },
      'attn',
    ),
  );
  g.outputs.push(y, pk, pv);
  runPipeline(g, [lowerAttentionPass(options)]);
  return { bytes: exportOnnx(newOnnxModel(g, { opset: options.opset })), graph: g };
}

/** Runs the built model at query length nq and compares with the reference; returns the max abs error. */
async function runAt(built: Built, p: SparseProblem, nq: number, seed: number): Promise<number> {
  const { numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv, layout } = p.params;
  const B = p.batch;
  const nk = layout === 'packed-qkv' ? nq : nq + p.extraKeys;
  const rng = new SplitMix64(seed);
  const rand = (n: number) => Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);
  const by = (heads: number, s: number, d: number): number[] =>
    layout === 'bsd' ? [B, s, heads * d] : layout === 'bshd' ? [B, s, heads, d] : [B, heads, s, d];
  const feeds: Record<string, ReturnType<typeof ortTensor>> = {};
  const data: Record<string, { shape: number[]; values: number[] }> = {};
  const put = (name: string, shape: number[], values = rand(shape.reduce((a, c) => a * c, 1)), dtype: 'f32' | 'i64' = 'f32') => {
    data[name] = { shape, values };
    feeds[name] = ortTensor(dtype, shape, values);
  };
  if (layout === 'packed-qkv') put('q', [B, nq, (H + 2 * Hk) * D]);
  else {
    put('q', by(H, nq, D));
    put('k', by(Hk, nk, D));
    put('v', by(Hk, nk, Dv));
  }
  if (p.past > 0) {
    put('past_key', [B, Hk, p.past, D]);
    put('past_value', [B, Hk, p.past, Dv]);
  }
  const total = p.past + nk;
  if (p.kvLength) put('kv_length', [B], Array.from({ length: B }, (_, b) => Math.max(1, total - (b % 2) * 5)), 'i64');
  const out = await runModel(built.bytes, feeds);
  const t = (name: string) => ({ shape: data[name]!.shape, data: Float64Array.from(data[name]!.values) });
  const ref: ReferenceInputs = {
    q: t('q'),
    ...(layout !== 'packed-qkv' ? { k: t('k'), v: t('v') } : {}),
    ...(p.past > 0 ? { pastKey: t('past_key'), pastValue: t('past_value') } : {}),
    ...(p.kvLength ? { kvLength: data.kv_length!.values } : {}),
  };
  const want = referenceAttention(p.params, ref);
  const cmp = compareArrays(ortValues(out.y!), want.y.data, { atol: 1e-5, rtol: 1e-4 });
  expect(cmp.mismatches.slice(0, 3), `y at nq=${nq}`).toEqual([]);
  return cmp.maxAbsError;
}

function params(spec: AttentionSpec, n: number, layout: AttentionParams['layout']): AttentionParams {
  const headDim = [16, 80, 8][n % 3]!;
  const gqa = n % 2 === 0;
  return {
    numHeads: gqa ? 4 : 2,
    kvNumHeads: 2,
    headDim,
    vHeadDim: layout === 'packed-qkv' ? headDim : n % 4 === 1 ? 12 : headDim,
    scale: 1 / Math.sqrt(headDim),
    softcap: n % 5 === 3 ? 3 : 0,
    layout,
    spec,
  };
}

const LAYOUTS = ['bsd', 'bhsd', 'bshd', 'packed-qkv'] as const;

const BANDED: [string, AttentionSpec][] = [
  ['window(8,0)', slidingWindow(8, 0)],
  ['window(5,3) bottom-right', slidingWindow(5, 3, 'bottom-right')],
  ['window(40,2) past', slidingWindow(40, 2, 'past')],
  ['causal ∩ window(16)', intersect(causal('top-left'), slidingWindow(16, 4))],
  ['causal ∩ window(9) past', intersect(causal('past'), slidingWindow(9, 0, 'past'))],
  ['sinks(4) ∪ window(6)', union(sinks(4), slidingWindow(6, 0))],
  ['sinks(3) ∪ causal∩window bottom-right', union(sinks(3), intersect(causal('bottom-right'), slidingWindow(10, 10, 'bottom-right')))],
  ['dilated(12,0,3)', dilatedWindow(12, 0, 3)],
  ['global(0,5,50) ∪ window(4,4)', union(globalTokens([0, 5, 50]), slidingWindow(4, 4))],
  ['global(1,33) ∪ causal∩window past', union(globalTokens([1, 33], 'past'), intersect(causal('past'), slidingWindow(7, 0, 'past')))],
  ['(sinks ∪ window) ∖ sinks(1)', difference(union(sinks(2), slidingWindow(5, 0)), sinks(1))],
];

describe('banded lowering in onnxruntime vs referenceAttention, two lengths per model', () => {
  const cases: [string, SparseProblem][] = [];
  let n = 0;
  for (const [name, spec] of BANDED) {
    for (const layout of n % 2 === 0 ? LAYOUTS.slice(0, 2) : LAYOUTS.slice(2)) {
      const past = layout !== 'packed-qkv' && n % 3 === 1 ? 6 : 0;
      const p: SparseProblem = {
        params: params(spec, n, layout),
        batch: 2,
        extraKeys: layout === 'packed-qkv' ? 0 : n % 3 === 2 ? 3 : 0,
        past,
        ...(n % 4 === 3 && !(spec.kind === 'union' && JSON.stringify(spec).includes('"past"') && past === 0) ? { kvLength: true } : {}),
      };
      cases.push([`${name} ${layout} d=${p.params.headDim}${p.params.numHeads > p.params.kvNumHeads ? ' gqa' : ''}${past ? ' past' : ''}${p.kvLength ? ' kvLength' : ''}${p.params.softcap ? ' softcap' : ''}`, p]);
      n++;
    }
  }
  const errs: number[] = [];
  it.each(cases)('%s', async (_name, p) => {
    const built = build(p, { opset: 21, strategy: 'banded' });
    const ops = new Set(built.graph.nodes.map((x) => x.op));
    expect(ops.has('Range') && ops.has('Gather')).toBe(true);
    errs.push(await runAt(built, p, 37, errs.length + 3));
    errs.push(await runAt(built, p, 97, errs.length + 5));
  });
  it('reports', () => console.log(`banded lowering: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

describe('banded lowering allocates no n x n intermediate', () => {
  it('every intermediate at n = 4096 stays below n²/16 elements (a shape walk in onnxruntime)', async () => {
    const p: SparseProblem = { params: { ...params(union(sinks(4), intersect(causal(), slidingWindow(64, 0))), 2, 'bhsd'), numHeads: 1, kvNumHeads: 1, headDim: 8, vHeadDim: 8 }, batch: 1, extraKeys: 0, past: 0 };
    const built = build(p, { opset: 21, strategy: 'banded' });
    const g = built.graph;
    for (const node of g.nodes) for (const out of node.outputs) if (!g.outputs.includes(out)) g.outputs.push(out);
    const bytes = exportOnnx(newOnnxModel(g, { opset: 21 }));
    const n = 4096;
    const rng = new SplitMix64(9);
    const feeds = Object.fromEntries(['q', 'k', 'v'].map((name) => [name, ortTensor('f32', [1, 1, n, 8], Array.from({ length: n * 8 }, () => rng.nextFloat() - 0.5))]));
    const out = await runModel(bytes, feeds);
    const sizes = Object.entries(out).map(([name, t]) => [name, t.dims.reduce((a, c) => a * Number(c), 1)] as const);
    const [largest, size] = sizes.reduce((a, c) => (c[1] > a[1] ? c : a));
    console.log(`banded n=${n}: ${sizes.length} intermediates, largest ${largest} with ${size} elements (n² = ${n * n})`);
    expect(size).toBeLessThan((n * n) / 16);
  });

  it('auto picks banded for symbolic lengths and for long static ones, dense for short ones', () => {
    const site = (nk: number | string, spec: AttentionSpec, bias = false) => {
      const g = new Graph('g');
      const q = g.addInput(new Value('q', tensorType('f32', [1, nk, 16])));
      const b = bias ? g.addInput(new Value('bias', tensorType('f32', [1, 1, nk, nk]))) : undefined;
      const params: AttentionParams = { numHeads: 1, kvNumHeads: 1, headDim: 16, vHeadDim: 16, scale: 0.25, softcap: 0, layout: 'bsd', spec };
      return attentionNode(params, { q, k: q, v: q, ...(b ? { bias: b } : {}) }, { y: new Value('y') }, 'a');
    };
    const w = slidingWindow(16, 0);
    expect(loweringPlan(site('seq', w), { opset: 21 }).strategy).toBe('banded');
    expect(loweringPlan(site(4096, w), { opset: 21 }).strategy).toBe('banded');
    expect(loweringPlan(site(40, w), { opset: 21 }).strategy).toBe('dense');
    expect(loweringPlan(site('seq', causal()), { opset: 21 }).strategy).toBe('dense');
    expect(loweringPlan(site('seq', w, true), { opset: 21 }).why).toMatch(/bias/);
    expect(loweringPlan(site('seq', w), { opset: 21, strategy: 'dense' }).strategy).toBe('dense');
    expect(() => loweringPlan(site('seq', causal()), { opset: 21, strategy: 'banded' })).toThrow(/not bounded by a band/);
  });
});

const BLOCKS: [string, AttentionSpec][] = [
  ['blocks(16,16) causal-ish', blockSparse(16, 16, [[0], [0, 1], [1, 2], [0, 3], [4, 9], [0, 2, 5]])],
  ['blocks(8,24) ragged', blockSparse(8, 24, [[1], [], [0, 2, 3], [3], [0], [1, 2], [2], [0, 1, 2, 3, 4, 5, 6], [0, 3], [1], [2], [0]])],
  ['topk(16,3) quest', topkBlocks(16, 3, 'quest')],
  ['topk(8,4) mean', topkBlocks(8, 4, 'mean')],
  ['topk(32,2) quest', topkBlocks(32, 2, 'quest')],
  ['topk(16,50) quest (k > blocks)', topkBlocks(16, 50, 'quest')],
];

describe('block-gathered lowering in onnxruntime vs referenceAttention, two lengths per model', () => {
  const cases: [string, SparseProblem][] = [];
  let n = 0;
  for (const [name, spec] of BLOCKS) {
    for (const layout of n % 2 === 0 ? LAYOUTS.slice(0, 2) : LAYOUTS.slice(2)) {
      const past = layout !== 'packed-qkv' && n % 3 === 1 ? 6 : 0;
      const p: SparseProblem = {
        params: params(spec, n, layout),
        batch: 2,
        extraKeys: layout === 'packed-qkv' ? 0 : n % 3 === 2 ? 5 : 0,
        past,
        ...(n % 4 === 3 ? { kvLength: true } : {}),
      };
      cases.push([`${name} ${layout} d=${p.params.headDim}${p.params.numHeads > p.params.kvNumHeads ? ' gqa' : ''}${past ? ' past' : ''}${p.kvLength ? ' kvLength' : ''}${p.params.softcap ? ' softcap' : ''}`, p]);
      n++;
    }
  }
  const errs: number[] = [];
  it.each(cases)('%s', async (_name, p) => {
    const built = build(p, { opset: 21 });
    expect(built.graph.nodes.some((x) => x.op === 'GatherND')).toBe(true);
    errs.push(await runAt(built, p, 37, errs.length + 3));
    errs.push(await runAt(built, p, 131, errs.length + 5));
  });
  it('reports', () => console.log(`block-gathered lowering: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

describe('low-rank lowering in onnxruntime vs referenceAttention', () => {
  const cases: [string, SparseProblem][] = [];
  const LOW_RANK: [string, AttentionSpec, boolean][] = [
    ['linformer(8)', linformer(8, 3), true],
    ['linformer(24)', linformer(24, 11), true],
    ['performer(32) orthogonal', performer(32, 5, true), false],
    ['performer(20) iid', performer(20, 7, false), false],
  ];
  let n = 0;
  for (const [name, spec, isStatic] of LOW_RANK) {
    for (const layout of n % 2 === 0 ? LAYOUTS.slice(0, 2) : LAYOUTS.slice(2)) {
      const past = layout !== 'packed-qkv' && n % 3 === 1 ? 4 : 0;
      const p: SparseProblem = {
        params: { ...params(spec, n, layout), softcap: 0 },
        batch: 2,
        extraKeys: layout === 'packed-qkv' ? 0 : n % 3 === 2 ? 3 : 0,
        past,
        ...(isStatic ? { staticSeq: 37 } : {}),
      };
      cases.push([`${name} ${layout} d=${p.params.headDim}${p.params.numHeads > p.params.kvNumHeads ? ' gqa' : ''}${past ? ' past' : ''}`, p]);
      n++;
    }
  }
  const errs: number[] = [];
  it.each(cases)('%s', async (_name, p) => {
    const built = build(p, { opset: 21 });
    errs.push(await runAt(built, p, 37, errs.length + 3));
    if (p.staticSeq === undefined) errs.push(await runAt(built, p, 97, errs.length + 5));
  });
  it('reports', () => console.log(`low-rank lowering: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
  it('refuses Linformer with a symbolic key count, and says why', () => {
    const p: SparseProblem = { params: params(linformer(4, 1), 0, 'bsd'), batch: 1, extraKeys: 0, past: 0 };
    expect(() => build({ ...p, params: { ...p.params, softcap: 0 } }, { opset: 21 })).toThrow(/key count must be static/);
  });
});
