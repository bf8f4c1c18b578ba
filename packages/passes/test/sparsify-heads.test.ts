// Per-head specs: on a generated site where some heads attend locally (within a window) and others spread over
// every key, sparsify splits the site into head groups (whole key/value heads with their query heads, GQA), each
// its own Attention with its own spec; the lowering lowers every group unchanged. In onnxruntime (fp32,
// optimizations off) the split model matches the unsplit site's float64 reference: each approximate group within
// its bound + 1e-5 (so the whole output within the sum of the groups' bounds), each exact group within
// 1e-5. The bounds hold on the calibration data (statistical tier, allowUncertified), so the model runs on the
// calibration inputs.

import { onnxruntimeCpuProfile, attnoptCpuProfile } from '@attnopt/cost';
import {
  type AttentionLayout,
  attentionNode,
  attentionParams,
  type AttentionParams,
  causal,
  gaussian,
  Graph,
  isAttention,
  printSpec,
  tensorType,
  Value,
} from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { referenceAttention } from '@attnopt/reference';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import { type CalibrationSample, HEAD_GROUP, type HeadGroupAnnotation, type SiteDecision, SPARSIFY_DECISION, sparsifyPass } from '../src/sparsify/index.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';

const N = 512;
const D = 32;
const F = D / 2;

type Kind = 'local' | 'spread';

interface Case {
  readonly name: string;
  readonly layout: AttentionLayout;
  /** Per query head. */
  readonly heads: readonly Kind[];
  readonly kvHeads: number;
  /**
   * An additive key bias [1, H, 1, N] (small noise per head and key) as a model input: the banded forms take it per
   * key (an n x n bias lowers every form dense, so the chooser rightly rewrites no head under one).
   */
  readonly bias?: boolean;
  /** The groups expected: query heads and whether each keeps the site's spec. */
  readonly groups: readonly { heads: number[]; exact: boolean }[];
}

/**
 * Per query head h (B = 1) in bhsd order: a local head's q_i and its key/value head's k_j are Fourier features
 * of the position (scores peak at i = j and decay over ~4 positions); a spread head's q is small noise, so its
 * scores are near uniform. A key/value head is positional when any of its query heads is local.
 */
function headsData(c: Case, seed: number) {
  const H = c.heads.length;
  const g = H / c.kvHeads;
  const scale = 1 / Math.sqrt(D);
  const a = Math.sqrt(20 / (F * scale)); // score 20 at i = j
  const w = gaussian(7, c.kvHeads * F).map((x) => x / 4);
  const noise = gaussian(seed, (H + 2 * c.kvHeads) * N * D);
  const pos = (u: number, i: number, t: number) => {
    const ang = w[u * F + (t >> 1)]! * i;
    return a * (t % 2 === 0 ? Math.cos(ang) : Math.sin(ang));
  };
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(c.kvHeads * N * D);
  const v = Float64Array.from(gaussian(seed + 1, c.kvHeads * N * D));
  for (let u = 0; u < c.kvHeads; u++) {
    const positional = c.heads.slice(u * g, (u + 1) * g).includes('local');
    for (let i = 0; i < N; i++) for (let t = 0; t < D; t++) k[(u * N + i) * D + t] = positional ? pos(u, i, t) + 0.05 * noise[(H + u) * N * D + i * D + t]! : 0.1 * noise[(H + u) * N * D + i * D + t]!;
  }
  c.heads.forEach((kind, h) => {
    const u = Math.floor(h / g);
    for (let i = 0; i < N; i++) for (let t = 0; t < D; t++) q[(h * N + i) * D + t] = kind === 'local' ? pos(u, i, t) + 0.05 * noise[h * N * D + i * D + t]! : 0.1 * noise[h * N * D + i * D + t]!;
  });
  const bias = c.bias ? Float64Array.from(gaussian(seed + 2, H * N), (x) => 0.1 * x) : undefined;
  return { q, k, v, bias, scale };
}

/** bhsd [heads, N, dim] (batch 1) into the layout's tensor, rounded to fp32 as the runtime sees it. */
function toLayout(x: Float64Array, heads: number, dim: number, layout: AttentionLayout): { shape: number[]; data: Float32Array } {
  const out = new Float32Array(heads * N * dim);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < N; i++) {
      for (let t = 0; t < dim; t++) {
        const at = layout === 'bhsd' ? (h * N + i) * dim + t : (i * heads + h) * dim + t; // bsd and bshd share the memory order
        out[at] = x[(h * N + i) * dim + t]!;
      }
    }
  }
  const shape = layout === 'bhsd' ? [1, heads, N, dim] : layout === 'bshd' ? [1, N, heads, dim] : [1, N, heads * dim];
  return { shape, data: out };
}

function packQkv(q: Float32Array, k: Float32Array, v: Float32Array, H: number, Hk: number): Float32Array {
  const W = (H + 2 * Hk) * D;
  const out = new Float32Array(N * W);
  for (let i = 0; i < N; i++) {
    out.set(q.subarray(i * H * D, (i + 1) * H * D), i * W);
    out.set(k.subarray(i * Hk * D, (i + 1) * Hk * D), i * W + H * D);
    out.set(v.subarray(i * Hk * D, (i + 1) * Hk * D), i * W + (H + Hk) * D);
  }
  return out;
}

interface Built {
  readonly graph: Graph;
  readonly params: AttentionParams;
  readonly sample: CalibrationSample;
  readonly feeds: Record<string, Float32Array>;
  readonly shapes: Record<string, number[]>;
}

function build(c: Case, seed: number): Built {
  const H = c.heads.length;
  const { q, k, v, bias, scale } = headsData(c, seed);
  const params: AttentionParams = { numHeads: H, kvNumHeads: c.kvHeads, headDim: D, vHeadDim: D, scale, softcap: 0, layout: c.layout, spec: causal() };
  const bsdLike: AttentionLayout = c.layout === 'packed-qkv' ? 'bsd' : c.layout;
  const [Q, K, V] = [toLayout(q, H, D, bsdLike), toLayout(k, c.kvHeads, D, bsdLike), toLayout(v, c.kvHeads, D, bsdLike)];
  const feeds: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  if (c.layout === 'packed-qkv') {
    feeds.q = packQkv(Q.data, K.data, V.data, H, c.kvHeads);
    shapes.q = [1, N, (H + 2 * c.kvHeads) * D];
  } else {
    Object.assign(feeds, { q: Q.data, k: K.data, v: V.data });
    Object.assign(shapes, { q: Q.shape, k: K.shape, v: V.shape });
  }
  if (bias) {
    feeds.bias = Float32Array.from(bias);
    shapes.bias = [1, H, 1, N];
  }
  const g = new Graph('heads');
  const inputs = Object.fromEntries(Object.keys(feeds).map((name) => [name, g.addInput(new Value(name, tensorType('f32', shapes[name])))]));
  const yShape = c.layout === 'bhsd' ? [1, H, N, D] : c.layout === 'bshd' ? [1, N, H, D] : [1, N, H * D];
  const y = new Value('y', tensorType('f32', yShape));
  g.addNode(attentionNode(params, { q: inputs.q!, ...(inputs.k ? { k: inputs.k, v: inputs.v! } : {}), ...(inputs.bias ? { bias: inputs.bias } : {}) }, { y }, 'attn'));
  g.outputs.push(y);
  const t = (name: string) => ({ shape: shapes[name]!, data: feeds[name]! });
  const sample: CalibrationSample = { q: t('q'), ...(feeds.k ? { k: t('k'), v: t('v') } : {}), ...(feeds.bias ? { bias: t('bias') } : {}) };
  return { graph: g, params, sample, feeds, shapes };
}

/** Max |a - b| over the output entries of query heads [h0, h1), for an output in `layout` (batch 1). */
function headError(a: ArrayLike<number>, b: ArrayLike<number>, layout: AttentionLayout, H: number, h0: number, h1: number): number {
  let e = 0;
  for (let h = h0; h < h1; h++) {
    for (let i = 0; i < N; i++) {
      for (let t = 0; t < D; t++) {
        const at = layout === 'bhsd' ? (h * N + i) * D + t : (i * H + h) * D + t;
        const d = Math.abs(a[at]! - b[at]!);
        e = Number.isNaN(d) ? Infinity : Math.max(e, d);
      }
    }
  }
  return e;
}

const CASES: Case[] = [
  { name: 'bsd, GQA 4 / 2: kv head 0 local, kv head 1 spread', layout: 'bsd', heads: ['local', 'local', 'spread', 'spread'], kvHeads: 2, groups: [{ heads: [0, 1], exact: false }, { heads: [2, 3], exact: true }] },
  { name: 'bhsd, MHA: local, local, spread, local (three groups)', layout: 'bhsd', heads: ['local', 'local', 'spread', 'local'], kvHeads: 4, groups: [{ heads: [0, 1], exact: false }, { heads: [2], exact: true }, { heads: [3], exact: false }] },
  { name: 'packed-qkv, GQA 4 / 2: a spread query head keeps its whole kv head exact', layout: 'packed-qkv', heads: ['local', 'spread', 'local', 'local'], kvHeads: 2, groups: [{ heads: [0, 1], exact: true }, { heads: [2, 3], exact: false }] },
  { name: 'bshd, MHA with a per-head additive key bias', layout: 'bshd', heads: ['spread', 'local', 'local', 'spread'], kvHeads: 4, bias: true, groups: [{ heads: [0], exact: true }, { heads: [1, 2], exact: false }, { heads: [3], exact: true }] },
];

describe('sparsify: head groups', () => {
  for (const c of CASES) {
    it(`${c.name}: split into groups, lowered, in onnxruntime within each group's bound`, async () => {
      const H = c.heads.length;
      const built = build(c, 3);
      const decisions: SiteDecision[] = [];
      runPipeline(built.graph, [sparsifyPass({ calibration: [{ id: 'site0', samples: [built.sample] }], target: onnxruntimeCpuProfile, seed: 1, allowUncertified: true, onDecision: (d) => decisions.push(d) })]);
      const d = decisions[0]!;
      expect(d.groups, JSON.stringify(d.notes)).toBeDefined();
      const groups = d.groups!;
      expect(groups.map((x) => ({ heads: [...x.heads], exact: x.exact }))).toEqual(c.groups);
      // whole key/value heads with their query heads, in order
      const g = H / c.kvHeads;
      for (const x of groups) {
        expect(x.heads).toEqual(x.kvHeads.flatMap((u) => Array.from({ length: g }, (_, t) => u * g + t)));
        expect(x.bound).toBeLessThanOrEqual(d.budget);
        if (x.exact) expect([x.chosen, x.bound]).toEqual(['causal', 0]);
        else expect(x.chosen).not.toBe('causal');
      }
      expect(d.bound).toBe(Math.max(...groups.map((x) => x.bound)));
      expect(d.timeAfter).toBeLessThan(d.uniform!.time);
      expect(d.flopsAfter).toBe(groups.reduce((a, x) => a + x.flops, 0));
      // the graph: one Attention per group, with its own spec and heads, annotated
      const nodes = built.graph.nodes.filter(isAttention);
      expect(nodes.map((n) => printSpec(attentionParams(n).spec))).toEqual(groups.map((x) => x.chosen));
      expect(nodes.map((n) => attentionParams(n).numHeads)).toEqual(groups.map((x) => x.heads.length));
      expect(nodes.map((n) => (n.annotations.get(HEAD_GROUP) as HeadGroupAnnotation).heads)).toEqual(groups.map((x) => x.heads));
      expect(nodes.every((n) => n.annotations.get(SPARSIFY_DECISION) === d)).toBe(true);

      runPipeline(built.graph, [lowerAttentionPass({ opset: 21 })]);
      expect(built.graph.nodes.some(isAttention)).toBe(false);
      const bytes = exportOnnx(newOnnxModel(built.graph, { opset: 21 }));
      const feeds = Object.fromEntries(Object.entries(built.feeds).map(([name, data]) => [name, ortTensor('f32', built.shapes[name]!, data)]));
      const got = ortValues((await runModel(bytes, feeds)).y!);
      const t64 = (name: string) => ({ shape: built.shapes[name]!, data: Float64Array.from(built.feeds[name]!) });
      const want = referenceAttention(built.params, {
        q: t64('q'),
        ...(built.feeds.k ? { k: t64('k'), v: t64('v') } : {}),
        ...(built.feeds.bias ? { bias: t64('bias') } : {}),
      }).y.data;
      expect(got.length).toBe(want.length);
      let total = 0;
      for (const x of groups) {
        const e = headError(got, want, c.layout, H, x.heads[0]!, x.heads[x.heads.length - 1]! + 1);
        expect(e, `${x.chosen} on heads ${x.heads.join(', ')}`).toBeLessThanOrEqual(x.exact ? 1e-5 : x.bound + 1e-5);
        total = Math.max(total, e);
      }
      expect(total).toBeLessThanOrEqual(groups.reduce((a, x) => a + x.bound, 0) + 1e-5);
    });
  }

  it('keeps one spec when every head wants the same form, and with headGroups off records the heads only', () => {
    const same: Case = { name: 'same', layout: 'bsd', heads: ['local', 'local', 'local', 'local'], kvHeads: 2, groups: [] };
    const a = build(same, 5);
    const decisions: SiteDecision[] = [];
    runPipeline(a.graph, [sparsifyPass({ calibration: [{ id: 'site0', samples: [a.sample] }], target: attnoptCpuProfile, allowUncertified: true, onDecision: (d) => decisions.push(d) })]);
    expect(decisions[0]!.groups).toBeUndefined();
    expect(a.graph.nodes.filter(isAttention)).toHaveLength(1);

    const mixed = build(CASES[0]!, 5);
    const off: SiteDecision[] = [];
    runPipeline(mixed.graph, [sparsifyPass({ calibration: [{ id: 'site0', samples: [mixed.sample] }], target: onnxruntimeCpuProfile, headGroups: false, allowUncertified: true, onDecision: (d) => off.push(d) })]);
    expect(off[0]!.groups).toBeUndefined();
    expect(new Set(off[0]!.perHead!.map((h) => h.best)).size).toBeGreaterThan(1);
    expect(off[0]!.notes.join('\n')).toMatch(/head groups are off/);
    expect(mixed.graph.nodes.filter(isAttention)).toHaveLength(1);
  });
});
