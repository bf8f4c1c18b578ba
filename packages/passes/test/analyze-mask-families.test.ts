// proveMaskSpec on the mask families exporters write beyond Range/Less/Where: Min / Max / Clip / Abs of index
// fields (T5's min(j - i, 0), a clamped distance, |i - j|), Tile of an index row, a padding mask compared to 0
// after it was added to the causal mask (transformers' cache_position masks), ALiBi or a position bias added to
// or selected beside the causal mask (BLOOM). Each proof is checked independently: the mask graph is run in
// onnxruntime at two lengths and every entry the original keeps (value > -1e4) must be exactly an entry the
// proven spec keeps and the residual keeps, with the same value. Each family has a case that must not be proven
// as more than it is (an off-by-one distance, a bound on the query index, a tiled key row).

import { type Attr, Graph, keeps, type MaskSpec, printSpec, Tensor, tensorType, type Value, Value as V } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { type MaskProof, proveMaskSpec } from '../src/mask-analysis/index.js';
import { implies, keyRowsResidual } from '../src/mask-analysis/key-rows.js';
import { type Formula, symConst, symVar } from '../src/mask-analysis/symbolic.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const BATCH = 2;
const f32 = { type: 'int', value: 1n } as const;

function builder() {
  const g = new Graph();
  let k = 0;
  const op = (o: string, inputs: (Value | undefined)[], attrs: Record<string, Attr> = {}): Value => {
    const out = new V(`v${k++}`);
    g.add({ op: o, inputs, outputs: [out], attrs });
    return out;
  };
  const c = (dtype: 'i64' | 'f32', shape: number[], xs: number[]): Value =>
    g.addInitializer(new V(`c${k++}`, tensorType(dtype, shape), Tensor.fromValues(dtype, shape, xs)));
  const x = g.addInput(new V('x', tensorType('f32', ['batch', 'seq', 4])));
  const seqLen = op('Gather', [op('Shape', [x]), c('i64', [], [1])]);
  const idx = op('Range', [c('i64', [], [0]), seqLen, c('i64', [], [1])]);
  const i = op('Unsqueeze', [idx, c('i64', [1], [1])]); // [S, 1]
  const j = op('Unsqueeze', [idx, c('i64', [1], [0])]); // [1, S]
  const i64 = (x: number) => c('i64', [], [x]);
  const where = (keep: Value, kept: Value | number, masked: number) =>
    op('Where', [keep, typeof kept === 'number' ? c('f32', [], [kept]) : kept, c('f32', [], [masked])]);
  const causalBias = () => op('Where', [op('Less', [i, j]), c('f32', [], [-3.4028234663852886e38]), c('f32', [], [0])]);
  const attentionMask = () => g.addInput(new V('attention_mask', tensorType('i64', ['batch', 'seq'])));
  return { g, op, c, i, j, i64, where, causalBias, attentionMask };
}
const dims = { nq: symVar('seq'), nk: symVar('seq') };

/** The entry (b, r, col) of a tensor broadcast to [batch, ..., S, S]. */
function at(t: { dims: readonly number[]; data: Float64Array }, b: number, r: number, col: number): number {
  const d = t.dims;
  const n = d.length;
  let index = 0;
  let stride = 1;
  for (let ax = n - 1; ax >= 0; ax--) {
    const pos = ax === n - 1 ? col : ax === n - 2 ? r : ax === 0 ? b : 0;
    index += (d[ax] === 1 ? 0 : pos) * stride;
    stride *= d[ax]!;
  }
  return t.data[index]!;
}

/**
 * Runs the mask graph in onnxruntime and checks the proof entry by entry: kept(original) == keeps(spec) ∧
 * kept(residual), and every kept entry has the residual's value (0 without a residual).
 */
async function checkInOrt(g: Graph, bias: Value, proof: MaskProof, residualDtype: 'f32' | 'bool' = 'f32'): Promise<void> {
  bias.type = tensorType('f32');
  g.outputs.push(bias);
  if (proof.residual && proof.residual !== bias) {
    proof.residual.type = tensorType(residualDtype);
    g.outputs.push(proof.residual);
  }
  const bytes = exportOnnx(newOnnxModel(g));
  for (const seq of [6, 11]) {
    const feeds = {
      x: ortTensor('f32', [BATCH, seq, 4], new Float32Array(BATCH * seq * 4)),
      ...(g.inputs.some((v) => v.name === 'attention_mask')
        ? { attention_mask: ortTensor('i64', [BATCH, seq], Array.from({ length: BATCH * seq }, (_, e) => Number(!(e >= seq && e % seq >= seq - 2)))) }
        : {}),
      ...(g.inputs.some((v) => v.name === 'alibi') ? { alibi: ortTensor('f32', [BATCH, 1, 1, seq], Array.from({ length: BATCH * seq }, (_, e) => 0.25 * (e % seq))) } : {}),
    };
    const outs = await runModel(bytes, feeds);
    const read = (v: Value) => ({ dims: outs[v.name]!.dims, data: ortValues(outs[v.name]!) });
    const original = read(bias);
    const residual = proof.residual && read(proof.residual);
    for (let b = 0; b < BATCH; b++) {
      for (let r = 0; r < seq; r++) {
        for (let col = 0; col < seq; col++) {
          const o = at(original, b, r, col);
          const res = residual && at(residual, b, r, col);
          const residualKeeps = res === undefined ? true : residualDtype === 'bool' ? res !== 0 : res > -1e4;
          const where = `seq ${seq} batch ${b} (${r}, ${col})`;
          expect(o > -1e4, where).toBe(keeps(proof.spec as MaskSpec, r, col, { nq: seq, nk: seq }) && residualKeeps);
          if (o > -1e4) expect(o, where).toBe(res === undefined || residualDtype === 'bool' ? 0 : res);
        }
      }
    }
  }
}

describe('Min / Max / Clip / Abs of index fields', () => {
  it('|i - j| <= 3 (Abs) -> window(left=3, right=3); |i - j| < 3 is one narrower', async () => {
    const b = builder();
    const bias = b.where(b.op('LessOrEqual', [b.op('Abs', [b.op('Sub', [b.i, b.j])]), b.i64(3)]), 0, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('window(left=3, right=3)');
    expect(p.exact).toBe(true);
    await checkInOrt(b.g, bias, p);
    const c = builder();
    const narrower = proveMaskSpec(c.where(c.op('Less', [c.op('Abs', [c.op('Sub', [c.i, c.j])]), c.i64(3)]), 0, -Infinity), dims);
    expect(narrower.spec && printSpec(narrower.spec)).toBe('window(left=2, right=2)');
  });

  it('Max(i - j, j - i) <= 3 is the same band as |i - j| <= 3', () => {
    const b = builder();
    const distance = b.op('Max', [b.op('Sub', [b.i, b.j]), b.op('Sub', [b.j, b.i])]);
    const p = proveMaskSpec(b.where(b.op('LessOrEqual', [distance, b.i64(3)]), 0, -Infinity), dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('window(left=3, right=3)');
  });

  it("T5's distance -min(j - i, 0) < 4 with j <= i -> window(left=3, right=0); <= 4 is one wider", async () => {
    for (const [cmp, spec] of [['Less', 'window(left=3, right=0)'], ['LessOrEqual', 'window(left=4, right=0)']] as const) {
      const b = builder();
      const distance = b.op('Neg', [b.op('Min', [b.op('Sub', [b.j, b.i]), b.i64(0)])]);
      const keep = b.op('And', [b.op('LessOrEqual', [b.j, b.i]), b.op(cmp, [distance, b.i64(4)])]);
      const bias = b.where(keep, 0, -1e9);
      const p = proveMaskSpec(bias, dims);
      expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe(spec);
      await checkInOrt(b.g, bias, p);
    }
  });

  it('Clip(i - j, 0, 1000) <= 3 with j <= i -> window(left=3, right=0)', async () => {
    const b = builder();
    const clipped = b.op('Clip', [b.op('Sub', [b.i, b.j]), b.i64(0), b.i64(1000)]);
    const bias = b.where(b.op('And', [b.op('LessOrEqual', [b.j, b.i]), b.op('LessOrEqual', [clipped, b.i64(3)])]), 0, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('window(left=3, right=0)');
    await checkInOrt(b.g, bias, p);
  });

  it('does not prove a bound on the query index: min(i, j) < 4 keeps whole rows', () => {
    const b = builder();
    const p = proveMaskSpec(b.where(b.op('Less', [b.op('Min', [b.i, b.j]), b.i64(4)]), 0, -Infinity), dims);
    expect(p.spec, p.notes.join('\n')).toBeUndefined();
  });
});

describe('cache_position comparisons with a past length', () => {
  // transformers >= 4.42: cache_position = arange(past, past + S); keys arange(0, past + S); masked where
  // key > cache_position[:, None] (a past_key input [B, H, past, D] gives the past length)
  function cacheMask(offset: number, cmp: 'Greater' | 'GreaterOrEqual') {
    const b = builder();
    const pastKey = b.g.addInput(new V('past_key', tensorType('f32', ['batch', 2, 'past', 4])));
    const past = b.op('Gather', [b.op('Shape', [pastKey]), b.i64(2)]);
    const seq = b.op('Gather', [b.op('Shape', [b.g.inputs[0]!]), b.i64(1)]);
    const total = b.op('Add', [past, seq]);
    const cachePosition = b.op('Range', [past, total, b.i64(1)]);
    const keys = b.op('Range', [b.i64(0), total, b.i64(1)]);
    const rows = b.op('Add', [b.op('Unsqueeze', [cachePosition, b.c('i64', [1], [1])]), b.i64(offset)]);
    const masked = b.op(cmp, [b.op('Unsqueeze', [keys, b.c('i64', [1], [0])]), rows]);
    return proveMaskSpec(b.where(masked, -Infinity, 0), { nq: symVar('seq'), nk: { c: 0, t: { past: 1, seq: 1 } }, past: symVar('past') });
  }

  it('key > cache_position -> causal aligned at the past length', () => {
    const p = cacheMask(0, 'Greater');
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal(align=bottom-right)');
    expect(p.exact).toBe(true);
  });

  it('key >= cache_position (one key fewer) and key > cache_position + 1 (one more) are not that causal mask', () => {
    const fewer = cacheMask(0, 'GreaterOrEqual');
    expect(fewer.spec && printSpec(fewer.spec), fewer.notes.join('\n')).toBe('diff(causal(align=bottom-right), window(left=0, right=0, align=bottom-right))');
    const more = cacheMask(1, 'Greater');
    expect(more.spec && printSpec(more.spec), more.notes.join('\n')).toBe('union(causal(align=bottom-right), window(left=0, right=1, align=bottom-right))');
  });
});

describe('Tile of an index row', () => {
  it('Tile(j, [S, 1]) along the query axis is still j: causal', async () => {
    const b = builder();
    const seq = b.op('Unsqueeze', [b.op('Gather', [b.op('Shape', [b.g.inputs[0]!]), b.i64(1)]), b.c('i64', [1], [0])]);
    const tiled = b.op('Tile', [b.j, b.op('Concat', [seq, b.c('i64', [1], [1])], { axis: { type: 'int', value: 0n } })]);
    const bias = b.where(b.op('LessOrEqual', [tiled, b.i]), 0, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    await checkInOrt(b.g, bias, p);
  });

  it('does not read Tile along the key axis as j (the tiled row is j mod S)', () => {
    const b = builder();
    const tiled = b.op('Tile', [b.j, b.c('i64', [2], [1, 2])]);
    const p = proveMaskSpec(b.where(b.op('LessOrEqual', [tiled, b.i]), 0, -Infinity), dims);
    expect(p.spec, p.notes.join('\n')).toBeUndefined();
  });
});

describe('data-dependent parts beside a structural mask', () => {
  it('padding compared to 0 after it was added to the causal mask: causal proven, the padding Where kept', async () => {
    // transformers: padding = (causal + attention_mask[:, None, None, :]) == 0; causal.masked_fill(padding, min)
    const b = builder();
    const causal = b.causalBias();
    const am = b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: f32 });
    const padding = b.op('Equal', [b.op('Add', [causal, am]), b.c('f32', [], [0])]);
    const bias = b.op('Where', [padding, b.c('f32', [], [-3.4028234663852886e38]), causal]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.exact).toBe(false);
    expect(p.residual).toBe(bias);
    await checkInOrt(b.g, bias, p);
  });

  it('keeps the whole bias, not a data-dependent part alone, through a Transpose of the leading axes', () => {
    // causal [1, 1, S, S] + padding [B, 1, 1, S] -> [B, 1, S, S], transposed to [1, B, S, S]: the padding value
    // as it was no longer lines up with the bias, so the whole transposed bias stays beside the proven causal spec
    // (it masks at least what the spec does: spec and residual together are the bias)
    const b = builder();
    const pad = b.op('Mul', [b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: f32 }), b.c('f32', [], [-10000])]);
    const causal4 = b.op('Unsqueeze', [b.causalBias(), b.c('i64', [2], [0, 1])]);
    const swapped = b.op('Transpose', [b.op('Add', [causal4, pad])], { perm: { type: 'ints', value: [1n, 0n, 2n, 3n] } });
    const p = proveMaskSpec(swapped, dims);
    expect(p.residual, p.notes.join('\n')).toBe(swapped);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.exact).toBe(false);
    expect(p.notes.join('\n')).toMatch(/moved to other axes on its way to the bias/);
  });

  it('a keep-mask computed from data alone proves nothing structural', () => {
    const b = builder();
    const am = b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: f32 });
    const keep = b.op('Equal', [b.op('Add', [b.causalBias(), am]), b.c('f32', [], [1])]);
    const p = proveMaskSpec(b.where(keep, 0, -Infinity), dims);
    expect(p.spec, p.notes.join('\n')).toBeUndefined();
  });

  it('BLOOM: Where(causal ∧ padding, alibi, -inf) -> causal, the whole Where kept as the bias', async () => {
    const b = builder();
    const triu = b.op('Less', [b.i, b.j]);
    const notPadding = b.op('Not', [b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: { type: 'int', value: 9n } })]);
    const keep = b.op('Not', [b.op('Or', [triu, notPadding])]);
    const alibi = b.g.addInput(new V('alibi', tensorType('f32', ['batch', 1, 1, 'seq'])));
    const bias = b.where(keep, alibi, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.residual).toBe(bias);
    await checkInOrt(b.g, bias, p);
  });

  it('a position bias computed from the indices, added to the causal mask: causal proven, the position bias kept', async () => {
    const b = builder();
    const position = b.op('Mul', [b.op('Cast', [b.op('Sub', [b.j, b.i])], { to: f32 }), b.c('f32', [], [0.25])]);
    const bias = b.op('Add', [position, b.causalBias()]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.residual).toBe(position);
    await checkInOrt(b.g, bias, p);
  });

  it('ALiBi from arange with per-head slopes (MPT, Baichuan) added to the causal mask: causal proven, ALiBi kept', async () => {
    const b = builder();
    const slopes = b.c('f32', [2, 1, 1], [0.5, 0.25]);
    const alibi = b.op('Mul', [slopes, b.op('Cast', [b.op('Sub', [b.j, b.i])], { to: f32 })]);
    const bias = b.op('Add', [b.causalBias(), alibi]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.residual).toBe(alibi);
    await checkInOrt(b.g, bias, p);
  });

  it('a position bias selected by Where(j <= i + 1, bias, -inf): one key wider than causal, never causal', async () => {
    const b = builder();
    const position = b.op('Mul', [b.op('Cast', [b.op('Sub', [b.j, b.i])], { to: f32 }), b.c('f32', [], [0.25])]);
    const bias = b.where(b.op('LessOrEqual', [b.j, b.op('Add', [b.i, b.i64(1)])]), position, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('union(causal, window(left=0, right=1))');
    expect(p.residual).toBe(position);
    await checkInOrt(b.g, bias, p);
  });
});

/**
 * The residual on the proven keys as one query row (key-rows.ts), checked in onnxruntime at two lengths: its query
 * axis has size 1, and on every pair the proven spec keeps, its value is the original bias's (the same float).
 */
async function checkKeyRows(g: Graph, bias: Value, proof: MaskProof): Promise<Value> {
  const built = keyRowsResidual(g, { residual: proof.residual!, keep: proof.keep!, readings: proof.readings! });
  expect(built, 'a key bias').toBeDefined();
  for (const n of built!.nodes) g.addNode(n);
  const rows = built!.value;
  bias.type = tensorType('f32');
  rows.type = tensorType('f32');
  g.outputs.push(bias, rows);
  const bytes = exportOnnx(newOnnxModel(g));
  for (const seq of [6, 11]) {
    const feeds = {
      x: ortTensor('f32', [BATCH, seq, 4], new Float32Array(BATCH * seq * 4)),
      attention_mask: ortTensor('i64', [BATCH, seq], Array.from({ length: BATCH * seq }, (_, e) => Number(!(e >= seq && e % seq >= seq - 2)))),
      ...(g.inputs.some((v) => v.name === 'alibi') ? { alibi: ortTensor('f32', [BATCH, 1, 1, seq], Array.from({ length: BATCH * seq }, (_, e) => 0.25 * (e % seq))) } : {}),
    };
    const outs = await runModel(bytes, feeds);
    const original = { dims: outs[bias.name]!.dims, data: ortValues(outs[bias.name]!) };
    const row = { dims: outs[rows.name]!.dims, data: ortValues(outs[rows.name]!) };
    expect(row.dims[row.dims.length - 2], 'one query row').toBe(1);
    let compared = 0;
    for (let b = 0; b < BATCH; b++) {
      for (let r = 0; r < seq; r++) {
        for (let col = 0; col < seq; col++) {
          if (!keeps(proof.spec as MaskSpec, r, col, { nq: seq, nk: seq })) continue;
          expect(at(row, b, 0, col), `seq ${seq} batch ${b} (${r}, ${col})`).toBe(at(original, b, r, col));
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(seq);
  }
  return rows;
}

describe('the residual on the proven keys, one query row (key-rows.ts)', () => {
  const expandTo = (b: ReturnType<typeof builder>, x: Value) => {
    // [B, 1, S, S], as transformers expands its masks
    const seq = b.op('Gather', [b.op('Shape', [b.g.inputs[0]!]), b.c('i64', [], [1])]);
    const batch = b.op('Gather', [b.op('Shape', [b.g.inputs[0]!]), b.c('i64', [], [0])]);
    const u = (v: Value) => b.op('Unsqueeze', [v, b.c('i64', [1], [0])]);
    return b.op('Expand', [x, b.op('Concat', [u(batch), b.c('i64', [1], [1]), u(seq), u(seq)], { axis: { type: 'int', value: 0n } })]);
  };

  it('transformers: Where(1 - expanded padding, min, expanded causal) -> causal, Where(1 - padding row, min, 0)', async () => {
    const b = builder();
    const causal4 = expandTo(b, b.op('Unsqueeze', [b.causalBias(), b.c('i64', [2], [0, 1])]));
    const pad = expandTo(b, b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: f32 }));
    const inverted = b.op('Sub', [b.c('f32', [], [1]), pad]);
    const bias = b.op('Where', [b.op('Cast', [inverted], { to: { type: 'int', value: 9n } }), b.c('f32', [], [-3.4028234663852886e38]), causal4]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.residual).toBe(bias);
    await checkKeyRows(b.g, bias, p);
  });

  it('BLOOM: Where(causal ∧ padding, alibi, -inf) -> causal, Where(padding, alibi, -inf) on one row', async () => {
    const b = builder();
    const notPadding = b.op('Not', [b.op('Cast', [b.op('Unsqueeze', [b.attentionMask(), b.c('i64', [2], [1, 2])])], { to: { type: 'int', value: 9n } })]);
    const keep = b.op('Not', [b.op('Or', [b.op('Less', [b.i, b.j]), notPadding])]);
    const alibi = b.g.addInput(new V('alibi', tensorType('f32', ['batch', 1, 1, 'seq'])));
    const bias = b.where(keep, alibi, -Infinity);
    const p = proveMaskSpec(bias, dims);
    await checkKeyRows(b.g, bias, p);
  });

  it('a bias that varies along the query axis on the kept keys stays n x n: a position bias, a data input of (i, j)', () => {
    const b = builder();
    const position = b.op('Mul', [b.op('Cast', [b.op('Sub', [b.j, b.i])], { to: f32 }), b.c('f32', [], [0.25])]);
    const p = proveMaskSpec(b.op('Add', [position, b.causalBias()]), dims);
    expect(p.residual).toBe(position);
    expect(keyRowsResidual(b.g, { residual: p.residual!, keep: p.keep!, readings: p.readings! })).toBeUndefined();
    const c = builder();
    const data = c.g.addInput(new V('scores_bias', tensorType('f32', ['batch', 1, 'seq', 'seq'])));
    const q = proveMaskSpec(c.op('Add', [c.causalBias(), data]), dims);
    expect(q.spec && printSpec(q.spec), q.notes.join('\n')).toBe('causal');
    expect(keyRowsResidual(c.g, { residual: q.residual!, keep: q.keep!, readings: q.readings! })).toBeUndefined();
  });

  it('implies: what a window keep formula decides about other band atoms, and what it cannot', () => {
    // keep: j - i <= 0 ∧ j - i >= -3 (window(left=3, right=0)) as atoms ci·i + cj·j + c >= 0
    const lin = (ci: number, cj: number, c: number): Formula => ({ op: 'lin', ci, cj, c: symConst(c) });
    const keep: Formula = { op: 'and', parts: [lin(1, -1, 0), lin(-1, 1, 3)] };
    expect(implies(keep, lin(1, -1, 1))).toBe(true); // j <= i + 1
    expect(implies(keep, lin(-1, 1, 5))).toBe(true); // j >= i - 5
    expect(implies(keep, lin(-1, 1, 1))).toBe(false); // j >= i - 1: not on every kept pair
    expect(implies(keep, lin(1, -1, -1))).toBe(false); // j <= i - 1: neither
    expect(implies(keep, { op: 'or', parts: [lin(-1, 1, 1), lin(1, -1, 0)] })).toBe(true);
    expect(implies({ op: 'const', value: true }, lin(1, -1, 0))).toBe(false);
  });
});

describe('Slice of a mask from index 0 (transformers\' attention_mask[:, :, :, : key_states.shape[-2]])', () => {
  const keyLength = (b: ReturnType<typeof builder>) => b.op('Unsqueeze', [b.op('Gather', [b.op('Shape', [b.g.inputs[0]!]), b.i64(1)]), b.c('i64', [1], [0])]);
  const prefix = (b: ReturnType<typeof builder>, x: Value, axis: number) => b.op('Slice', [x, b.c('i64', [1], [0]), keyLength(b), b.c('i64', [1], [axis]), b.c('i64', [1], [1])]);

  it('the causal mask sliced to the key length -> causal, exact', async () => {
    const b = builder();
    const bias = prefix(b, b.causalBias(), -1);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    expect(p.exact, p.notes.join('\n')).toBe(true);
    await checkInOrt(b.g, bias, p);
  });

  it('causal + a key bias [B, 1, 1, S], sliced on the key axis -> causal, the whole sliced bias kept beside it', async () => {
    const b = builder();
    const alibi = b.g.addInput(new V('alibi', tensorType('f32', ['batch', 1, 1, 'seq'])));
    const bias = prefix(b, b.op('Add', [b.causalBias(), alibi]), 3);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    // the data part's value is no longer the bias's shape after the Slice: the whole bias stays as the residual
    expect(p.residual).toBe(bias);
    await checkInOrt(b.g, bias, p);
  });

  it('a Slice that starts past 0 moves the keys: not read as the same mask', () => {
    const b = builder();
    const bias = b.op('Slice', [b.causalBias(), b.c('i64', [1], [1]), b.c('i64', [1], [1000]), b.c('i64', [1], [-1]), b.c('i64', [1], [1])]);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec === undefined || printSpec(p.spec) !== 'causal', p.notes.join('\n')).toBe(true);
  });
});

describe('Transpose of an index field', () => {
  it("ModernBERT's |rows - rows.T| <= 4 (rows = arange(n)[None, :]) -> window(left=4, right=4)", async () => {
    const b = builder();
    const rows = b.j; // arange(n) unsqueezed to [1, n]
    const rowsT = b.op('Transpose', [rows], { perm: { type: 'ints', value: [1n, 0n] } });
    const keep = b.op('LessOrEqual', [b.op('Abs', [b.op('Sub', [rows, rowsT])]), b.i64(4)]);
    const bias = b.where(keep, 0, -3.4028234663852886e38);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('window(left=4, right=4)');
    expect(p.exact).toBe(true);
    await checkInOrt(b.g, bias, p);
  });

  it('rows - rows.T <= 0 (j - i <= 0) reads the transposed row as the query index: causal, not its mirror', async () => {
    const b = builder();
    const rowsT = b.op('Transpose', [b.j], { perm: { type: 'ints', value: [1n, 0n] } });
    const bias = b.where(b.op('LessOrEqual', [b.op('Sub', [b.j, rowsT]), b.i64(0)]), 0, -Infinity);
    const p = proveMaskSpec(bias, dims);
    expect(p.spec && printSpec(p.spec), p.notes.join('\n')).toBe('causal');
    await checkInOrt(b.g, bias, p);
  });

  it('a Transpose that swaps the query and key axes of a mask is still not read (the mask would be mirrored)', () => {
    const b = builder();
    const mirrored = b.op('Transpose', [b.causalBias()], { perm: { type: 'ints', value: [1n, 0n] } });
    const p = proveMaskSpec(mirrored, dims);
    expect(p.spec === undefined || printSpec(p.spec) !== 'causal', p.notes.join('\n')).toBe(true);
  });
});
