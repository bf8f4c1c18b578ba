// ONNX's FlexAttention with its modifier graphs written per element (the draft whose body runs score_mod
// (score, batch, head, q_idx, k_idx), mask_mod (batch, head, q_idx, k_idx) -> keep, prob_mod in a Loop over
// every element): lifted through its body with the indices as broadcast ranges. Each node (GQA, 4 query heads
// over 2 key/value heads) must lift to one attnopt::Attention, and the lifted graph, mask-analyzed and lowered to
// standard ops, must compute in onnxruntime what the definition says, element by element: the expected output is
// computed here in float64 from the formula each graph spells (|got - want| <= 1e-5 + 1e-5 |want|). A graph with
// an op that is not elementwise stays a FlexAttention node, with the reason.

import { attentionParams, isAttention, parseGraph, printSpec, SplitMix64 } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { analyzeMaskPass } from '../src/mask-analysis/index.js';
import { FUSED_RULES } from '../src/recognize/fused/index.js';
import { runModel } from './helpers/ort.js';

const [B, H, KV, L, S, D] = [2, 4, 2, 5, 6, 8];
const SCALE = 1 / Math.sqrt(D);
const SLOPES = [0.5, 0.25, 0.125, 0.0625];

interface Case {
  readonly name: string;
  /** The node's modifier attributes, in the text form. */
  readonly attrs: string;
  /** score -> score (after score_mod and mask_mod) at (b, h, i, j); -Infinity where masked. */
  readonly score: (s: number, b: number, h: number, i: number, j: number) => number;
  /** The spec the mask analysis proves. */
  readonly spec: string;
  /** Q, K and V computed by other nodes (untyped values). */
  readonly computed?: boolean;
}

const scalars = (names: string[], type = 'i64') => names.map((n) => `    input %${n}: ${type}[]`).join('\n');

/** mask_mod keeping q_idx >= k_idx (causal). */
const CAUSAL = `mask_mod = graph causal {
${scalars(['b', 'h', 'qi', 'ki'])}
    %keep = GreaterOrEqual(%qi, %ki)
    output %keep
  }`;
const causalScore: Case['score'] = (s, _b, _h, i, j) => (i >= j ? s : -Infinity);

const CASES: readonly Case[] = [
  {
    name: 'causal mask_mod (q_idx >= k_idx)',
    attrs: CAUSAL,
    score: causalScore,
    spec: 'causal',
  },
  {
    name: 'causal mask_mod over Q, K, V that other nodes compute (untyped values)',
    attrs: CAUSAL,
    score: causalScore,
    spec: 'causal',
    computed: true,
  },
  {
    name: 'sliding window of 3 keys (mask_mod with And)',
    attrs: `mask_mod = graph window {
${scalars(['b', 'h', 'qi', 'ki'])}
    init %w: i64[] = tensor<i64[]> [3]
    %past = GreaterOrEqual(%qi, %ki)
    %d = Sub(%qi, %ki)
    %near = Less(%d, %w)
    %keep = And(%past, %near)
    output %keep
  }`,
    score: (s, _b, _h, i, j) => (i >= j && i - j < 3 ? s : -Infinity),
    spec: 'window(left=2, right=0)',
  },
  {
    name: 'softcap score_mod (20 tanh(score / 20))',
    attrs: `score_mod = graph softcap {
    input %s: f32[]
${scalars(['b', 'h', 'qi', 'ki'])}
    init %cap: f32[] = tensor<f32[]> [20.0]
    %x = Div(%s, %cap)
    %t = Tanh(%x)
    %y = Mul(%t, %cap)
    output %y
  }`,
    score: (s) => 20 * Math.tanh(s / 20),
    spec: 'dense',
  },
  {
    name: 'ALiBi score_mod (score - slope[head] (q_idx - k_idx)) with a causal mask_mod',
    attrs: `score_mod = graph alibi {
    input %s: f32[]
${scalars(['b', 'h', 'qi', 'ki'])}
    init %slopes: f32[4] = tensor<f32[4]> [${SLOPES.join(', ')}]
    %slope = Gather(%slopes, %h)
    %d = Sub(%qi, %ki)
    %df = Cast(%d) {to = 1}
    %bias = Mul(%slope, %df)
    %y = Sub(%s, %bias)
    output %y
  }, ${CAUSAL}`,
    score: (s, _b, h, i, j) => (i >= j ? s - SLOPES[h]! * (i - j) : -Infinity),
    spec: 'causal',
  },
];

/** The node over the inputs as given, or over values other nodes compute (no declared type: the shape engine's). */
function nodeText(attrs: string, computed = false): string {
  const [q, k, v] = computed ? ['%q1', '%k1', '%v1'] : ['%q', '%k', '%v'];
  return `graph g {
  input %q: f32[${B}, ${H}, ${L}, ${D}]
  input %k: f32[${B}, ${KV}, ${S}, ${D}]
  input %v: f32[${B}, ${KV}, ${S}, ${D}]${computed ? '\n  %q1 = Identity(%q)\n  %k1 = Identity(%k)\n  %v1 = Identity(%v)' : ''}
  %y: f32[${B}, ${H}, ${L}, ${D}] = ai.onnx.preview::FlexAttention(${q}, ${k}, ${v}) {enable_gqa = 1, ${attrs}}
  output %y
}`;
}

/** FlexAttention by its definition, element by element, in float64. */
function expected(c: Case, q: Float32Array, k: Float32Array, v: Float32Array): Float64Array {
  const y = new Float64Array(B * H * L * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / KV));
      for (let i = 0; i < L; i++) {
        const s = Array.from({ length: S }, (_, j) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * H + h) * L + i) * D + d]! * k[((b * KV + kh) * S + j) * D + d]!;
          return c.score(SCALE * dot, b, h, i, j);
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let d = 0; d < D; d++) y[((b * H + h) * L + i) * D + d] = e.reduce((a, p, j) => a + (p / z) * v[((b * KV + kh) * S + j) * D + d]!, 0);
      }
    }
  return y;
}

function model(text: string) {
  const m = newOnnxModel(parseGraph(text), { opset: 21 });
  (m.proto.opsetImport as { domain?: string; version?: bigint }[]).push({ domain: 'ai.onnx.preview', version: 1n });
  return m;
}

describe('FlexAttention with per-element modifier graphs', () => {
  it.each(CASES)('$name', async (c) => {
    const m = model(nodeText(c.attrs, c.computed));
    const notes = rewritePass('recognize-fused', FUSED_RULES).run(m.graph).notes.map((n) => n.message);
    const sites = m.graph.nodes.filter(isAttention);
    expect(sites, notes.join('\n')).toHaveLength(1);
    expect(attentionParams(sites[0]!)).toMatchObject({ numHeads: H, kvNumHeads: KV, headDim: D });
    analyzeMaskPass().run(m.graph);
    expect(printSpec(attentionParams(m.graph.nodes.find(isAttention)!).spec)).toBe(c.spec);
    lowerAttentionPass({ opset: 21 }).run(m.graph);
    const rng = new SplitMix64(17);
    const data = (n: number) => Float32Array.from({ length: n }, () => rng.nextFloat() * 4 - 2);
    const [q, k, v] = [data(B * H * L * D), data(B * KV * S * D), data(B * KV * S * D)];
    const feeds = { q: new ort.Tensor('float32', q, [B, H, L, D]), k: new ort.Tensor('float32', k, [B, KV, S, D]), v: new ort.Tensor('float32', v, [B, KV, S, D]) };
    const got = (await runModel(exportOnnx(m), feeds)).y!.data as Float32Array;
    const want = expected(c, q, k, v);
    const bad = Array.from(want.keys()).filter((e) => !(Math.abs(got[e]! - want[e]!) <= 1e-5 + 1e-5 * Math.abs(want[e]!)));
    expect(bad.length, `first at ${bad[0]}: got ${got[bad[0]!]}, want ${want[bad[0]!]}`).toBe(0);
  });

  it('a per-element graph with an op that is not elementwise stays, with the reason', () => {
    const m = model(
      nodeText(`score_mod = graph odd {
    input %s: f32[]
${scalars(['b', 'h', 'qi', 'ki'])}
    init %shape: i64[1] = tensor<i64[1]> [1]
    %y = Reshape(%s, %shape)
    output %y
  }`),
    );
    const notes = rewritePass('recognize-fused', FUSED_RULES).run(m.graph).notes.map((n) => n.message);
    expect(m.graph.nodes.some(isAttention)).toBe(false);
    expect(notes.join('\n')).toMatch(/score_mod is written per element and holds node Reshape .* neither elementwise nor a lookup in a 1-D table/);
  });
});
