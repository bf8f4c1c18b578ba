// com.microsoft Attention nodes whose head size is known only at run time (weights [hidden, 3·hidden] with a
// symbolic width, no qkv_hidden_sizes): lifted into attnopt::Attention with headDim 0 in bhsd, then lowered.
// - the 5 corpus nodes lift, and the lifted and lowered graphs verify;
// - microbench models (onnxruntime runs them): original vs lifted + lowered at two hidden sizes each, plus
//   variants (num_heads 4 with widths 3·64 and 3·96, a scale attribute, unidirectional, a narrower input);
//   fp32 |got - want| <= 1e-5, fp16 4e-3 abs + 4e-3 rel (both sides round every op to fp16, in another order);
// - packed_attention models (RestorePadding / RemovePadding have no CPU kernels): the Attention core, lifted,
//   runs in onnxruntime with the attnopt::Attention node evaluated by referenceAttention (float64), against
//   an independent float64 evaluation of com.microsoft Attention's documented semantics written here;
//   fp32 1e-5, fp16 (fp16 prelude) 4e-3 abs + 4e-3 rel;
// - lowering a headDim 0 site directly: GQA + past + windowed specs vs referenceAttention (1e-5 + 1e-4 rel),
//   and the specs whose lowering needs a static head size are refused with the reason.

import path from 'node:path';
import {
  type AttentionParams,
  attentionNode,
  attentionParams,
  causal,
  dense,
  floatAttr,
  Graph,
  intAttr,
  isAttention,
  linformer,
  type Lsh,
  Node,
  slidingWindow,
  SplitMix64,
  Tensor,
  tensorAttr,
  tensorType,
  Value,
  verifyGraph,
} from '@attnopt/ir';
import { exportOnnx, importOnnx, newOnnxModel } from '@attnopt/onnx';
import { compareArrays, referenceAttention } from '@attnopt/reference';
import { rewritePass } from '@attnopt/rewrite';
import type * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { cannotLower, loweringPlan, lowerAttentionPass } from '../src/lower/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { FIXTURES } from './helpers/node-tests.js';
import { compareOutputs, ortTensor, ortValues, runModel } from './helpers/ort.js';

const MICROBENCH = 'ort-models/onnxruntime/python/tools/microbench/models';
const TESTDATA = 'ort-models/onnxruntime/test/testdata';
const CORPUS = [
  `${MICROBENCH}/attention_fp16.onnx`,
  `${MICROBENCH}/attention_fp32.onnx`,
  `${TESTDATA}/packed_attention_fp16.onnx`,
  `${TESTDATA}/packed_attention_fp16.rbp.onnx`,
  `${TESTDATA}/packed_attention_fp32.onnx`,
];
const B = 2;
const S = 5;

function lift(g: Graph): Node {
  rewritePass('recognize-fused', FUSED_RULES).run(g);
  const sites = g.nodes.filter(isAttention);
  expect(sites.length).toBe(1);
  expect(g.nodes.filter((n) => n.op === 'Attention' && !isAttention(n))).toEqual([]);
  return sites[0]!;
}

const uniform = (rng: SplitMix64, n: number) => Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);

describe('the corpus nodes with a head size known only at run time', () => {
  it.each(CORPUS)('%s lifts to attnopt::Attention with headDim 0 (bhsd), and verifies lifted and lowered', (file) => {
    const model = importOnnx(path.join(FIXTURES, file));
    const site = lift(model.graph);
    const p = attentionParams(site);
    expect(p).toMatchObject({ numHeads: 12, kvNumHeads: 12, headDim: 0, vHeadDim: 0, layout: 'bhsd', scale: 1, spec: dense });
    expect(verifyGraph(model.graph)).toEqual([]);
    lowerAttentionPass({ opset: 21 }).run(model.graph);
    expect([...model.graph.allNodes()].filter(isAttention)).toEqual([]);
    expect(verifyGraph(model.graph)).toEqual([]);
  });
});

interface Variant {
  readonly name: string;
  readonly file: string;
  /** Input width and Q/K/V hidden size (weights [inWidth, 3 · hidden]). */
  readonly inWidth: number;
  readonly hidden: number;
  readonly attrs?: Record<string, ReturnType<typeof intAttr>>;
}

const fp32 = `${MICROBENCH}/attention_fp32.onnx`;
const fp16 = `${MICROBENCH}/attention_fp16.onnx`;
const VARIANTS: Variant[] = [
  { name: 'fp32, 12 heads, hidden 48 (D 4)', file: fp32, inWidth: 48, hidden: 48 },
  { name: 'fp32, 12 heads, hidden 96 (D 8)', file: fp32, inWidth: 96, hidden: 96 },
  { name: 'fp16, 12 heads, hidden 48 (D 4)', file: fp16, inWidth: 48, hidden: 48 },
  { name: 'fp16, 12 heads, hidden 96 (D 8)', file: fp16, inWidth: 96, hidden: 96 },
  { name: 'fp32, 4 heads, width 3*64 (D 16)', file: fp32, inWidth: 64, hidden: 64, attrs: { num_heads: intAttr(4) } },
  { name: 'fp32, 4 heads, width 3*96 (D 24)', file: fp32, inWidth: 96, hidden: 96, attrs: { num_heads: intAttr(4) } },
  { name: 'fp32, 4 heads, width 3*64, scale 0.3', file: fp32, inWidth: 64, hidden: 64, attrs: { num_heads: intAttr(4), scale: floatAttr(0.3) } },
  { name: 'fp32, 4 heads, width 3*96, unidirectional', file: fp32, inWidth: 96, hidden: 96, attrs: { num_heads: intAttr(4), unidirectional: intAttr(1) } },
  { name: 'fp32, 4 heads, input 40 wide, width 3*64', file: fp32, inWidth: 40, hidden: 64, attrs: { num_heads: intAttr(4) } },
];

describe('microbench Attention: lifted and lowered vs the original in onnxruntime', () => {
  it.each(VARIANTS.map((v) => [v.name, v] as const))('%s', async (_, v) => {
    const original = importOnnx(path.join(FIXTURES, v.file));
    const node = original.graph.nodes.find((n) => n.op === 'Attention')!;
    for (const [k, a] of Object.entries(v.attrs ?? {})) node.attrs.set(k, a);
    const bytes = exportOnnx(original);
    const dtype = v.file === fp16 ? 'f16' : 'f32';
    const rng = new SplitMix64(v.hidden * 7 + v.inWidth);
    const feeds = {
      INPUT: ortTensor(dtype, [B, S, v.inWidth], uniform(rng, B * S * v.inWidth)),
      WEIGHT: ortTensor(dtype, [v.inWidth, 3 * v.hidden], uniform(rng, v.inWidth * 3 * v.hidden).map((x) => x / Math.sqrt(v.inWidth) * 2)),
      BIAS: ortTensor(dtype, [3 * v.hidden], uniform(rng, 3 * v.hidden)),
      // batch 1 pads its last two keys
      MASK_INDEX: ortTensor('i32', [B, S], Array.from({ length: B * S }, (_, k) => (k >= S && k % S >= S - 2 ? 0 : 1))),
    };
    const want = await runModel(bytes, feeds);
    const model = importOnnx(bytes);
    const site = lift(model.graph);
    const p = attentionParams(site);
    expect(p.headDim).toBe(0);
    expect(p.scale).toBe(v.attrs?.scale?.type === 'float' ? Math.fround(v.attrs.scale.value) : 1);
    expect(p.spec).toEqual(v.attrs?.unidirectional ? causal('bottom-right') : dense);
    expect(verifyGraph(model.graph)).toEqual([]);
    lowerAttentionPass({ opset: 21 }).run(model.graph);
    const got = await runModel(exportOnnx(model), feeds);
    expect(got.return_val!.dims).toEqual([B, S, v.hidden]);
    const tol = dtype === 'f16' ? 4e-3 : 1e-5;
    const cmp = compareOutputs(got, want, tol, dtype === 'f16' ? tol : 0);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError.toExponential(2)}`).toEqual([]);
  });
});

/**
 * com.microsoft Attention as documented (float64): QKV = X W + bias split into three equal parts, heads of
 * size D = hidden / numHeads, scores = Q Kᵀ / sqrt(D) + attention_bias, plus mask_filter_value on keys at or
 * past mask_index[b] (1D key lengths), softmax over keys, Y = P V with the heads concatenated.
 */
function msAttention64(
  x: Float64Array,
  w: Float64Array,
  bias: Float64Array,
  lengths: readonly number[],
  attentionBias: Float64Array | undefined,
  dims: { inWidth: number; hidden: number; heads: number; filter: number },
): Float64Array {
  const { inWidth, hidden, heads, filter } = dims;
  const D = hidden / heads;
  const width = 3 * hidden;
  const qkv = new Float64Array(B * S * width);
  for (let r = 0; r < B * S; r++) {
    for (let c = 0; c < width; c++) {
      let acc = bias[c]!;
      for (let i = 0; i < inWidth; i++) acc += x[r * inWidth + i]! * w[i * width + c]!;
      qkv[r * width + c] = acc;
    }
  }
  const y = new Float64Array(B * S * hidden);
  const at = (b: number, s: number, part: number, h: number, d: number) => qkv[(b * S + s) * width + part * hidden + h * D + d]!;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < S; i++) {
        const scores = Array.from({ length: S }, (_, j) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          let s = dot / Math.sqrt(D);
          if (attentionBias) s += attentionBias[((b * heads + h) * S + i) * S + j]!;
          return j >= lengths[b]! ? s + filter : s;
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += (e[j]! / sum) * at(b, j, 2, h, d);
          y[(b * S + i) * hidden + h * D + d] = acc;
        }
      }
    }
  }
  return y;
}

/** The packed model's Attention core: RestorePadding's output becomes input `x`, the Attention's output the graph output. */
function attentionCore(file: string): Graph {
  const g = importOnnx(path.join(FIXTURES, file)).graph;
  const restore = g.nodes.find((n) => n.op === 'RestorePadding')!;
  const remove = g.nodes.find((n) => n.op === 'RemovePadding')!;
  const attention = g.nodes.find((n) => n.op === 'Attention')!;
  const dtype = g.inputs.find((v) => v.name === 'weight')!.type!;
  const x = new Value('x', tensorType(dtype.kind === 'tensor' ? dtype.dtype : 'f32', ['batch_size', 'seq_len', 'hidden_size']));
  restore.outputs[0]!.replaceAllUsesWith(x, g);
  g.outputs.splice(0, g.outputs.length, attention.outputs[0]!);
  g.removeNode(remove);
  g.removeNode(restore);
  g.inputs.splice(0, g.inputs.length, x, ...g.inputs.filter((v) => v.uses().length > 0));
  return g;
}

/** Replaces `site` (an attnopt::Attention) by a Constant holding `y`. */
function replaceByConstant(g: Graph, site: Node, y: Tensor): void {
  const out = new Value(`${site.outputs[0]!.name}_reference`, tensorType(y.dtype, y.shape));
  const constant = new Node({ op: 'Constant', name: out.name, outputs: [out], attrs: { value: tensorAttr(y) } });
  site.outputs[0]!.replaceAllUsesWith(out, g);
  const at = g.nodes.indexOf(site);
  g.removeNode(site);
  g.addNode(constant, at);
}

const PACKED = [
  { file: `${TESTDATA}/packed_attention_fp32.onnx`, dtype: 'f32', rbp: false },
  { file: `${TESTDATA}/packed_attention_fp16.onnx`, dtype: 'f16', rbp: false },
  { file: `${TESTDATA}/packed_attention_fp16.rbp.onnx`, dtype: 'f16', rbp: true },
] as const;

describe('packed_attention Attention core: lifted graph with referenceAttention vs float64 com.microsoft Attention', () => {
  const cases = PACKED.flatMap((m) => [48, 96].map((hidden) => [`${path.basename(m.file)}, hidden ${hidden}`, m, hidden] as const));
  it.each(cases)('%s', async (_, m, hidden) => {
    const heads = 12;
    const rng = new SplitMix64(hidden + (m.rbp ? 1 : 0));
    const cumulative = [0, S, S + 3]; // key lengths 5 and 3
    const raw = {
      x: uniform(rng, B * S * hidden),
      weight: uniform(rng, hidden * 3 * hidden).map((v) => (v / Math.sqrt(hidden)) * 2),
      bias: uniform(rng, 3 * hidden),
      rbp: uniform(rng, B * heads * S * S),
    };
    const feeds: Record<string, ort.Tensor> = {
      x: ortTensor(m.dtype, [B, S, hidden], raw.x),
      weight: ortTensor(m.dtype, [hidden, 3 * hidden], raw.weight),
      bias: ortTensor(m.dtype, [3 * hidden], raw.bias),
      cumulative_sequence_length: ortTensor('i32', [B + 1], cumulative),
      ...(m.rbp ? { rbp: ortTensor(m.dtype, [B, heads, S, S], raw.rbp) } : {}),
    };
    // the float64 side reads the values as fed (rounded to fp16 for fp16 models)
    const fed = (name: string) => ortValues(feeds[name]!);
    const want = msAttention64(fed('x'), fed('weight'), fed('bias'), [S, 3], m.rbp ? fed('rbp') : undefined, {
      inWidth: hidden,
      hidden,
      heads,
      filter: -3.4028234663852886e38,
    });

    // Q, K, V and the bias the lifted prelude computes (onnxruntime), then the Attention by the reference
    const pre = attentionCore(m.file);
    const site = lift(pre);
    const params: AttentionParams = attentionParams(site);
    expect(params).toMatchObject({ headDim: 0, vHeadDim: 0, layout: 'bhsd', scale: 1 });
    expect(verifyGraph(pre)).toEqual([]);
    const [q, k, v, bias] = site.inputs;
    pre.outputs.splice(0, pre.outputs.length, q!, k!, v!, bias!);
    for (const n of pre.nodes.slice(pre.nodes.indexOf(site) + 1).reverse()) pre.removeNode(n);
    pre.removeNode(site);
    const inputs = await runModel(exportOnnx(newOnnxModel(pre, { opset: 17 })), feeds);
    const t = (x: Value) => ({ shape: [...inputs[x.name]!.dims], data: ortValues(inputs[x.name]!) });
    expect(t(q!).shape).toEqual([B, heads, S, hidden / heads]);
    const y = referenceAttention(params, { q: t(q!), k: t(k!), v: t(v!), bias: t(bias!) }).y;

    // the whole lifted graph, the Attention node replaced by the reference's Y
    const full = attentionCore(m.file);
    replaceByConstant(full, lift(full), Tensor.fromValues(m.dtype, y.shape, y.data));
    const out = await runModel(exportOnnx(newOnnxModel(full, { opset: 17 })), feeds);
    const got = out.attention_outputs!;
    expect(got.dims).toEqual([B, S, hidden]);
    const tol = m.dtype === 'f16' ? { atol: 4e-3, rtol: 4e-3 } : { atol: 1e-5, rtol: 0 };
    const cmp = compareArrays(ortValues(got), want, tol);
    expect(cmp.mismatches.slice(0, 3), `max abs error ${cmp.maxAbsError.toExponential(2)}`).toEqual([]);
  });
});

describe('lowering a site whose head size is read at run time', () => {
  /** bhsd Q [B, H, n, d], K [B, Hkv, n, d], V [B, Hkv, n, dv] with symbolic d / dv, past K/V of 2. */
  function site(params: AttentionParams): { g: Graph; node: Node } {
    const g = new Graph('runtime_head');
    const Hq = params.numHeads;
    const Hk = params.kvNumHeads;
    const input = (name: string, heads: number, len: string, d: string) => g.addInput(new Value(name, tensorType('f32', ['b', heads, len, d])));
    const q = input('q', Hq, 'n', 'd');
    const k = input('k', Hk, 'n', 'd');
    const v = input('v', Hk, 'n', 'dv');
    const pastKey = input('past_key', Hk, 'p', 'd');
    const pastValue = input('past_value', Hk, 'p', 'dv');
    const outs = { y: new Value('y', tensorType('f32')), presentKey: new Value('present_key', tensorType('f32')), presentValue: new Value('present_value', tensorType('f32')) };
    const node = g.addNode(attentionNode(params, { q, k, v, pastKey, pastValue }, outs, 'attn'));
    g.outputs.push(outs.y, outs.presentKey, outs.presentValue);
    return { g, node };
  }
  const base: AttentionParams = { numHeads: 4, kvNumHeads: 2, headDim: 0, vHeadDim: 0, scale: 0.35, softcap: 0, layout: 'bhsd', spec: dense };

  it.each([
    ['dense', dense],
    ['causal (past)', causal('past')],
    ['window (banded where D is static: dense here)', slidingWindow(2, 0, 'past')],
  ] as const)('GQA 4/2 heads with past, %s: onnxruntime vs referenceAttention at two head sizes', async (_, spec) => {
    const params = { ...base, spec };
    const { g, node } = site(params);
    expect(verifyGraph(g)).toEqual([]);
    expect(loweringPlan(node).strategy).toBe('dense');
    lowerAttentionPass({ opset: 21 }).run(g);
    const bytes = exportOnnx(newOnnxModel(g, { opset: 21 }));
    for (const [d, dv] of [[8, 4], [12, 12]] as const) {
      const rng = new SplitMix64(d * 31 + dv);
      const n = 6;
      const past = 2;
      const shape = (heads: number, len: number, w: number) => [1, heads, len, w];
      const data = {
        q: { shape: shape(4, n, d), data: Float64Array.from(uniform(rng, 4 * n * d)) },
        k: { shape: shape(2, n, d), data: Float64Array.from(uniform(rng, 2 * n * d)) },
        v: { shape: shape(2, n, dv), data: Float64Array.from(uniform(rng, 2 * n * dv)) },
        past_key: { shape: shape(2, past, d), data: Float64Array.from(uniform(rng, 2 * past * d)) },
        past_value: { shape: shape(2, past, dv), data: Float64Array.from(uniform(rng, 2 * past * dv)) },
      };
      const feeds = Object.fromEntries(Object.entries(data).map(([name, t]) => [name, ortTensor('f32', t.shape, t.data)]));
      const out = await runModel(bytes, feeds);
      // the reference reads the head sizes from the arrays (rounded to f32 as fed)
      const f32 = (t: { shape: number[]; data: Float64Array }) => ({ shape: t.shape, data: Float64Array.from(Float32Array.from(t.data)) });
      const want = referenceAttention(params, {
        q: f32(data.q),
        k: f32(data.k),
        v: f32(data.v),
        pastKey: f32(data.past_key),
        pastValue: f32(data.past_value),
      });
      expect(out.y!.dims).toEqual([1, 4, n, dv]);
      for (const [name, w] of [['y', want.y], ['present_key', want.presentKey], ['present_value', want.presentValue]] as const) {
        const cmp = compareArrays(ortValues(out[name]!), w.data, { atol: 1e-5, rtol: 1e-4 });
        expect(cmp.mismatches.slice(0, 3), `${name}, d ${d}, dv ${dv}`).toEqual([]);
      }
    }
  });

  it('refuses the lowerings that reshape by the head size, naming the node', () => {
    for (const spec of [linformer(4, 1), ({ kind: 'lsh', buckets: 4, hashes: 1, seed: 3, chunk: 0 } satisfies Lsh)]) {
      const { g, node } = site({ ...base, spec });
      expect(cannotLower(node)).toMatch(/head size is only known at run time/);
      expect(() => lowerAttentionPass({ opset: 21 }).run(g)).toThrow(/node "attn".*head size is only known at run time/);
    }
    const { node } = site({ ...base, spec: slidingWindow(2, 0, 'past') });
    expect(() => loweringPlan(node, { opset: 21, strategy: 'banded' })).toThrow(/banded lowering does not apply: the head size is only known at run time/);
  });
});
