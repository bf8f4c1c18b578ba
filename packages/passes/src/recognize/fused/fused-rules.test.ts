// Each fused rule on small text graphs whose intermediate values carry no types (as the ONNX importer leaves
// them): the parameters it recovers, the graph verifying after lifting, and cases where it must not fire.

import { assertValid, attentionParams, type Graph, isAttention, parseGraph, printSpec } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { describe, expect, test } from 'vitest';
import { inferDtype, inferRank, inferShape } from '../../shape-inference/shapes.js';
import { FUSED_RULES } from './index.js';

const lift = (text: string) => {
  const g = parseGraph(text);
  const r = rewritePass('recognize-fused', FUSED_RULES).run(g);
  assertValid(g);
  const att = g.nodes.filter(isAttention);
  return { g, r, att, params: att[0] ? attentionParams(att[0]) : undefined, why: r.notes.map((n) => n.message).join('; ') };
};

const fusedLeft = (g: Graph) => g.nodes.filter((n) => n.domain === 'com.microsoft' || n.op === 'Attention').filter((n) => !isAttention(n));

describe('com.microsoft::Attention', () => {
  const graph = (attrs: string, w = 'f32[16, 48]', mask = 'i64[2, 5]') => `graph g {
  input %x: f32[2, 5, 16]
  input %mask: ${mask}
  input %w: ${w}
  init %b: f32[48] = tensor<f32[48]> [${Array(48).fill('0.5').join(', ')}]
  init %gamma: f32[16] = tensor<f32[16]> [${Array(16).fill('1.0').join(', ')}]
  init %beta: f32[16] = tensor<f32[16]> [${Array(16).fill('0.0').join(', ')}]
  %xn = LayerNormalization(%x, %gamma, %beta)
  %m32 = Cast(%mask) {to = 6}
  %y = com.microsoft::Attention(%xn, %w, %b, %m32) {${attrs}}
  output %y
}`;

  test('X W + b split into heads, an untyped LayerNormalization input and a Cast mask (rank inferred)', () => {
    const { att, params } = lift(graph('num_heads = 2, unidirectional = 1'));
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 2, kvNumHeads: 2, headDim: 8, vHeadDim: 8, layout: 'bsd' });
    expect(params!.scale).toBeCloseTo(1 / Math.sqrt(8), 7);
    expect(printSpec(params!.spec)).toContain('causal');
  });

  test('a symbolic weight width without qkv_hidden_sizes: headDim 0 (read at run time) in bhsd, Q scaled at run time', () => {
    const { g, att, params } = lift(graph('num_heads = 2', 'f32[16, len]'));
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 2, kvNumHeads: 2, headDim: 0, vHeadDim: 0, scale: 1, layout: 'bhsd' });
    // Q = (its bhsd part) * Reciprocal(Sqrt(Cast(width / (3 num_heads)))); the output back to [B, S, width / 3]
    const q = att[0]!.inputs[0]!.producer!;
    expect(q.op).toBe('Mul');
    expect(q.inputs[1]!.producer!.op).toBe('Reciprocal');
    expect(g.outputs[0]!.producer!.op).toBe('Reshape');
    expect(fusedLeft(g)).toEqual([]);
  });

  test('a symbolic weight width with a scale attribute: the Attention takes that scale, Q is not rescaled', () => {
    const { att, params } = lift(graph('num_heads = 2, scale = 0.25', 'f32[16, len]'));
    expect(params).toMatchObject({ headDim: 0, vHeadDim: 0, scale: 0.25, layout: 'bhsd' });
    expect(att[0]!.inputs[0]!.producer!.op).toBe('Transpose');
  });

  test('a symbolic weight width with qkv_hidden_sizes: the head sizes come from the attribute', () => {
    const { att, params } = lift(graph('num_heads = 2, qkv_hidden_sizes = [16, 16, 16]', 'f32[16, len]'));
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 2, headDim: 8, vHeadDim: 8 });
  });

  test('hidden sizes that num_heads does not divide: onnxruntime rejects the node, an invalid model', () => {
    const { att, why } = lift(graph('num_heads = 3'));
    expect(att).toHaveLength(0);
    expect(why).toContain('hidden sizes 16, 16, 16 are not multiples of num_heads 3');
    expect(why).toContain('not valid ONNX');
  });

  test('does not fire with rotary embedding inside', () => {
    const { att, why } = lift(graph('num_heads = 2, do_rotary = 1'));
    expect(att).toHaveLength(0);
    expect(why).toContain('rotary');
  });
});

describe('com.microsoft::MultiHeadAttention', () => {
  const graph = (extra = '', op = 'com.microsoft::MultiHeadAttention') => `graph g {
  input %x: f32[2, 5, 16]
  input %enc: f32[2, 9, 16]
  input %wq: f32[16, 16]
  input %wk: f32[16, 16]
  input %wv: f32[16, 24]
  input %bias: f32[56]
  input %kpm: i32[2, 9]
  %q = MatMul(%x, %wq)
  %k = MatMul(%enc, %wk)
  %v = MatMul(%enc, %wv)
  %y = ${op}(%q, %k, %v, %bias, %kpm${extra}) {num_heads = 4}
  output %y
}`;

  test('shapes inferred through MatMul; bias and key_padding_mask become prelude nodes', () => {
    const { att, params, g } = lift(graph());
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 4, headDim: 4, vHeadDim: 6, layout: 'bsd' });
    expect(fusedLeft(g)).toHaveLength(0);
  });

  test('does not fire with beam-search cache indirection', () => {
    const { att, why } = lift(graph(', _, _, _, %kpm, %kpm'));
    expect(att).toHaveLength(0);
    expect(why).toContain('cache_indirection');
  });

  test('does not fire on a default-domain MultiHeadAttention (ONNX defines none)', () => {
    const { att } = lift(graph('', 'MultiHeadAttention'));
    expect(att).toHaveLength(0);
  });
});

describe('com.microsoft::DecoderMaskedMultiHeadAttention', () => {
  const self = (attrs: string) => `graph g {
  input %q: f32[BB, 1, 16]
  input %k: f32[BB, 1, 16]
  input %v: f32[BB, 1, 16]
  input %b: f32[48]
  input %pk: f32[BB, 2, M, 8]
  input %pv: f32[BB, 2, M, 8]
  input %p: i32[1]
  input %w: i32[1]
  input %ci: i32[batch, beams, M]
  %y, %presentK, %presentV = com.microsoft::DecoderMaskedMultiHeadAttention(%q, %k, %v, _, _, %pk, %pv, %p, %w, %ci, %b) {${attrs}}
  output %y, %presentK, %presentV
}`;

  test('self attention over a beam-search cache: one Attention over the buffer with kvLength', () => {
    const { att, params, g } = lift(self('num_heads = 2, past_present_share_buffer = 1'));
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 2, headDim: 8, vHeadDim: 8, layout: 'bsd' });
    expect(att[0]!.inputs[6]).toBeDefined(); // kvLength = P + 1
    expect(g.nodes.some((n) => n.op === 'GatherElements')).toBe(true);
    expect(fusedLeft(g)).toHaveLength(0);
  });

  test('does not fire on a past that does not share the present buffer (onnxruntime requires it)', () => {
    const { att, why } = lift(self('num_heads = 2'));
    expect(att).toHaveLength(0);
    expect(why).toContain('past_present_share_buffer');
  });

  test('declared present outputs without a past: neither cross nor self attention, no match', () => {
    const { att, why } = lift(`graph g {
  input %q: f32[B, 1, 16]
  input %k: f32[B, 2, 7, 8]
  input %v: f32[B, 2, 7, 8]
  %y, %pk, %pv = com.microsoft::DecoderMaskedMultiHeadAttention(%q, %k, %v) {num_heads = 2}
  output %y, %pk, %pv
}`);
    expect(att).toHaveLength(0);
    expect(why).toContain('self attention needs past_key and past_value');
  });
});

describe('com.microsoft::GroupQueryAttention', () => {
  const graph = (attrs: string) => `graph g {
  input %x: f16[1, 5, 64]
  input %wq: f16[64, 64]
  input %wk: f16[64, 32]
  input %wv: f16[64, 32]
  input %pk: f16[1, 2, P, 16]
  input %pv: f16[1, 2, P, 16]
  input %seqlens: i32[1]
  input %total: i32[]
  %q = MatMul(%x, %wq)
  %k = MatMul(%x, %wk)
  %v = MatMul(%x, %wv)
  %y, %presentK, %presentV = com.microsoft::GroupQueryAttention(%q, %k, %v, %pk, %pv, %seqlens, %total) {${attrs}}
  output %y, %presentK, %presentV
}`;

  test('grouped heads with a cache: each row\'s cache shifted to the buffer\'s end (a boolean key bias masks the slots before it), causal after the past', () => {
    const { att, params } = lift(graph('num_heads = 4, kv_num_heads = 2, local_window_size = 3'));
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 4, kvNumHeads: 2, headDim: 16, vHeadDim: 16, layout: 'bsd' });
    // the keep-mask bias in front of each row's cache, the shifted cache as past keys, no kvLength
    expect(att[0]!.inputs[3]).toBeDefined();
    expect(att[0]!.inputs[4]!.producer!.op).toBe('GatherElements');
    expect(att[0]!.inputs[6]).toBeUndefined();
    // local_window_size 3 keeps 3 keys: the query's own and the 2 before it
    expect(printSpec(params!.spec)).toContain('window(left=2');
  });

  test('does not fire with rotary embedding inside', () => {
    const { att, why } = lift(graph('num_heads = 4, kv_num_heads = 2, do_rotary = 1'));
    expect(att).toHaveLength(0);
    expect(why).toContain('rotary');
  });
});

describe('ONNX Attention', () => {
  test('3D inputs: heads from q_num_heads / kv_num_heads, hidden sizes inferred', () => {
    const { att, params } = lift(`graph g {
  input %x: f32[2, 5, 32]
  input %wq: f32[32, 32]
  input %wkv: f32[32, 16]
  %q = MatMul(%x, %wq)
  %k = MatMul(%x, %wkv)
  %v = MatMul(%x, %wkv)
  %y = Attention(%q, %k, %v) {q_num_heads = 4, kv_num_heads = 2, is_causal = 1}
  output %y
}`);
    expect(att).toHaveLength(1);
    expect(params).toMatchObject({ numHeads: 4, kvNumHeads: 2, headDim: 8, vHeadDim: 8, layout: 'bsd' });
  });

  test('does not fire when Q comes from an op whose shape cannot be known', () => {
    const { att, why } = lift(`graph g {
  input %x: f32[2, 5, 32]
  %q = custom::Mystery(%x)
  %y = Attention(%q, %x, %x) {q_num_heads = 4, kv_num_heads = 4}
  output %y
}`);
    expect(att).toHaveLength(0);
    expect(why).toContain('no known shape');
  });
});

describe('static shape inference', () => {
  const g = parseGraph(`graph g {
  input %x: f32[B, 5, 16]
  input %ids: i64[B, 5]
  init %shape: i64[4] = tensor<i64[4]> [0, 0, 2, 8]
  init %axes: i64[1] = tensor<i64[1]> [1]
  %r = Reshape(%x, %shape)
  %t = Transpose(%r) {perm = [0, 2, 1, 3]}
  %u = Unsqueeze(%x, %axes)
  %s = ReduceSum(%ids) {axes = [1], keepdims = 0}
  %c = Cast(%s) {to = 6}
  output %t, %u, %c
}`);
  const value = (name: string) => [...g.definedValues()].find((v) => v.name === name);

  test('Reshape (0 copies a dim), Transpose, Unsqueeze, ReduceSum without kept dims, Cast', () => {
    expect(inferShape(value('r'))).toEqual(['B', 5, 2, 8]);
    expect(inferShape(value('t'))).toEqual(['B', 2, 5, 8]);
    expect(inferShape(value('u'))).toEqual(['B', 1, 5, 16]);
    expect(inferRank(value('s'))).toBe(1);
    expect(inferDtype(value('c'))).toBe('i32');
  });
});
