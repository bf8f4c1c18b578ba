// A keep-mask multiplied into the scores, w · b - 10000 · (1 - b), as GPT-2's original code (the ONNX model zoo's
// GPT-2) and Megatron write it. Where b is provably 0 or 1 on every input (here a float tril buffer sliced to the
// query rows and key columns, as `self.bias[:, :, ns - nd : ns, :ns]`), the site lifts as a masked fill, the mask
// analysis proves it causal, and the lowered graph computes what the graph as written computes in onnxruntime
// (fp32, |lowered - original| <= 1e-5, compareLowered). Where b could take another value (a float input, a
// constant holding 0.5), w · b scales the scores, which no bias expresses: no site, and the reason says so.

import { DEFAULT_OPSET_ANNOTATION, isAttention, parseGraph, printSpec } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { RECOGNITION_RULES } from '../src/recognize/index.js';
import { liftedAndExact } from './helpers/lifted-exact.js';

const N_CTX = 16;

/** A lower-triangular buffer of n_ctx × n_ctx as 0 / 1 floats (or `value` in place of the 1s). */
function trilLiteral(value = 1): string {
  const xs: number[] = [];
  for (let i = 0; i < N_CTX; i++) for (let j = 0; j < N_CTX; j++) xs.push(j <= i ? value : 0);
  return `tensor<f32[1, 1, ${N_CTX}, ${N_CTX}]> [${xs.join(', ')}]`;
}

/**
 * GPT-2's masked scores: b = bias[:, :, ns - nd : ns, :ns], w = w · b - 1e4 · (1 - b) (the penalty's operands in
 * the order `order` gives), then softmax · V. K and V are the cache and the new keys (total = past + seq).
 */
function gpt2(opts: { buffer?: string; bias?: 'input'; order?: 'c-first' | 'c-last'; add?: boolean } = {}): string {
  const b = opts.bias === 'input' ? '  input %bias: f32[1, 1, 16, 16]' : `  init %bias: f32[1, 1, ${N_CTX}, ${N_CTX}] = ${opts.buffer ?? trilLiteral()}`;
  const c = opts.add ? -10000 : 10000;
  const penalty = opts.order === 'c-first' ? '%pen = Mul(%c, %nb)' : '%pen = Mul(%nb, %c)';
  return `graph g {
  input %q: f32[2, 4, seq, 8]
  input %k: f32[2, 4, total, 8]
  input %v: f32[2, 4, total, 8]
${b}
  init %s: f32[] = tensor<f32[]> [2.8284271247461903]
  init %one: f32[] = tensor<f32[]> [1.0]
  init %c: f32[] = tensor<f32[]> [${c}]
  init %i0: i64[1] = tensor<i64[1]> [0]
  init %i2: i64[1] = tensor<i64[1]> [2]
  init %i3: i64[1] = tensor<i64[1]> [3]
  init %i4: i64[1] = tensor<i64[1]> [4]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]}
  %qk = MatMul(%q, %kt)
  %w = Div(%qk, %s)
  %sh = Shape(%w)
  %nd = Slice(%sh, %i2, %i3)
  %ns = Slice(%sh, %i3, %i4)
  %start = Sub(%ns, %nd)
  %rows = Slice(%bias, %start, %ns, %i2)
  %b = Slice(%rows, %i0, %ns, %i3)
  %wb = Mul(%w, %b)
  %nb = Sub(%one, %b)
  ${penalty}
  %x = ${opts.add ? 'Add(%pen, %wb)' : 'Sub(%wb, %pen)'}
  %p = Softmax(%x) {axis = -1}
  %y = MatMul(%p, %v)
  output %y
}`;
}

const proven = (g: Parameters<ReturnType<typeof analyzeMaskPass>['run']>[0]) => analyzeMaskPass().run(g).notes.map((n) => n.message);

function notes(text: string): string[] {
  const g = parseGraph(text);
  g.annotations.set(DEFAULT_OPSET_ANNOTATION, 17);
  const r = rewritePass('recognize', RECOGNITION_RULES, { explain: true }).run(g).notes.map((n) => n.message);
  expect(g.nodes.filter(isAttention)).toHaveLength(0);
  return r;
}

describe("GPT-2's multiplied causal mask, w · b - 1e4 · (1 - b)", () => {
  test.each([
    ['1e4 · (1 - b) subtracted', {}],
    ['(1 - b) · 1e4, the constant first', { order: 'c-first' as const }],
    ['-1e4 · (1 - b) added', { add: true }],
  ])('%s: lifted, proven causal over the cache, and exact', async (_, o) => {
    const site = await liftedAndExact(gpt2(o), { opset: 17, seed: 7, sizes: { batch: 2, seq: 5, past: 3 }, after: proven });
    expect(printSpec(site.params.spec)).toBe('causal(align=bottom-right)');
    expect(site.ops.has('Softmax')).toBe(false);
    expect(site.params.scale).toBeCloseTo(1 / 2.8284271247461903, 6);
  });
  test('without a cache (past 0): causal', async () => {
    const site = await liftedAndExact(gpt2(), { opset: 17, seed: 8, sizes: { batch: 2, seq: 6, past: 0 }, after: proven });
    expect(printSpec(site.params.spec)).toMatch(/^causal/);
  });
});

describe('a multiplied mask that is not provably 0 or 1: no site, with the reason', () => {
  test('b read from a float input (Megatron feeds it)', () => {
    expect(notes(gpt2({ bias: 'input' })).join('\n')).toMatch(/masked fill only where the mask is 0 or 1, and node Slice -> %b is not provably so/);
  });
  test('a buffer holding 0.5', () => {
    expect(notes(gpt2({ buffer: trilLiteral(0.5) })).join('\n')).toMatch(/not provably so/);
  });
});
