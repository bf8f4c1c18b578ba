// proveMaskSpec on hand-built mask expressions: each construction proven for every length, and the cases
// that must not be proven (a random buffer is not causal; a band with another offset is not that window).

import { Graph, printSpec, Tensor, tensorType, type Value, Value as V } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { proveMaskSpec } from '../src/mask-analysis/index.js';
import { symVar } from '../src/mask-analysis/symbolic.js';

function builder() {
  const g = new Graph();
  let k = 0;
  const op = (o: string, inputs: (Value | undefined)[], attrs: Record<string, import('@attnopt/ir').Attr> = {}): Value => {
    const out = new V(`v${k++}`);
    g.add({ op: o, inputs, outputs: [out], attrs });
    return out;
  };
  const c = (dtype: 'i64' | 'f32' | 'bool', shape: number[], xs: number[]): Value =>
    g.addInitializer(new V(`c${k++}`, tensorType(dtype, shape), Tensor.fromValues(dtype, shape, xs)));
  const x = g.addInput(new V('x', tensorType('f32', ['batch', 'seq', 64])));
  const seqLen = () => op('Gather', [op('Shape', [x]), c('i64', [], [1])], {});
  const idx = () => op('Range', [c('i64', [], [0]), seqLen(), c('i64', [], [1])]);
  const rows = () => op('Unsqueeze', [idx(), c('i64', [1], [1])]); // i: [S, 1]
  const cols = () => op('Unsqueeze', [idx(), c('i64', [1], [0])]); // j: [1, S]
  return { g, op, c, x, seqLen, rows, cols };
}
const dims = { nq: symVar('seq'), nk: symVar('seq') };

describe('proveMaskSpec', () => {
  it('Range/Less/And band of width 16 over a symbolic length -> window(left=15, right=0)', () => {
    const b = builder();
    const i = b.rows();
    const j = b.cols();
    // keep j <= i and j > i - 16
    const keep = b.op('And', [b.op('LessOrEqual', [j, i]), b.op('Greater', [j, b.op('Sub', [i, b.c('i64', [], [16])])])]);
    const bias = b.op('Where', [keep, b.c('f32', [], [0]), b.c('f32', [], [-Infinity])]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('window(left=15, right=0)');
    expect(p.exact).toBe(true);
  });

  it('a band with another offset is not that window', () => {
    const b = builder();
    const i = b.rows();
    const j = b.cols();
    const keep = b.op('And', [b.op('LessOrEqual', [j, b.op('Add', [i, b.c('i64', [], [1])])]), b.op('Greater', [j, b.op('Sub', [i, b.c('i64', [], [16])])])]);
    const p = proveMaskSpec(b.op('Where', [keep, b.c('f32', [], [0]), b.c('f32', [], [-1e9])]), dims);
    expect(p.spec && printSpec(p.spec)).toBe('window(left=15, right=1)');
    expect(p.spec && printSpec(p.spec)).not.toBe('window(left=15, right=0)');
  });

  it('Where(Less(i, j), -inf, 0) -> causal', () => {
    const b = builder();
    const p = proveMaskSpec(b.op('Where', [b.op('Less', [b.rows(), b.cols()]), b.c('f32', [1], [-Infinity]), b.c('f32', [1], [0])]), dims);
    expect(p.spec && printSpec(p.spec)).toBe('causal');
  });

  it('indices reshaped to [1, 1, S, 1] and [1, 1, 1, S] (arange(S).view(1, 1, -1, 1), as a FlexAttention score_mod writes them) -> causal', () => {
    const b = builder();
    const view = (shape: number[]) => b.op('Reshape', [b.op('Range', [b.c('i64', [], [0]), b.seqLen(), b.c('i64', [], [1])]), b.c('i64', [shape.length], shape)]);
    const keep = b.op('GreaterOrEqual', [view([1, 1, -1, 1]), view([1, 1, 1, -1])]);
    const p = proveMaskSpec(b.op('Where', [keep, b.c('f32', [], [0]), b.c('f32', [], [-Infinity])]), dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.exact).toBe(true);
  });

  it('indices reshaped onto the heads axis ([1, S, 1, 1]) are not the query index: not causal', () => {
    const b = builder();
    const view = (shape: number[]) => b.op('Reshape', [b.op('Range', [b.c('i64', [], [0]), b.seqLen(), b.c('i64', [], [1])]), b.c('i64', [shape.length], shape)]);
    const keep = b.op('GreaterOrEqual', [view([1, -1, 1, 1]), view([1, 1, 1, -1])]);
    const p = proveMaskSpec(b.op('Where', [keep, b.c('f32', [], [0]), b.c('f32', [], [-Infinity])]), dims);
    expect(p.spec && printSpec(p.spec)).not.toBe('causal');
  });

  const N = 32;
  const tril = Array.from({ length: N * N }, (_, e) => (e % N <= Math.floor(e / N) ? 1 : 0));
  it('a tril buffer sliced to [:S, :S] is causal for every S <= N, with the bound as a precondition', () => {
    const b = builder();
    const buf = b.c('bool', [1, 1, N, N], tril);
    const s = b.op('Unsqueeze', [b.seqLen(), b.c('i64', [1], [0])]);
    const z = b.c('i64', [1], [0]);
    const sl = b.op('Slice', [b.op('Slice', [buf, z, s, b.c('i64', [1], [2]), b.c('i64', [1], [1])]), z, s, b.c('i64', [1], [3]), b.c('i64', [1], [1])]);
    const p = proveMaskSpec(sl, dims);
    expect(p.spec && printSpec(p.spec)).toBe('causal');
    expect(p.notes.join('\n')).toContain('seq <= 32');
  });

  it('Trilu(ConstantOfShape(-inf), 1) -> causal; a banded buffer -> window; sinks Or band -> union', () => {
    const b = builder();
    const shape = b.op('Concat', [b.op('Unsqueeze', [b.seqLen(), b.c('i64', [1], [0])]), b.op('Unsqueeze', [b.seqLen(), b.c('i64', [1], [0])])], { axis: { type: 'int', value: 0n } });
    const full = b.op('ConstantOfShape', [shape], { value: { type: 'tensor', value: Tensor.fromValues('f32', [1], [-Infinity]) } });
    const t = b.op('Trilu', [full, b.c('i64', [], [1])]);
    expect(printSpec(proveMaskSpec(t, dims).spec!)).toBe('causal');
    const band = Array.from({ length: N * N }, (_, e) => (e % N <= Math.floor(e / N) && e % N >= Math.floor(e / N) - 4 ? 0 : -10000));
    expect(printSpec(proveMaskSpec(b.c('f32', [N, N], band), dims).spec!)).toBe('window(left=4, right=0)');
    const i = b.rows();
    const j = b.cols();
    const sinkOrBand = b.op('Or', [b.op('Less', [j, b.c('i64', [], [4])]), b.op('And', [b.op('LessOrEqual', [j, i]), b.op('Greater', [j, b.op('Sub', [i, b.c('i64', [], [8])])])])]);
    expect(printSpec(proveMaskSpec(sinkOrBand, dims).spec!)).toBe('union(sinks(4), window(left=7, right=0))');
  });

  it('a random buffer is not proven causal', () => {
    const b = builder();
    let s = 7;
    const rnd = Array.from({ length: N * N }, () => ((s = (s * 1103515245 + 12345) % 2 ** 31) >> 16) & 1);
    const p = proveMaskSpec(b.c('bool', [N, N], rnd), dims);
    expect(p.spec).toBeUndefined();
    expect(p.notes.join('\n')).toContain('not proven');
  });

  it('padding from an attention_mask input stays a data-dependent bias; the causal part is proven', () => {
    const b = builder();
    const am = b.g.addInput(new V('attention_mask', tensorType('i64', ['batch', 'seq'])));
    const pad = b.op('Mul', [b.op('Sub', [b.c('f32', [], [1]), b.op('Cast', [b.op('Unsqueeze', [am, b.c('i64', [2], [1, 2])])], { to: { type: 'int', value: 1n } })]), b.c('f32', [], [-10000])]);
    const only = proveMaskSpec(pad, dims);
    expect(only.spec).toBeUndefined();
    expect(only.notes.join('\n')).toContain('data-dependent');
    const causalBias = b.op('Where', [b.op('Less', [b.rows(), b.cols()]), b.c('f32', [], [-Infinity]), b.c('f32', [], [0])]);
    const both = proveMaskSpec(b.op('Add', [pad, causalBias]), dims);
    expect(both.spec && printSpec(both.spec)).toBe('causal');
    expect(both.exact).toBe(false);
    expect(both.residual).toBe(pad);
  });
});
