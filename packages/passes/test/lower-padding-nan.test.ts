// Padding keys and values (at or past kvLength[b]: a KV cache's unwritten slots, which may hold anything) never reach
// the output of a lowered site, in any form: an original that never reads them (onnxruntime's GroupQueryAttention
// with seqlens_k) is finite there, so a rewrite must be too. Every form masks padding after reading it (the banded
// and block forms add -inf to its score: NaN + -inf = NaN; P V gives 0 · NaN = NaN, which the dense form's
// fully-masked-row pass then zeroed silently), so the lowering puts padding K and V out of reach (padding.ts:
// copies of a valid row; zeroed below opset 12) before any part reads them.
// In onnxruntime, unguarded (exact-tier) sites, n = 512, batch 2 with kvLength [400, 300], every padding coordinate
// of K (or of V) NaN: Y equals, bit for bit, Y with the inputs' own padding, and is within ATOL of the float64
// reference (which never reads padding), in the dense (at opsets 21, 13 and 11), banded (standard ops and the
// onnxruntime Attention form), block-gathered (static and top-k) and LSH (leaf and chunked) lowerings. Except one
// case: the IR defines a data-dependent selection over every key, padding included (top-k block scores, LSH chunks:
// a padding key's bucket moves the valid keys' sorted positions), so a NaN padding key changes what the top-k and
// chunked LSH forms keep, as it changes the reference's; there Y must only stay free of NaN (the attention itself
// reads padding out of reach).

import { type Align, type AttentionSpec, blockSparse, causal, dense, intersect, lshBuckets, sinks, slidingWindow, topkBlocks, union } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import type { LowerOptions } from '../src/lower/index.js';
import { buildBhsdSite, referenceBhsd, runBhsdSite, type Shape } from './helpers/bhsd-site.js';
import { clusteredInputs, localInputs, type QKV } from './helpers/guarded-inputs.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { lowerSite, runSite, type Site } from './helpers/lowered-site.js';

const N = 512;
const D = 16;
const ATOL = 1e-4;
const SHAPE: Shape = { B: 2, H: 2, Hkv: 2 };
const LENGTHS = [400, 300];

const local = (): QKV => localInputs(5, SHAPE.B, SHAPE.H, N, D);
const clustered = (): QKV => clusteredInputs(5, SHAPE.B, SHAPE.H, SHAPE.Hkv, N, D);
const banded = intersect(causal(), union(slidingWindow(63, 0), sinks(2)));
// 8 query blocks of 64, each reading its own key block, the one before it and key block 0
const blocks = blockSparse(64, 64, Array.from({ length: N / 64 }, (_, i) => [...new Set([0, Math.max(0, i - 1), i])]));

/** Name, spec, lowering options, inputs, whether the spec's selection reads padding keys. */
const FORMS: [string, AttentionSpec, Parameters<typeof buildBhsdSite>[2], () => QKV, boolean][] = [
  ['dense', dense, {}, local, false],
  ['causal ∩ (window 64 ∪ sinks 2), lowered dense', banded, { strategy: 'dense' }, local, false],
  ['causal ∩ (window 64 ∪ sinks 2), banded in standard ops', banded, { strategy: 'banded' }, local, false],
  ["causal ∩ (window 64 ∪ sinks 2), banded in onnxruntime's Attention form", banded, { strategy: 'banded', native: true }, local, false],
  ['causal ∩ (window 64 ∪ sinks 2), lowered dense at opset 13 (ReduceMax with axes as an attribute)', banded, { strategy: 'dense', opset: 13 }, local, false],
  ['causal ∩ (window 64 ∪ sinks 2), lowered dense at opset 11 (no GatherND batch_dims: padding zeroed)', banded, { strategy: 'dense', opset: 11 }, local, false],
  ['block-sparse 64 x 64, block-gathered', blocks, {}, local, false],
  ['top-2 blocks of 64 (quest), block-gathered', topkBlocks(64, 2, 'quest'), {}, local, true],
  ['LSH: 2 rounds of 8 buckets (a key bucket each: a padding key keeps only itself or not)', lshBuckets(2, 8, 5), {}, clustered, false],
  ['chunked LSH: 2 rounds of 8 buckets, chunks of 128', lshBuckets(2, 8, 5, 128), {}, clustered, true],
];

describe.each(FORMS)('%s with a lengths input, NaN in every padding key or value', (_name, spec, options, inputs, selectionReadsPadding) => {
  const p = guardedSiteParams(SHAPE.H, D, spec);
  const model = buildBhsdSite(SHAPE, p, { ...options, kvLength: true });
  it.each(['k', 'v'] as const)('NaN in padding %s: the same Y, within ATOL of the reference', async (where) => {
    const x = inputs();
    const clean = await runBhsdSite(model, SHAPE, x, N, D, LENGTHS);
    const ref = referenceBhsd(p, SHAPE, x, N, LENGTHS);
    let worst = 0;
    clean.y.forEach((y, t) => (worst = Math.max(worst, Math.abs(y - ref[t]!))));
    expect(worst, 'clean padding: |Y - reference|').toBeLessThanOrEqual(ATOL);
    for (let bh = 0; bh < SHAPE.B * SHAPE.Hkv; bh++) {
      const from = LENGTHS[Math.floor(bh / SHAPE.Hkv)]!;
      x[where].fill(Number.NaN, (bh * N + from) * D, (bh + 1) * N * D);
    }
    const { y } = await runBhsdSite(model, SHAPE, x, N, D, LENGTHS);
    const at = (t: number) => `coordinate ${t} (batch ${Math.floor(t / (SHAPE.H * N * D))}, head ${Math.floor(t / (N * D)) % SHAPE.H}, row ${Math.floor(t / D) % N})`;
    if (where === 'k' && selectionReadsPadding) {
      y.forEach((value, t) => expect(Number.isNaN(value), `${at(t)} is NaN`).toBe(false));
      return;
    }
    y.forEach((value, t) => {
      if (!Object.is(value, clean.y[t])) expect(value, `${at(t)}, the reference ${ref[t]}`).toBe(clean.y[t]);
    });
  }, 60_000);
});

// A KV cache filled short of its slots: every batch's kvLength below the key count T, so the dense, banded and static
// block forms read K and V sliced to the longest kvLength (padding.ts) while the alignments still read T (bottom-right:
// the last query sits at T - 1; past: at kvLength - 1). Decode-like shapes, past keys 61 + 3 new, kvLength
// [T - 17, T - 30], batch 2, GQA, bshd: Y within ATOL of the reference, present K/V equal to past ++ K.
describe('a cache filled short of its slots (kvLength below T in every batch)', () => {
  const window = (align: Align) => intersect(causal(align), union(slidingWindow(12, 0, align), sinks(2)));
  const CASES: [string, AttentionSpec, LowerOptions][] = [
    ['dense', dense, { opset: 21 }],
    ['causal bottom-right, lowered dense', causal('bottom-right'), { opset: 21 }],
    ['causal past, lowered dense', causal('past'), { opset: 21 }],
    ['window 13 + sinks 2, bottom-right, banded', window('bottom-right'), { opset: 21, strategy: 'banded' }],
    ['window 13 + sinks 2, past, banded', window('past'), { opset: 21, strategy: 'banded' }],
    ["window 13 + sinks 2, bottom-right, onnxruntime's Attention form", window('bottom-right'), { opset: 23, native: 'onnxruntime', strategy: 'banded' }],
    ["window 13 + sinks 2, past, onnxruntime's Attention form", window('past'), { opset: 23, native: 'onnxruntime', strategy: 'banded' }],
    ['causal bottom-right ∩ block-sparse 16 x 16, block-gathered', intersect(causal('bottom-right'), blockSparse(16, 16, [[0, 2]])), { opset: 21 }],
  ];
  it.each(CASES)('%s', async (_name, spec, options) => {
    const site: Site = {
      params: { numHeads: 4, kvNumHeads: 2, headDim: 8, vHeadDim: 8, scale: 0.35, softcap: 0, layout: 'bshd', spec },
      batch: 2,
      past: 61,
      kvLength: (keys, b) => keys - 17 - 13 * b,
    };
    const lowered = lowerSite(site, options);
    // the premise: the keys are read sliced to the longest kvLength
    expect([...lowered.graph.allNodes()].some((n) => n.outputs.some((o) => o.name.endsWith('/unpadded_longest')))).toBe(true);
    const r = await runSite(lowered, site, 3, 7, { atol: ATOL, rtol: 0 }, 1, { presentExact: true });
    expect(r.mismatches.slice(0, 3)).toEqual([]);
  }, 60_000);
});
