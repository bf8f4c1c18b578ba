// Lowering attnopt::Attention to standard ONNX ops, checked in onnxruntime (optimizations off) against
// referenceAttention on seeded problems: fp32, |ort - ref| <= 1e-5 + 1e-4 |ref|.

import {
  type AttentionParams,
  attentionNode,
  blockSparse,
  causal,
  dense,
  difference,
  Graph,
  globalTokens,
  intersect,
  type MaskSpec,
  sinks,
  slidingWindow,
  SplitMix64,
  tensorType,
  union,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { compareArrays, referenceAttention, type ReferenceInputs } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

interface Problem {
  readonly params: AttentionParams;
  readonly batch: number;
  readonly nq: number;
  readonly nk: number;
  readonly past: number;
  readonly bias?: 'float' | 'bool';
  readonly kvLength?: boolean;
  /** Query row 0 of every batch and head keeps no key through the bias (false, or -inf). */
  readonly firstRowMasked?: boolean;
  /** The bias's key axis (default: every key, past + nk) and query axis (default nq; 1: a key bias). */
  readonly biasKeys?: number;
  readonly biasRows?: 1;
  /** Forces the banded lowering (LowerOptions.strategy). */
  readonly banded?: boolean;
}

function shapes(p: Problem) {
  const { numHeads: H, kvNumHeads: Hk, headDim: D, vHeadDim: Dv, layout } = p.params;
  const { batch: B, nq, nk } = p;
  const by = (heads: number, s: number, d: number): number[] =>
    layout === 'bsd' ? [B, s, heads * d] : layout === 'bshd' ? [B, s, heads, d] : [B, heads, s, d];
  if (layout === 'packed-qkv') return { q: [B, nq, (H + 2 * Hk) * D] };
  return { q: by(H, nq, D), k: by(Hk, nk, D), v: by(Hk, nk, Dv) };
}

async function check(p: Problem, seed: number): Promise<number> {
  const rng = new SplitMix64(seed);
  const rand = (n: number) => Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);
  const g = new Graph('lower_test');
  const feeds: Record<string, ReturnType<typeof ortTensor>> = {};
  const data: Record<string, { shape: number[]; values: number[] }> = {};
  const input = (name: string, dtype: 'f32' | 'bool' | 'i64', shape: number[], values: number[]) => {
    data[name] = { shape, values };
    feeds[name] = ortTensor(dtype, shape, values);
    return g.addInput(new Value(name, tensorType(dtype, shape)));
  };
  const sh = shapes(p);
  const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const q = input('q', 'f32', sh.q, rand(count(sh.q)));
  const k = sh.k ? input('k', 'f32', sh.k, rand(count(sh.k))) : undefined;
  const v = sh.v ? input('v', 'f32', sh.v, rand(count(sh.v))) : undefined;
  const total = p.past + p.nk;
  const biasShape = [p.batch, 1, p.biasRows ?? p.nq, p.biasKeys ?? total];
  const rowOf = (at: number) => Math.floor(at / biasShape[3]!) % biasShape[2]!;
  const firstRow = (x: number, at: number, masked: number) => (p.firstRowMasked && rowOf(at) === 0 ? masked : x);
  const bias =
    p.bias === 'float' ? input('bias', 'f32', biasShape, rand(count(biasShape)).map((x, at) => firstRow(x, at, -Infinity)))
    : p.bias === 'bool' ? input('bias', 'bool', biasShape, rand(count(biasShape)).map((x, at) => firstRow(x > -0.6 ? 1 : 0, at, 0)))
    : undefined;
  const pastShape = [p.batch, p.params.kvNumHeads, p.past, p.params.headDim];
  const pastK = p.past > 0 ? input('past_key', 'f32', pastShape, rand(count(pastShape))) : undefined;
  const pastV = p.past > 0 ? input('past_value', 'f32', [...pastShape.slice(0, 3), p.params.vHeadDim], rand(count(pastShape) / p.params.headDim * p.params.vHeadDim)) : undefined;
  const kvLen = p.kvLength ? input('kv_length', 'i64', [p.batch], Array.from({ length: p.batch }, (_, b) => Math.max(1, total - (b % 2) * 2))) : undefined;
  const y = new Value('y', tensorType('f32'));
  const pk = new Value('present_key', tensorType('f32'));
  const pv = new Value('present_value', tensorType('f32'));
  g.addNode(
    attentionNode(
      p.params,
      { q, ...(k ? { k } : {}), ...(v ? { v } : {}), ...(bias ? { bias } : {}), ...(pastK ? { pastKey: pastK, pastValue: pastV! } : {}), ...(kvLen ? { kvLength: kvLen } : {}) },
      { y, presentKey: pk, presentValue: pv },
      'attn',
    ),
  );
  g.outputs.push(y, pk, pv);
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(p.banded ? { strategy: 'banded' } : {}) })]);
  const bytes = exportOnnx(newOnnxModel(g, { opset: 21 }));
  const out = await runModel(bytes, feeds);
  const t = (name: string) => ({ shape: data[name]!.shape, data: Float64Array.from(data[name]!.values) });
  const ref: ReferenceInputs = {
    q: t('q'),
    ...(k ? { k: t('k') } : {}),
    ...(v ? { v: t('v') } : {}),
    ...(p.bias === 'float' ? { bias: t('bias') } : p.bias === 'bool' ? { bias: { shape: biasShape, data: Uint8Array.from(data.bias!.values) } } : {}),
    ...(pastK ? { pastKey: t('past_key'), pastValue: t('past_value') } : {}),
    ...(kvLen ? { kvLength: data.kv_length!.values } : {}),
  };
  const want = referenceAttention(p.params, ref);
  let worst = 0;
  for (const [name, w] of [['y', want.y], ['present_key', want.presentKey], ['present_value', want.presentValue]] as const) {
    const cmp = compareArrays(ortValues(out[name]!), w.data, { atol: 1e-5, rtol: 1e-4 });
    expect(cmp.mismatches.slice(0, 3), `${name}`).toEqual([]);
    worst = Math.max(worst, cmp.maxAbsError);
  }
  return worst;
}

const SPECS: [string, MaskSpec][] = [
  ['dense', dense],
  ['causal top-left', causal('top-left')],
  ['causal bottom-right', causal('bottom-right')],
  ['causal past', causal('past')],
  ['window', slidingWindow(2, 1, 'bottom-right')],
  ['sinks+window', union(sinks(2), slidingWindow(3, 0, 'past'))],
  ['global', globalTokens([0, 4], 'top-left')],
  ['causal∩window', intersect(causal('past'), slidingWindow(2, 0, 'past'))],
  ['causal∖sinks', difference(causal('bottom-right'), sinks(1))],
];

const LAYOUTS = ['bsd', 'bhsd', 'bshd', 'packed-qkv'] as const;

describe('lowerAttention in onnxruntime vs referenceAttention', () => {
  const cases: [string, Problem][] = [];
  let n = 0;
  for (const [specName, spec] of SPECS) {
    for (const layout of LAYOUTS) {
      const gqa = n % 3 === 0;
      const headDim = [8, 80, 96, 5][n % 4]!;
      const past = layout !== 'packed-qkv' && n % 2 === 0 ? 3 : 0;
      const nq = [1, 5, 7][n % 3]!;
      const params: AttentionParams = {
        numHeads: gqa ? 4 : 2,
        kvNumHeads: 2,
        headDim,
        vHeadDim: layout === 'packed-qkv' ? headDim : n % 5 === 0 ? 6 : headDim,
        scale: 1 / Math.sqrt(headDim),
        softcap: n % 4 === 1 ? 2.5 : 0,
        layout,
        spec,
      };
      const nk = layout === 'packed-qkv' ? nq : nq + (n % 2);
      const bias = (['float', 'bool', undefined] as const)[n % 3];
      cases.push([
        `${specName} ${layout} d=${headDim}${gqa ? ' gqa' : ''}${past ? ' past' : ''}${bias ? ` ${bias} bias` : ''}${n % 4 === 3 ? ' kvLength' : ''}`,
        { params, batch: 2, nq, nk, past, ...(bias ? { bias } : {}), ...(n % 4 === 3 ? { kvLength: true } : {}) },
      ]);
      n++;
    }
  }
  const errs: number[] = [];
  it.each(cases)('%s', async (_name, p) => {
    errs.push(await check(p, errs.length + 7));
  });
  it('reports', () => console.log(`lowering: ${errs.length} problems in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));

  // a query row that keeps no key gives 0 (the IR's convention; onnxruntime's Softmax gives NaN there), through the
  // spec (causal ∖ sinks(1) top-left: row 0 keeps key 0, a sink), a boolean bias, a -inf float bias, with and without
  // the probabilities as an output
  const rowCase = (spec: MaskSpec, bias?: 'float' | 'bool'): Problem => ({
    params: { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.35, softcap: 0, layout: 'bhsd', spec },
    batch: 2,
    nq: 5,
    nk: 5,
    past: 0,
    ...(bias ? { bias, firstRowMasked: true } : {}),
  });
  it.each([
    ['the spec', rowCase(difference(causal('top-left'), sinks(1)))],
    ['a boolean bias', rowCase(causal('top-left'), 'bool')],
    ['a -inf float bias', rowCase(dense, 'float')],
  ] as const)('a row that keeps no key through %s gives 0', async (_name, p) => {
    await check(p, 91);
  });

  // a bias whose key axis is shorter than the key count (ONNX Attention allows it): the missing keys are masked, as
  // the IR defines it, never broadcast (a width of 1 included). Dense (an n x n bias), and banded with a key bias
  // [B, 1, 1, w] (gathered per key); past 3 + 5 keys, widths 6 and 1
  const shortBias = (spec: MaskSpec, bias: 'float' | 'bool', biasKeys: number, biasRows?: 1): Problem => ({
    ...(biasRows ? { banded: true } : {}),
    params: { numHeads: 4, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.35, softcap: 0, layout: 'bshd', spec },
    batch: 2,
    nq: 5,
    nk: 5,
    past: 3,
    bias,
    biasKeys,
    ...(biasRows ? { biasRows } : {}),
  });
  it.each([
    ['dense, a float bias over 6 of 8 keys', shortBias(dense, 'float', 6)],
    ['dense, a boolean bias over 6 of 8 keys', shortBias(dense, 'bool', 6)],
    ['dense, a float bias over 1 of 8 keys', shortBias(dense, 'float', 1)],
    ['causal past, a boolean bias over 1 of 8 keys', shortBias(causal('past'), 'bool', 1)],
    ['sinks + window (banded), a float key bias over 6 of 8 keys', shortBias(union(sinks(2), slidingWindow(3, 0, 'past')), 'float', 6, 1)],
    ['sinks + window (banded), a boolean key bias over 1 of 8 keys', shortBias(union(sinks(2), slidingWindow(3, 0, 'past')), 'bool', 1, 1)],
  ] as const)('%s: the missing keys masked', async (_name, p) => {
    await check(p, 57);
  });

  it('a bias the graph declares over every key (the same symbol) is not padded; one over another symbol is', () => {
    const padded = (biasKeys: string) => {
      const g = new Graph('g');
      const x = g.addInput(new Value('x', tensorType('f32', [1, 'seq', 8])));
      const bias = g.addInput(new Value('bias', tensorType('f32', [1, 1, 'seq', biasKeys])));
      const y = new Value('y');
      g.addNode(attentionNode({ numHeads: 1, kvNumHeads: 1, headDim: 8, vHeadDim: 8, scale: 1, softcap: 0, layout: 'bsd', spec: dense }, { q: x, k: x, v: x, bias }, { y }, 'a'));
      g.outputs.push(y);
      lowerAttentionPass({ opset: 21 }).run(g);
      return g.nodes.filter((n) => n.op === 'Pad').length;
    };
    expect(padded('seq')).toBe(0);
    expect(padded('mask_len')).toBe(1);
  });

  it('does not lower specs it cannot express yet, and says which', () => {
    const g = new Graph('g');
    const q = g.addInput(new Value('q', tensorType('f32', [1, 4, 8])));
    const y = new Value('y');
    g.addNode(attentionNode({ numHeads: 1, kvNumHeads: 1, headDim: 8, vHeadDim: 8, scale: 1, softcap: 0, layout: 'bsd', spec: union(blockSparse(2, 2, [[0]]), slidingWindow(1)) }, { q, k: q, v: q }, { y }, 'a'));
    g.outputs.push(y);
    expect(() => lowerAttentionPass({ opset: 21 }).run(g)).toThrow(/not lowered yet: blocks/);
  });
});
