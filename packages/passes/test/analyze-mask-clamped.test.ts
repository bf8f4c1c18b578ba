// A mask clamped at a masking level (mask-analysis/symbolic.ts, clampedBias): a decoder adds its sliding-window mask and its
// padding mask, both filled with finfo.min, and clamps the sum (two fills add up to -inf) with
// Clip(min = finfo.min) or Max(x, finfo.min); or clamps a mask of 0 and fills from above with Min(x, 0). The clamp
// changes no entry's reading (masked stays masked, 0 stays 0), so the window is proven through it and
// the padding kept as a key bias. Each case runs the recognized, proven and lowered graph (dense and banded) in
// onnxruntime against the graph as written, on a right- and a left-padded batch (fp32, |lowered - original| <=
// 1e-5, every row: the left-padded queries that keep only padded keys are computed again from the whole,
// clamped, bias). A clamp at a level that does change readings (-100) must not be read through.

import { attentionParams, parseGraph, printSpec } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, test } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { analyzedMasks, paddedFeeds } from './helpers/analyzed-mask.js';
import { compareLowered, runModel } from './helpers/ort.js';

const OPSET = 17;
const SEQ = 12;
const FINFO_MIN = '-3.4028234663852886e38';

/** a sliding window (Where(i - 3 <= j <= i, 0, min)) + padding ((1 - m) min), clamped by `clamp` (a line defining %mask from %sum). */
const graph = (clamp: string) => `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, seq, 8]
  input %v: f32[2, 4, seq, 8]
  input %attention_mask: i64[2, seq]
  init %s: f32[] = tensor<f32[]> [0.35355339059327373]
  init %fmin: f32[] = tensor<f32[]> [${FINFO_MIN}]
  init %fzero: f32[] = tensor<f32[]> [0.0]
  init %fone: f32[] = tensor<f32[]> [1.0]
  init %level: f32[] = tensor<f32[]> [-100.0]
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
  %cmask = Where(%band, %fzero, %fmin)
  %m4 = Unsqueeze(%attention_mask, %ax12)
  %mf = Cast(%m4) {to = 1}
  %inv = Sub(%fone, %mf)
  %pmask = Mul(%inv, %fmin)
  %sum = Add(%cmask, %pmask)
  ${clamp}
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %sc = Mul(%qk, %s)
  %b = Add(%sc, %mask)
  %p = Softmax(%b) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;

const CLAMPS = {
  'Clip(min = finfo.min)': '%mask = Clip(%sum, %fmin, _)',
  'Max(x, finfo.min)': '%mask = Max(%sum, %fmin)',
  'Min(window, 0) + padding': '%cmin = Min(%cmask, %fzero)\n  %mask = Add(%cmin, %pmask)',
  // Gemma 2's layers: the clamped causal + padding mask, then the window as a Where over it
  'Where(window, Clip(causal + padding), min)': '%cc = Where(%causal, %fzero, %fmin)\n  %cp = Add(%cc, %pmask)\n  %cl = Clip(%cp, %fmin, _)\n  %mask = Where(%inwin, %cl, %fmin)',
} as const;


const padded = (text: string, pad: number, side: 'left' | 'right') => paddedFeeds(text, SEQ, pad, side);
const analyzed = (text: string) => analyzedMasks(text, OPSET);

describe('a mask clamped at a masking level', () => {
  test.each(Object.keys(CLAMPS))('%s: the window proven through the clamp, the padding a key bias', (name) => {
    const { notes, sites } = analyzed(graph(CLAMPS[name as keyof typeof CLAMPS]));
    expect(sites).toHaveLength(1);
    const p = attentionParams(sites[0]!);
    expect(printSpec(p.spec), notes.join('\n')).toBe('window(left=3, right=0)');
    expect(notes.join('\n')).toContain('data-dependent part "pmask" kept as bias: exact rewrite');
    // the left-padded queries that keep only padded keys: from the whole bias, read through the clamp as key rows
    expect(notes.join('\n')).toContain('computed again densely, with the whole bias');
  });

  test.each(
    Object.keys(CLAMPS).flatMap((c) =>
      (['dense', 'banded'] as const).flatMap((strategy) => (['left', 'right'] as const).map((side) => [c, strategy, side] as const)),
    ),
  )('%s, lowered %s, %s-padded: every row as the graph as written', async (clampName, strategy, side) => {
    const text = graph(CLAMPS[clampName as keyof typeof CLAMPS]);
    const feeds = padded(text, 5, side);
    const want = await runModel(exportOnnx(newOnnxModel(parseGraph(text), { opset: OPSET })), feeds);
    const { g } = analyzed(text);
    lowerAttentionPass({ opset: OPSET, strategy: strategy === 'dense' ? 'auto' : 'banded' }).run(g);
    const cmp = compareLowered(await runModel(exportOnnx(newOnnxModel(g, { opset: OPSET })), feeds), want);
    expect(cmp.mismatches, `max abs error ${cmp.maxAbsError}`).toEqual([]);
  });

  test('a clamp that changes readings (Max(x, -100): masked entries become -100, which the scores still move) is not read through', () => {
    const { sites, notes } = analyzed(graph('%mask = Max(%sum, %level)'));
    expect(sites).toHaveLength(1);
    expect(printSpec(attentionParams(sites[0]!).spec), notes.join('\n')).toBe('dense');
  });

  test('Clip with its bounds as attributes (opset 6 to 10) reads them: min = finfo.min through, min = -100 not', () => {
    const through = analyzed(graph(`%mask = Clip(%sum) {min = ${FINFO_MIN}}`));
    expect(printSpec(attentionParams(through.sites[0]!).spec), through.notes.join('\n')).toBe('window(left=3, right=0)');
    const level = analyzed(graph('%mask = Clip(%sum) {min = -100.0}'));
    expect(printSpec(attentionParams(level.sites[0]!).spec), level.notes.join('\n')).toBe('dense');
  });

  test('Min(x, 0) of a mask with a data-dependent part (which may be positive) is not read through', () => {
    const { sites, notes } = analyzed(graph('%mask = Min(%sum, %fzero)'));
    expect(sites).toHaveLength(1);
    expect(printSpec(attentionParams(sites[0]!).spec), notes.join('\n')).toBe('dense');
  });
});
