// The decode route around a whole split site (split-decode-route.ts) in onnxruntime: a site with cached keys split
// into head groups lowers to If(new queries < N, one exact dense form of every head, the groups). Site: bhsd, 4 heads
// of 16, past keys, causal(past); heads 0-1 a guarded window 255 + sinks 4 (budget 1e-3), heads 2-3 the site's own
// spec. Checked against the float64 reference (@attnopt/reference), |y - ref| <= 1e-5 for exact rows (float32 scores
// over <= 1100 keys, values in [-1, 1]) and <= budget + 1e-4 for the guarded group:
// - the route is one If at the top of the graph, the split's Slices and Concats inside its sparse branch, the dense
//   branch one form of every head (no Slice, no Concat);
// - a decode step (1 query over 1000 cached keys, and 8 over 300) gives the causal reference on every head, and the
//   guarded group's flags are [0, 0, 0] (no row certified); a prefill call (200 queries) takes the groups: flags
//   [1, 2, 200] under the group's label, each group within its promise;
// - two guarded groups whose key blocks differ (32 and 64, so their own routes): the whole split routes below 32, the
//   other group keeps its route inside (48 queries: its exact form and flags [0, 0, 0], the first group's guarded
//   form and flags [1, 2, 48]);
// - a node that reads Y placed between the Concats of Y and of the presents (a valid order): the If goes before it;
// - in every layout (bhsd, bshd, bsd, packed-qkv), with a present key output: a decode step and a prefill call of
//   the split routed whole equal the unsplit site's dense lowering bit for bit on uniform inputs (every row of the
//   guarded group falls back there), Y and the present keys, and the route reads the query count on the layout's
//   sequence axis (the guarded group's flags [0, 0, 0] at 1 query, [1, 2, 100] at 100);
// - no route around the split where a group does not compute the site's function dense (an unguarded window of a
//   causal site: the statistical tier), or where something outside reads a value of the split: the groups are
//   routed one by one, as before.

import { type AttentionParams, attentionParams, type AttentionSpec, attentionNode, causal, Graph, intersect, isAttention, Node, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { lowerAttentionPass } from '../src/lower/index.js';
import type { HeadGroup } from '../src/sparsify/head-groups.js';
import { splitHeads } from '../src/sparsify/split-heads.js';
import { guardedSiteParams } from './helpers/guarded-params.js';
import { ortTensor, ortValues, runModel } from './helpers/ort.js';
import { maxAbsDiff, pastInputs, type PastInputs, pastReference, runPast } from './helpers/past-inputs.js';

const H = 4;
const D = 16;
const BUDGET = 1e-3;
const CAUSAL = causal('past');
const WINDOW = intersect(CAUSAL, union(slidingWindow(255, 0, 'past'), sinks(4)));

interface Group {
  readonly spec: AttentionSpec;
  readonly guarded?: boolean;
  /** The guard's key block (default 64). */
  readonly block?: number;
}

/** The site (spec `site`) with past keys, not split; `presents`: with its present key and value outputs. */
function unsplit(site: AttentionSpec = CAUSAL, presents = false, name = 'attn'): Graph {
  const g = new Graph('split_route');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'seq', D]))));
  const [pk, pv] = ['past_key', 'past_value'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, H, 'past', D]))));
  const y = new Value('y', tensorType('f32'));
  const params: AttentionParams = guardedSiteParams(H, D, site);
  const present = presents ? { presentKey: new Value('present_key', tensorType('f32')), presentValue: new Value('present_value', tensorType('f32')) } : {};
  const node = attentionNode(params, { q: q!, k: k!, v: v!, pastKey: pk!, pastValue: pv! }, { y, ...present }, name);
  g.addNode(node);
  g.outputs.push(y, ...Object.values(present));
  return g;
}

/**
 * The site (spec `site`) split into two groups of two heads; `extra` reads the first group's Q slice outside;
 * `between`: with present outputs, and a node reading Y placed between Y's Concat and the presents' (a valid order).
 */
function split(site: AttentionSpec, groups: readonly [Group, Group], extra = false, between = false, name = 'attn'): Graph {
  const g = unsplit(site, between, name);
  const node = g.nodes[0]!;
  const params = attentionParams(node);
  const heads = (h0: number): HeadGroup => {
    const x = groups[h0 / 2]!;
    const guard = x.guarded ? { guard: { budget: BUDGET, blockSize: x.block ?? 64, baseline: site } } : {};
    return { heads: [h0, h0 + 1], kvHeads: [h0, h0 + 1], spec: x.spec, ...guard } as unknown as HeadGroup;
  };
  const [first] = splitHeads(node, params, [heads(0), heads(2)], 'site0');
  if (extra) {
    const read = new Value('q_heads_0_1', tensorType('f32'));
    g.add({ op: 'Identity', inputs: [first!.inputs[0]!], outputs: [read] });
    g.outputs.push(read);
  }
  if (between) {
    const yHeads = g.outputs[0]!;
    const read = new Value('y_read', tensorType('f32'));
    g.addNode(new Node({ op: 'Neg', inputs: [yHeads], outputs: [read] }), g.nodes.indexOf(yHeads.producer!) + 1);
    g.outputs.push(read);
  }
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return g;
}

const bytes = (g: Graph): Uint8Array => {
  const flags = g.nodes.flatMap((n) => n.outputs).filter((o) => /\/guard_falls_back\./.test(o.name));
  g.outputs.push(...flags);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
};

const routes = (g: Graph): Node[] => g.nodes.filter((n) => n.op === 'If' && n.name.endsWith('/decode_route'));

/** Heads [h0, h1) of [1, H, nq, D]. */
function headsOf(y: ArrayLike<number>, x: PastInputs, h0: number, h1: number): number[] {
  return Array.from(y).slice(h0 * x.nq * D, h1 * x.nq * D);
}

describe('the decode route around a split site: a decode step runs one exact dense form of every head', () => {
  const GUARDED: readonly [Group, Group] = [{ spec: WINDOW, guarded: true }, { spec: CAUSAL }];
  const graph = split(CAUSAL, GUARDED);
  const model = bytes(split(CAUSAL, GUARDED));

  it('one If at the top: the split inside its sparse branch, one dense form in its exact branch', () => {
    const [route, ...more] = routes(graph);
    expect(more).toHaveLength(0);
    expect(route!.name).toBe('attn/decode_route');
    expect(graph.nodes.filter((n) => n.op === 'Slice' || n.op === 'Concat' || isAttention(n))).toHaveLength(0);
    const [exact, sparse] = route!.subgraphs();
    // the exact branch: the site's dense lowering, every head in one (and the flags' constant)
    const dense = unsplit();
    runPipeline(dense, [lowerAttentionPass({ opset: 21, strategy: 'dense' })]);
    expect(exact!.nodes.map((n) => n.op).sort()).toEqual([...dense.nodes.map((n) => n.op), 'Constant'].sort());
    expect(sparse!.nodes.filter((n) => n.op === 'Slice').length).toBeGreaterThanOrEqual(6); // q, k, v, past k, past v per group
    expect([...exact!.nodes, ...sparse!.nodes].some(isAttention)).toBe(false);
    // every reader of the site's inputs is a node of the model (no scratch copy left a use behind)
    const graphs = new Set<Graph>();
    const collect = (x: Graph): void => {
      graphs.add(x);
      for (const n of x.nodes) n.subgraphs().forEach(collect);
    };
    collect(graph);
    for (const v of graph.inputs) for (const u of v.uses()) expect(u.node.graph && graphs.has(u.node.graph), `${v.name} read by ${u.node.describe()}`).toBe(true);
    // the guarded group's flags leave the If under its label; the exact group has none
    expect(route!.outputs.map((o) => o.name)).toEqual(['y', 'attn/guard_falls_back.site0.heads0-1']);
  });

  it.each([
    [1, 1000],
    [8, 300],
  ])('%i new queries over %i cached keys: the causal reference on every head, no row certified', async (nq, P) => {
    for (const outlier of [false, true]) {
      const x = pastInputs(H, D, P, nq, 5 + nq, outlier);
      const out = await runPast(model, x);
      expect(maxAbsDiff(out.y, pastReference(CAUSAL, x)), `outlier ${outlier}`).toBeLessThanOrEqual(1e-5);
      expect([...out.flags.keys()]).toEqual(['site0.heads0-1']);
      expect(out.flags.get('site0.heads0-1')!.dims).toEqual([0, 0, 0]);
    }
  });

  it('a prefill call (200 queries over 300 cached keys) takes the groups: the guarded one within its budget, with its flags', async () => {
    for (const outlier of [false, true]) {
      const x = pastInputs(H, D, 300, 200, 9, outlier);
      const out = await runPast(model, x);
      const ref = pastReference(CAUSAL, x);
      expect(out.flags.get('site0.heads0-1')!.dims).toEqual([1, 2, 200]);
      expect(maxAbsDiff(headsOf(out.y, x, 0, 2), headsOf(ref, x, 0, 2))).toBeLessThanOrEqual(BUDGET + 1e-4);
      expect(maxAbsDiff(headsOf(out.y, x, 2, 4), headsOf(ref, x, 2, 4))).toBeLessThanOrEqual(1e-5);
      // the outlier key far behind the window carries the mass: rows fall back there, none on local inputs
      expect(out.flags.get('site0.heads0-1')!.values.some((f) => f === 1)).toBe(outlier);
    }
  });

  it('guarded groups of key blocks 32 and 64: the split routes below 32, the second group keeps its own route inside', async () => {
    const groups: readonly [Group, Group] = [
      { spec: WINDOW, guarded: true, block: 32 },
      { spec: WINDOW, guarded: true },
    ];
    const g = split(CAUSAL, groups);
    const [route, ...more] = routes(g);
    expect(more).toHaveLength(0);
    const count = route!.inputs[0]!.producer!.inputs[1]!.producer!.attrs.get('value');
    expect(count?.type === 'tensor' ? Number(count.value.bigints()[0]) : undefined).toBe(32);
    expect(routes(route!.subgraphs()[1]!).map((n) => n.name)).toEqual(['attn/heads2_3/decode_route']);
    const m = bytes(g);
    for (const [nq, P, first, second] of [
      [1, 1000, [0, 0, 0], [0, 0, 0]],
      [48, 1000, [1, 2, 48], [0, 0, 0]],
      [200, 300, [1, 2, 200], [1, 2, 200]],
    ] as const) {
      const x = pastInputs(H, D, P, nq, 21 + nq, true);
      const out = await runPast(m, x);
      expect([out.flags.get('site0.heads0-1')!.dims, out.flags.get('site0.heads2-3')!.dims], `${nq} queries`).toEqual([first, second]);
      const ref = pastReference(CAUSAL, x);
      expect(maxAbsDiff(headsOf(out.y, x, 0, 2), headsOf(ref, x, 0, 2)), `${nq} queries`).toBeLessThanOrEqual(nq < 32 ? 1e-5 : BUDGET + 1e-4);
      expect(maxAbsDiff(headsOf(out.y, x, 2, 4), headsOf(ref, x, 2, 4)), `${nq} queries`).toBeLessThanOrEqual(nq < 64 ? 1e-5 : BUDGET + 1e-4);
    }
  });

  it('a node that reads Y between the Concats of Y and of the presents: the route goes before it', async () => {
    const g = split(CAUSAL, GUARDED, false, true);
    expect(routes(g)).toHaveLength(1);
    const x = pastInputs(H, D, 1000, 1, 3);
    const out = await runPast(bytes(g), x);
    expect(maxAbsDiff(out.y, pastReference(CAUSAL, x))).toBeLessThanOrEqual(1e-5);
  });

  it('an unnamed site: the route is named after its output, as lowerAttention names a site', () => {
    const g = split(CAUSAL, GUARDED, false, false, '');
    expect(routes(g).map((n) => [n.name, n.outputs.map((o) => o.name)])).toEqual([['y_attention/decode_route', ['y', 'y_attention/guard_falls_back.site0.heads0-1']]]);
  });

  it.each(['bhsd', 'bshd', 'bsd', 'packed-qkv'] as const)('%s: Y and the present keys equal the unsplit dense site, at a decode step and a prefill call', async (layout) => {
    const build = (split: boolean): Uint8Array => {
      const g = new Graph('layouts');
      const shape = (heads: number): (number | string)[] => (layout === 'bhsd' ? [1, heads, 'seq', D] : layout === 'bshd' ? [1, 'seq', heads, D] : [1, 'seq', heads * D]);
      const input = (name: string, type: (number | string)[]) => g.addInput(new Value(name, tensorType('f32', type)));
      const q = input('q', layout === 'packed-qkv' ? [1, 'seq', 3 * H * D] : shape(H));
      const kv = layout === 'packed-qkv' ? {} : { k: input('k', shape(H)), v: input('v', shape(H)) };
      const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => input(name, [1, H, 'past', D]));
      const y = new Value('y', tensorType('f32'));
      const presentKey = new Value('present_key', tensorType('f32'));
      const params: AttentionParams = { ...guardedSiteParams(H, D, CAUSAL), layout };
      const node = g.addNode(attentionNode(params, { q, ...kv, pastKey: pastKey!, pastValue: pastValue! }, { y, presentKey }, 'attn'));
      g.outputs.push(y, presentKey);
      const group = (h0: number, guarded: boolean) =>
        ({ heads: [h0, h0 + 1], kvHeads: [h0, h0 + 1], spec: guarded ? WINDOW : CAUSAL, ...(guarded ? { guard: { budget: BUDGET, blockSize: 64, baseline: CAUSAL } } : {}) }) as unknown as HeadGroup;
      if (split) splitHeads(node, params, [group(0, true), group(2, false)], 'site0');
      runPipeline(g, [lowerAttentionPass({ opset: 21, ...(split ? {} : { strategy: 'dense' }) })]);
      if (!split) return exportOnnx(newOnnxModel(g, { opset: 21 }));
      expect(routes(g).map((n) => n.name)).toEqual(['attn/decode_route']);
      return bytes(g);
    };
    const [dense, routed] = [build(false), build(true)];
    let state = 17;
    const uniform = (n: number) => Array.from({ length: n }, () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
    for (const [nq, P] of [
      [1, 700],
      [100, 300],
    ] as const) {
      const t = (shape: number[]) => ortTensor('f32', shape, uniform(shape.reduce((a, b) => a * b, 1)));
      const seq = layout === 'bhsd' ? [1, H, nq, D] : layout === 'bshd' ? [1, nq, H, D] : [1, nq, H * D];
      const feeds = {
        ...(layout === 'packed-qkv' ? { q: t([1, nq, 3 * H * D]) } : { q: t(seq), k: t(seq), v: t(seq) }),
        past_key: t([1, H, P, D]),
        past_value: t([1, H, P, D]),
      };
      const [a, b] = [await runModel(dense, feeds), await runModel(routed, feeds)];
      expect(b.y!.dims, `${nq} queries`).toEqual(a.y!.dims);
      expect(maxAbsDiff(ortValues(b.y!), ortValues(a.y!)), `${nq} queries`).toBe(0);
      expect(maxAbsDiff(ortValues(b.present_key!), ortValues(a.present_key!)), `${nq} queries`).toBe(0);
      // the route read the query count on the layout's sequence axis: the dense branch at 1 query, the groups at 100
      expect(b['attn/guard_falls_back.site0.heads0-1']!.dims, `${nq} queries`).toEqual(nq === 1 ? [0, 0, 0] : [1, 2, nq]);
    }
  });

  it('a group that does not compute the site function dense, or a split value read outside: each group routes itself', () => {
    for (const g of [split(CAUSAL, [{ spec: WINDOW }, { spec: CAUSAL }]), split(CAUSAL, GUARDED, true)]) {
      expect(g.nodes.some((n) => n.op === 'Slice')).toBe(true);
      expect(routes(g).map((n) => n.name)).toEqual(['attn/heads0_1/decode_route']);
    }
  });
});
