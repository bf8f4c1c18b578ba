// The onnxruntime form of the banded lowering (LowerOptions.native 'onnxruntime', banded-native.ts) run in
// onnxruntime against referenceAttention (float64): generated window / sinks / global-token / causal specs,
// alignments, odd lengths, GQA, batch 2, every layout, past K/V, kvLength, softcap and block sizes of every
// granule; Y within |ort - ref| <= 1e-4 (fp32 inputs in [-1, 1)), present K/V equal to past ++ K exactly.
// Every case asserts that the form was taken (one Attention node per band, no Softmax), and the cases it
// cannot take fall back to banded.ts with a pass note that says why.

import {
  type AttentionLayout,
  type AttentionParams,
  causal,
  difference,
  globalTokens,
  attentionNode,
  Graph,
  intersect,
  keySupport,
  type MaskSpec,
  sinks,
  slidingWindow,
  tensorType,
  union,
  Value,
  type Align,
} from '@attnopt/ir';
import { runPipeline } from '@attnopt/rewrite';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { middleRow } from '../src/lower/band-window.js';
import { type LowerOptions, lowerAttentionPass } from '../src/lower/index.js';
import { type Lowered, lowerSite, runSite, type Site } from './helpers/lowered-site.js';

const ATOL = 1e-4;
const NATIVE: LowerOptions = { opset: 23, native: 'onnxruntime' };

const ops = (g: Graph) => [...g.allNodes()].map((n) => n.op);

/** Runs a lowered site at nq queries; Y against the reference (ATOL), present K/V against past ++ K (exact). */
async function check(l: Lowered, s: Site, nq: number, seed: number): Promise<number> {
  const r = await runSite(l, s, nq, seed, { atol: ATOL, rtol: 0 }, 1, { presentExact: true });
  expect(r.mismatches.slice(0, 3), `y and present K/V at nq=${nq}`).toEqual([]);
  return r.maxAbsError;
}

/** The site lowered in the onnxruntime form; asserts the form was taken (Attention nodes, no Softmax). */
function lowerNative(s: Site, blockSize?: number): Lowered {
  const l = lowerSite(s, { ...NATIVE, strategy: 'banded', ...(blockSize !== undefined ? { blockSize } : {}) });
  const o = ops(l.graph);
  expect(o.filter((op) => op === 'Attention').length).toBeGreaterThanOrEqual(1);
  expect(o).not.toContain('Softmax');
  return l;
}

interface Drawn {
  readonly spec: MaskSpec;
  readonly align: Align;
  readonly layout: AttentionLayout;
  readonly heads: number;
  readonly groups: number;
  readonly headDim: number;
  readonly vExtra: number;
  readonly batch: number;
  readonly nq: number;
  readonly extraKeys: number;
  readonly past: number;
  readonly kvLength: boolean;
  readonly softcap: number;
  readonly blockSize: number | undefined;
}

/** window(left, right) with an alignment, maybe ∩ causal, ∪ sinks, ∪ global tokens. */
const drawn: fc.Arbitrary<Drawn> = fc
  .record({
    left: fc.integer({ min: 0, max: 40 }),
    right: fc.integer({ min: 0, max: 12 }),
    isCausal: fc.boolean(),
    sinkCount: fc.constantFrom(0, 0, 1, 4),
    globals: fc.constantFrom<number[]>([], [], [0], [3, 17]),
    align: fc.constantFrom<Align>('top-left', 'bottom-right', 'past'),
    layout: fc.constantFrom<AttentionLayout>('bsd', 'bshd', 'bhsd', 'packed-qkv'),
    heads: fc.constantFrom(2, 4),
    groups: fc.constantFrom(1, 2),
    headDim: fc.constantFrom(8, 16),
    vExtra: fc.constantFrom(0, 8),
    batch: fc.constantFrom(1, 2),
    nq: fc.integer({ min: 1, max: 150 }),
    extraKeys: fc.integer({ min: -10, max: 30 }),
    past: fc.constantFrom(0, 0, 5, 19),
    kvLength: fc.boolean(),
    softcap: fc.constantFrom(0, 0, 4),
    blockSize: fc.constantFrom<number | undefined>(undefined, 8, 12, 13, 16, 18),
  })
  .map((r) => {
    const band = intersect(...(r.isCausal ? [causal(r.align)] : []), slidingWindow(r.left, r.right, r.align));
    const extra: MaskSpec[] = [...(r.sinkCount > 0 ? [sinks(r.sinkCount)] : []), ...(r.globals.length > 0 ? [globalTokens(r.globals, r.align)] : [])];
    const packed = r.layout === 'packed-qkv';
    // a past alignment reads the cache length (kvLength without a cache would differ per batch: dense)
    const past = r.align === 'past' && r.past === 0 ? 7 : r.past;
    return {
      spec: extra.length > 0 ? union(band, ...extra) : band,
      align: r.align,
      layout: r.layout,
      heads: r.heads,
      groups: r.groups,
      headDim: r.headDim,
      vExtra: packed ? 0 : r.vExtra,
      batch: r.batch,
      nq: r.nq,
      extraKeys: packed ? 0 : Math.max(r.extraKeys, 1 - r.nq),
      past,
      kvLength: r.kvLength,
      softcap: r.softcap,
      blockSize: r.blockSize,
    };
  });

function siteOf(d: Drawn): Site {
  const params: AttentionParams = {
    numHeads: d.heads,
    kvNumHeads: d.heads / d.groups,
    headDim: d.headDim,
    vHeadDim: d.headDim + d.vExtra,
    scale: 0.35,
    softcap: d.softcap,
    layout: d.layout,
    spec: d.spec,
  };
  return { params, batch: d.batch, extraKeys: d.extraKeys, ...(d.past > 0 ? { past: d.past } : {}), kvLength: d.kvLength };
}

describe('banded lowering, onnxruntime form (one Attention per batch of blocks) vs referenceAttention', () => {
  const errs: number[] = [];
  it('generated window / sinks / global / causal specs, layouts, GQA, past, kvLength, softcap, odd lengths', async () => {
    await fc.assert(
      fc.asyncProperty(drawn, fc.integer({ min: 1, max: 1 << 30 }), async (d, seed) => {
        const l = lowerNative(siteOf(d), d.blockSize);
        errs.push(await check(l, siteOf(d), d.nq, seed));
      }),
      { seed: 20261126, numRuns: 40, endOnFailure: true },
    );
  }, 240_000);

  it('the benchmark spec causal ∩ (window 256 ∪ sinks 4), 8 heads, d 64, block 64: head, constant and tail blocks', async () => {
    const spec = intersect(causal(), union(slidingWindow(255, 0), sinks(4)));
    const s: Site = { params: { numHeads: 8, kvNumHeads: 8, headDim: 64, vHeadDim: 64, scale: 0.125, softcap: 0, layout: 'bsd', spec }, batch: 1 };
    const l = lowerNative(s);
    for (const [k, n] of [700, 333].entries()) errs.push(await check(l, s, n, 5 + k));
  }, 120_000);

  it('rows that keep no key give 0: fewer keys than queries, bottom-right', async () => {
    const spec = intersect(causal('bottom-right'), slidingWindow(8, 0, 'bottom-right'));
    const s: Site = { params: { numHeads: 2, kvNumHeads: 1, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bsd', spec }, batch: 2, extraKeys: -25 };
    const l = lowerNative(s, 16);
    errs.push(await check(l, s, 90, 3));
  });

  // (onnxruntime's CPU Attention already gives 0 on a row of -inf biases; the form's Where makes it so in any runtime)
  it('global query rows that keep no key give 0 (batch 1: kvLength leaves only the subtracted sinks)', async () => {
    const spec = difference(union(globalTokens([2]), slidingWindow(3, 0)), sinks(4));
    const s: Site = { params: { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bshd', spec }, batch: 2, extraKeys: -21, kvLength: true };
    const l = lowerNative(s, 8);
    errs.push(await check(l, s, 30, 9));
  });

  it('a spec without a band (sinks and global tokens only): every block reads the extra rows', async () => {
    const spec = union(sinks(3), globalTokens([5]));
    const s: Site = { params: { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bsd', spec }, batch: 2 };
    const l = lowerNative(s, 16);
    errs.push(await check(l, s, 37, 4));
  });

  it('an absolute term outside the extra keys: window 20 ∖ sinks(12)', async () => {
    const spec = difference(slidingWindow(20, 0), sinks(12));
    const s: Site = { params: { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bsd', spec }, batch: 1 };
    const l = lowerNative(s, 8);
    for (const [k, n] of [120, 61].entries()) errs.push(await check(l, s, n, 21 + k));
  });

  it('extra keys a relative term drops near them: (window 10 ∪ sinks 4) ∖ window 60 (no shared row: every block from the spec)', async () => {
    const spec = difference(union(slidingWindow(10, 0), sinks(4)), slidingWindow(60, 0));
    expect(middleRow(spec, keySupport(spec)!, 8)).toBeUndefined();
    const s: Site = { params: { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bsd', spec }, batch: 1 };
    const l = lowerNative(s, 8);
    for (const [k, n] of [150, 77].entries()) errs.push(await check(l, s, n, 31 + k));
  });

  it('reports', () => console.log(`banded onnxruntime form: ${errs.length} runs in onnxruntime, max abs error ${Math.max(...errs).toExponential(2)}`));
});

describe('banded lowering, onnxruntime form: when it is not taken', () => {
  const spec = intersect(causal(), union(slidingWindow(30, 0), sinks(2)));
  const params: AttentionParams = { numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.4, softcap: 0, layout: 'bsd', spec };
  /** The site's graph lowered with `options`: its ops and the pass notes. */
  const lowered = (p: AttentionParams, options: LowerOptions, dtype: 'f32' | 'f64' = 'f32') => {
    const g = new Graph('site');
    const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType(dtype, ['batch', 'seq', 16]))));
    const y = new Value('y', tensorType(dtype));
    g.addNode(attentionNode(p, { q: q!, k: k!, v: v! }, { y }, 'attn'));
    g.outputs.push(y);
    const result = runPipeline(g, [lowerAttentionPass(options)]);
    return { ops: ops(g), notes: result.notes.map((n) => n.message) };
  };

  it('is off by default: standard ops only (MatMul, Softmax), no Attention', () => {
    const { ops: o, notes } = lowered(params, { opset: 23 });
    expect(o).not.toContain('Attention');
    expect(o).toContain('Softmax');
    expect(notes).toEqual(['lowered to opset 23 ONNX ops']);
  });

  it('taken: one Attention, no Softmax, and the note says so', () => {
    const { ops: o, notes } = lowered(params, NATIVE);
    expect(o.filter((op) => op === 'Attention')).toHaveLength(1);
    expect(o).not.toContain('Softmax');
    expect(notes).toEqual(['lowered to opset 23 ONNX ops (banded, onnxruntime form: one Attention per batch of blocks)']);
  });

  it('opset below 23: banded.ts, and the note says why', () => {
    const { ops: o, notes } = lowered(params, { opset: 21, native: 'onnxruntime' });
    expect(o).not.toContain('Attention');
    expect(o).toContain('Softmax');
    expect(notes).toEqual(['lowered to opset 21 ONNX ops (onnxruntime form not used: opset 21 < 23 has no Attention op)']);
  });

  it('f64: banded.ts, and the note says why', () => {
    const { ops: o, notes } = lowered(params, NATIVE, 'f64');
    expect(o).not.toContain('Attention');
    expect(o).toContain('Softmax');
    expect(notes[0]).toMatch(/onnxruntime form not used: dtype f64/);
  });

  it('a dense plan stays dense, and the note says the site is not banded', () => {
    const { ops: o, notes } = lowered({ ...params, spec: causal() }, NATIVE);
    expect(o).not.toContain('Attention');
    expect(notes[0]).toMatch(/onnxruntime form not used: not banded/);
  });
});
