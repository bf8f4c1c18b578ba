// The banded lowering's block classes in onnxruntime against referenceAttention (fp32, |ort - ref| <=
// 1e-5 + 1e-4 |ref|): long enough sequences that most blocks take the constant band pattern, with head
// blocks (sinks, global tokens, an absolute term only in a subtracted part), tail blocks (keys past T),
// run-time alignments (bottom-right, past), kvLength, rows that keep no key, and block sizes whose gather
// granule is 8, 4, 2 or 1. One symbolic-length model per case, run at two lengths.

import {
  type AttentionParams,
  type AttentionSpec,
  attentionNode,
  causal,
  absoluteReach,
  difference,
  dilatedWindow,
  Graph,
  globalTokens,
  intersect,
  keySupport,
  type MaskSpec,
  sinks,
  slidingWindow,
  SplitMix64,
  tensorType,
  union,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { compareArrays, referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { bandedWidths, bandPattern } from '../src/lower/banded.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

interface Case {
  readonly spec: AttentionSpec;
  readonly blockSize: number;
  /** Query lengths to run; keys = queries + extraKeys (past included). */
  readonly lengths: readonly number[];
  readonly extraKeys?: number;
  readonly past?: number;
  readonly kvLength?: boolean;
}

const H = 2;
const D = 8;

function build(c: Case): Uint8Array {
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 0.4, softcap: 0, layout: 'bhsd', spec: c.spec };
  const g = new Graph('banded_edges');
  const q = g.addInput(new Value('q', tensorType('f32', ['batch', H, 'seq', D])));
  const k = g.addInput(new Value('k', tensorType('f32', ['batch', H, 'kseq', D])));
  const v = g.addInput(new Value('v', tensorType('f32', ['batch', H, 'kseq', D])));
  const pk = c.past ? g.addInput(new Value('past_key', tensorType('f32', ['batch', H, 'past', D]))) : undefined;
  const pv = c.past ? g.addInput(new Value('past_value', tensorType('f32', ['batch', H, 'past', D]))) : undefined;
  const kvLen = c.kvLength ? g.addInput(new Value('kv_length', tensorType('i64', ['batch']))) : undefined;
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q, k, v, ...(pk ? { pastKey: pk, pastValue: pv! } : {}), ...(kvLen ? { kvLength: kvLen } : {}) }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21, strategy: 'banded', blockSize: c.blockSize })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

async function check(c: Case, nq: number, seed: number): Promise<number> {
  const B = 2;
  const past = c.past ?? 0;
  const nk = nq + (c.extraKeys ?? 0) - past;
  const rng = new SplitMix64(seed);
  const rand = (shape: number[]) => ({ shape, data: Float64Array.from({ length: shape.reduce((a, x) => a * x, 1) }, () => rng.nextFloat() * 2 - 1) });
  const t = { q: rand([B, H, nq, D]), k: rand([B, H, nk, D]), v: rand([B, H, nk, D]), past_key: rand([B, H, past, D]), past_value: rand([B, H, past, D]) };
  const kvLength = [past + nk, Math.max(1, past + nk - 9)];
  const feeds: Record<string, ReturnType<typeof ortTensor>> = { q: ortTensor('f32', t.q.shape, t.q.data), k: ortTensor('f32', t.k.shape, t.k.data), v: ortTensor('f32', t.v.shape, t.v.data) };
  if (past) {
    feeds.past_key = ortTensor('f32', t.past_key.shape, t.past_key.data);
    feeds.past_value = ortTensor('f32', t.past_value.shape, t.past_value.data);
  }
  if (c.kvLength) feeds.kv_length = ortTensor('i64', [B], kvLength);
  const out = await runModel(build(c), feeds);
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 0.4, softcap: 0, layout: 'bhsd', spec: c.spec };
  const want = referenceAttention(params, {
    q: t.q,
    k: t.k,
    v: t.v,
    ...(past ? { pastKey: t.past_key, pastValue: t.past_value } : {}),
    ...(c.kvLength ? { kvLength } : {}),
  });
  const cmp = compareArrays(ortValues(out.y!), want.y.data, { atol: 1e-5, rtol: 1e-4 });
  expect(cmp.mismatches.slice(0, 3), `y at nq=${nq}`).toEqual([]);
  return cmp.maxAbsError;
}

const window = (left: number, align: 'top-left' | 'bottom-right' | 'past' = 'top-left') => intersect(causal(align), slidingWindow(left, 0, align));

const CASES: [string, Case][] = [
  ['causal ∩ (window 40 ∪ sinks 4), block 16', { spec: intersect(causal(), union(slidingWindow(39, 0), sinks(4))), blockSize: 16, lengths: [300, 173] }],
  ['window 20 ∖ sinks(12): an absolute term outside the extra keys', { spec: difference(slidingWindow(20, 0), sinks(12)), blockSize: 8, lengths: [120, 61] }],
  ['global(70, 3) ∪ window(6, 6), block 16', { spec: union(globalTokens([70, 3]), slidingWindow(6, 6)), blockSize: 16, lengths: [200, 90] }],
  ['window(12, 30): keys past T in the tail blocks', { spec: slidingWindow(12, 30), blockSize: 24, lengths: [150, 77] }],
  ['causal ∩ window 17 bottom-right, more keys than queries', { spec: window(16, 'bottom-right'), blockSize: 20, lengths: [130, 45], extraKeys: 37 }],
  ['causal ∩ window 25 past, a cache of 50', { spec: union(sinks(2), window(24, 'past')), blockSize: 32, lengths: [140, 33], extraKeys: 50, past: 50 }],
  ['causal ∩ window 9, fewer keys than queries: rows that keep no key', { spec: window(8, 'bottom-right'), blockSize: 16, lengths: [90, 40], extraKeys: -25 }],
  ['sinks(3) ∪ window 10 with kvLength (every block from the spec)', { spec: union(sinks(3), window(9)), blockSize: 16, lengths: [100, 51], kvLength: true }],
  ['dilated(15, 0, 3), block 33 (granule 1)', { spec: dilatedWindow(15, 0, 3), blockSize: 33, lengths: [160, 70] }],
  ['causal ∩ window 31, block 18 (granule 2)', { spec: window(30), blockSize: 18, lengths: [127, 200] }],
];

describe('banded lowering: head, constant and tail blocks in onnxruntime vs referenceAttention', () => {
  const errs: number[] = [];
  it.each(CASES)('%s', async (_name, c) => {
    for (const [k, n] of c.lengths.entries()) errs.push(await check(c, n, 11 + 7 * k + errs.length));
  });
  it('reports', () => console.log(`banded edges: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

describe('banded lowering: the constant band pattern and widths', () => {
  it('causal ∩ (window 256 ∪ sinks 4) at block 64: 8 extra rows + 320 band keys; the pattern keeps keys p - 255 .. p', () => {
    const spec: MaskSpec = intersect(causal(), union(slidingWindow(255, 0), sinks(4)));
    const s = keySupport(spec)!;
    expect(bandedWidths(s, 64)).toEqual({ granule: 8, extraRows: 8, band: 320, width: 328 });
    expect(absoluteReach(spec)).toBe(4);
    const pattern = bandPattern(spec, s, 64, 320);
    // query i of the block, band key t is key p - 255 + t - i
    for (const i of [0, 17, 63]) {
      const kept = Array.from({ length: 320 }, (_, t) => t).filter((t) => pattern[i * 320 + t]);
      expect(kept).toEqual(Array.from({ length: 256 }, (_, u) => i + u));
    }
  });
  it('the absolute reach covers every sinks count and global token, subtracted parts included', () => {
    expect(absoluteReach(difference(slidingWindow(20, 0), sinks(3)))).toBe(3);
    expect(absoluteReach(union(globalTokens([70, 3]), slidingWindow(6, 6)))).toBe(71);
    expect(absoluteReach(slidingWindow(6, 6))).toBe(0);
  });
});
