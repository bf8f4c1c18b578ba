// Rows a proven mask leaves with no attended key (mask-analysis/unkept-rows.ts): a decoder's mask of sinks plus a
// sliding window, filled with finfo.min where padding or the structure masks, on a left-padded batch. The first
// queries of the padded batch keep only padded keys: the model's softmax runs over its filled keys there. After
// recognize -> analyze-mask -> lower (dense and banded), every row must equal the graph as written in onnxruntime
// (fp32, |lowered - original| <= 1e-5), those rows included; and undoing the proof removes the rows' patch.

import { attentionParams, parseGraph, printSpec } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, test } from 'vitest';
import { undoMaskProofs } from '../src/mask-analysis/index.js';
import { lowerAttentionPass } from '../src/lower/index.js';
import { analyzedMasks, paddedFeeds } from './helpers/analyzed-mask.js';
import { compareLowered, runModel } from './helpers/ort.js';

const OPSET = 17;
const SEQ = 12;

/** sinks(2) ∪ window(left=3) ∩ padding, as one Where(keep, 0, fill) over [2, 1, n, n], added to the scores. */
const graph = (fill: string) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %attention_mask: i64[2, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fill: f32[] = tensor<f32[]> [${fill}]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %i0: i64[] = tensor<i64[]> [0]
  init %i1: i64[] = tensor<i64[]> [1]
  init %two: i64[] = tensor<i64[]> [2]
  init %three: i64[] = tensor<i64[]> [3]
  init %ax0: i64[1] = tensor<i64[1]> [0]
  init %ax1: i64[1] = tensor<i64[1]> [1]
  init %ax12: i64[2] = tensor<i64[2]> [1, 2]
  %qs = Shape(%q)
  %n = Gather(%qs, %two) {axis = 0}
  %r = Range(%i0, %n, %i1)
  %i = Unsqueeze(%r, %ax1)
  %j = Unsqueeze(%r, %ax0)
  %causal = LessOrEqual(%j, %i)
  %lo = Sub(%i, %three)
  %inwin = GreaterOrEqual(%j, %lo)
  %band = And(%causal, %inwin)
  %sink = Less(%j, %two)
  %keep = Or(%sink, %band)
  %m4 = Unsqueeze(%attention_mask, %ax12)
  %mb = Cast(%m4) {to = 9}
  %kept = And(%keep, %mb)
  %mask = Where(%kept, %fzero, %fill)
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %b = Add(%sc, %mask)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;

const leftPadded = (text: string, pad: number) => paddedFeeds(text, SEQ, pad, 'left');
const analyzed = (text: string) => analyzedMasks(text, OPSET); // the patch's ops need opset 11

const FINFO_MIN = '-3.4028234663852886e38';

describe('rows a proven mask leaves with no attended key', () => {
  test('the premise: sinks and window proven, the padding kept as a key bias, the rows patched', () => {
    const { notes, sites } = analyzed(graph(FINFO_MIN));
    expect(sites).toHaveLength(1);
    expect(printSpec(attentionParams(sites[0]!).spec)).toBe('union(sinks(2), window(left=3, right=0))');
    expect(notes.join('\n')).toContain('computed again densely, with the whole bias');
  });

  // pad 7: queries 2..6 of batch 1 keep only padded keys (the sinks 0, 1 and their band); queries 0, 1 too. The
  // model adds its mask: with -10000 too the rows over the whole bias are the model's (its softmax over s - 10000)
  test.each([
    ['dense', 'auto', FINFO_MIN],
    ['banded', 'banded', FINFO_MIN],
    ['dense', 'auto', '-10000.0'],
    ['banded', 'banded', '-10000.0'],
  ] as const)('lowered %s (strategy %s), mask fill %s: every row as the graph as written, on a left-padded batch', async (_, strategy, fill) => {
    const text = graph(fill);
    const feeds = leftPadded(text, 7);
    const want = await runModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET })), feeds);
    const { g } = analyzed(text);
    lowerAttentionPass({ opset: OPSET, strategy }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  // masked_fill of a value the scores still move (-10000, -1e9): the model's softmax over a row it fills whole runs
  // over the fills and what it kept, not the IR's keep-mask; with the padding filled by the same Where, or added
  // after it (old GPT-2 / GPT-Neo exports). Those rows come from the site as the model wrote it, in an If taken only
  // when an input has one (before, they were read as keeping none: 0 where the model had the mean of V).
  const filledBy = (fill: string, padding: 'same-where' | 'added-after') =>
    padding === 'same-where'
      ? graph(fill).replace('%mask = Where(%kept, %fzero, %fill)', '%keepsc = Identity(%kept)').replace('%b = Add(%sc, %mask)', '%b = Where(%keepsc, %sc, %fill)')
      : graph(fill)
          .replace('%mask = Where(%kept, %fzero, %fill)', '%padf = Where(%mb, %fzero, %fill)')
          .replace('%b = Add(%sc, %mask)', '%filled = Where(%keep, %sc, %fill)\n  %b = Add(%filled, %padf)');
  test.each([
    ['-10000.0', 'same-where', 'auto'],
    ['-10000.0', 'same-where', 'banded'],
    ['-10000.0', 'added-after', 'banded'],
    ['-1000000000.0', 'added-after', 'banded'],
  ] as const)('masked_fill of %s (%s), lowered %s: every row as the graph as written, on a left-padded batch', async (fill, padding, strategy) => {
    const text = filledBy(fill, padding);
    const { g, notes, sites } = analyzed(text);
    expect(sites).toHaveLength(1);
    expect(notes.join('\n')).toContain('the whole site is computed as the model wrote it');
    const feeds = leftPadded(text, 7);
    const want = await runModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET })), feeds);
    lowerAttentionPass({ opset: OPSET, strategy }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  test('undoing a proof whose rows are computed as written removes that patch too', () => {
    const { g, sites } = analyzed(filledBy('-10000.0', 'added-after'));
    expect(g.outputs[0]!.producer?.op).toBe('If');
    expect(undoMaskProofs(g, sites)).toEqual(sites);
    expect(g.outputs[0]!.producer).toBe(sites[0]);
    expect(g.nodes.some((n) => n.op === 'If' || n.op === 'CumSum'), g.nodes.map((n) => n.op).join(' ')).toBe(false);
  });

  test('undoing the proof removes the patch: the site reads its bias and its readers its output again', () => {
    const { g, sites } = analyzed(graph(FINFO_MIN));
    const y = g.outputs[0]!;
    expect(y.producer?.op).toBe('If');
    expect(undoMaskProofs(g, sites)).toEqual(sites);
    expect(g.outputs[0]!.producer).toBe(sites[0]);
    expect(g.outputs[0]!.name).toBe('y');
    expect(g.nodes.some((n) => n.op === 'If' || n.op === 'CumSum'), g.nodes.map((n) => n.op).join(' ')).toBe(false);
  });
});
