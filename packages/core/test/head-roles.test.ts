// Head roles on constructed attention patterns whose answers are known by construction: a window of w keys
// (local, reach w), most mass on key 0 (sink), mass on the key after the previous occurrence in a sequence
// repeated with period P (induction, offset P - 1), mass on two fixed keys (global), uniform (diffuse). Then the
// same patterns made by a site's own Q, K and bias through siteHeadRoles (scores -> softmax in float64), and a
// generated model whose heads decay with |i - j| at two rates through modelHeadRoles.

import { describe, expect, test } from 'vitest';
import { type AttentionParams } from '@attnopt/ir';
import { HeadRoleAccumulator, loadModel, modelHeadRoles, printGraph, type SiteSamples, siteHeadRoles } from '../src/index.js';
import { longAttentionBytes, longAttentionSample } from './helpers/long-attention.js';

const N = 256;

/** Feeds rows i = 0..n-1 of `row(i)` (a probability vector) to an accumulator and classifies; causal rows see i + 1 keys. */
function classifyRows(n: number, row: (i: number) => Float64Array, causal = true) {
  const acc = new HeadRoleAccumulator(n);
  for (let i = 0; i < n; i++) acc.addRow(i, row(i), causal ? i + 1 : n);
  return acc.classify(0);
}

/** Uniform mass `total` over keys lo..hi (clipped to 0..n-1) added into p. */
function spread(p: Float64Array, lo: number, hi: number, total: number): Float64Array {
  const a = Math.max(0, lo);
  const b = Math.min(p.length - 1, hi);
  for (let j = a; j <= b; j++) p[j]! += total / (b - a + 1);
  return p;
}

describe('head roles from attention rows', () => {
  test('a causal window of w keys is local; its reach is the ceil(0.95 w) nearest keys that hold 95% of the mass', () => {
    for (const [w, reach] of [[1, 1], [8, 8], [12, 12], [16, 16]] as const) {
      const r = classifyRows(N, (i) => spread(new Float64Array(N), i - w + 1, i, 1));
      expect(r.role).toBe('local');
      expect(r.stats.reach).toBe(reach);
      expect(r.stats.sinkMass).toBe(0);
    }
  });

  test('a window wider than an eighth of the keys a row sees (mean 160 here) is not local', () => {
    const r = classifyRows(N, (i) => spread(new Float64Array(N), i - 63, i, 1));
    expect(r.stats.reach).toBe(61);
    expect(r.stats.halfReach).toBe(32); // half of 64 equal keys
    expect(r.role).toBe('diffuse');
  });

  test('a symmetric window |i - j| < 8 is local with reach 8 (distance 0 holds 1/15, each further distance 2/15)', () => {
    const r = classifyRows(N, (i) => spread(new Float64Array(N), i - 7, i + 7, 1), false);
    expect(r.role).toBe('local');
    expect(r.stats.reach).toBe(8);
  });

  test('70% on key 0 is a sink head (mass on the first keys counted exactly)', () => {
    const r = classifyRows(N, (i) => {
      const p = spread(new Float64Array(N), 4, i, 0.3);
      p[0] = 0.7;
      return p;
    });
    expect(r.role).toBe('sink');
    expect(r.stats.sinkMass).toBeCloseTo(0.7, 12);
  });

  test('30% on key 0 and 70% on a window of 16: local with the sinks, reach ceil(16 (0.95 - 0.3) / 0.7) = 15', () => {
    const r = classifyRows(N, (i) => {
      const p = spread(new Float64Array(N), i - 15, i, 0.7);
      p[0]! += 0.3;
      return p;
    });
    expect(r.role).toBe('local');
    expect(r.stats.reach).toBe(15);
    expect(r.stats.sinkMass).toBeCloseTo(0.3, 12); // counted rows (i >= 63) have windows clear of keys 1-3
    expect(r.why).toContain('first 4 keys');
  });

  test('on a span repeated with period P, 80% on the key after the previous occurrence is induction at offset P - 1', () => {
    const P = 64;
    const r = classifyRows(N, (i) => {
      const p = spread(new Float64Array(N), 0, i, 0.2);
      if (i >= P) p[i - P + 1]! += 0.8;
      else spread(p, 0, i, 0.8);
      return p;
    });
    expect(r.role).toBe('induction');
    expect(r.stats.diagonalOffset).toBe(P - 1);
    expect(r.stats.diagonalMass).toBeGreaterThan(0.7);
  });

  test('40% on key 0 and the rest uniform is neither a sink head nor a diagonal (a fixed key moves along the offsets)', () => {
    const r = classifyRows(N, (i) => {
      const p = spread(new Float64Array(N), 0, i, 0.6);
      p[0]! += 0.4;
      return p;
    });
    expect(r.stats.sinkMass).toBeLessThan(0.5);
    expect(r.stats.diagonalMass).toBeLessThan(0.05);
    expect(r.role).toBe('diffuse');
  });

  test('60% on keys 10 and 100 of every row (bidirectional) is global on those keys', () => {
    const r = classifyRows(
      N,
      () => {
        const p = spread(new Float64Array(N), 0, N - 1, 0.4);
        p[10]! += 0.3;
        p[100]! += 0.3;
        return p;
      },
      false,
    );
    expect(r.role).toBe('global');
    expect(r.stats.globalKeys).toContain(10);
    expect(r.stats.globalKeys).toContain(100);
    expect(r.stats.globalMass).toBeGreaterThanOrEqual(0.6);
  });

  test('uniform causal attention is diffuse with entropy 1', () => {
    const r = classifyRows(N, (i) => spread(new Float64Array(N), 0, i, 1));
    expect(r.role).toBe('diffuse');
    expect(r.stats.entropy).toBeCloseTo(1, 12);
  });

  test('rows that see fewer than minKeys keys are not counted', () => {
    const acc = new HeadRoleAccumulator(N);
    for (let i = 0; i < N; i++) acc.addRow(i, spread(new Float64Array(N), 0, i, 1), i + 1);
    expect(acc.stats().rows).toBe(N - 63); // minKeys = 64 at n = 256: rows 63..255
  });
});

describe('siteHeadRoles: probabilities from Q, K and the bias', () => {
  // Q = K = 0: every kept key scores the same, so the softmax is uniform over what the bias keeps. The bias
  // [1, 4, n, n] (0 kept, -inf dropped) makes head 0 a causal window of 8, head 1 keys 0-2 plus its own key,
  // head 2 the key P - 1 back (after its first period: every key), head 3 everything up to itself.
  const n = 128;
  const P = 40;
  const heads = 4;
  const d = 8;
  const keep: ((i: number, j: number) => boolean)[] = [
    (i, j) => j <= i && i - j < 8,
    (i, j) => j <= 2 || j === i,
    (i, j) => (i >= P ? j === i - P + 1 : j <= i),
    (i, j) => j <= i,
  ];
  const bias = new Float32Array(heads * n * n);
  for (let h = 0; h < heads; h++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) bias[(h * n + i) * n + j] = keep[h]!(i, j) ? 0 : -Infinity;
  const zeros = { dtype: 'f32', shape: [1, heads, n, d], data: new Float32Array(heads * n * d) };
  const params: AttentionParams = { numHeads: heads, kvNumHeads: heads, headDim: d, vHeadDim: d, scale: 1, softcap: 0, layout: 'bhsd', spec: { kind: 'dense' } };
  const site: SiteSamples = {
    id: 'site0',
    params,
    values: {},
    samples: [{ q: zeros, k: zeros, v: zeros, bias: { dtype: 'f32', shape: [1, heads, n, n], data: bias }, dims: { batch: 1, nq: n, nk: n, past: 0 } }],
  };

  test('each head gets the role its mask gives it', () => {
    const roles = siteHeadRoles(site);
    expect(roles.heads.map((h) => h.role)).toEqual(['local', 'sink', 'induction', 'diffuse']);
    expect(roles.heads[0]!.stats.reach).toBe(8);
    expect(roles.heads[2]!.stats.diagonalOffset).toBe(P - 1);
  });

  test("the site's own spec masks the row: a causal spec over a zero bias is uniform causal (diffuse), not dense", () => {
    const causal: SiteSamples = {
      ...site,
      params: { ...params, spec: { kind: 'causal', align: 'top-left' } },
      samples: [{ ...site.samples[0]!, bias: { dtype: 'f32', shape: [1, heads, n, n], data: new Float32Array(heads * n * n) } }],
    };
    const roles = siteHeadRoles(causal);
    for (const h of roles.heads) {
      expect(h.role).toBe('diffuse');
      expect(h.stats.entropy).toBeCloseTo(1, 12);
      // the causal spec lets row i see i + 1 keys: rows 31..127 reach minKeys = n / 4 = 32
      expect(h.stats.rows).toBe(n - 32 + 1);
    }
  });
});

describe('modelHeadRoles: run the model, collect each site, classify', () => {
  // the generated long-attention model: attention decays with |i - j|, head 1's reaching 16 times further than head 0's
  test('both heads of the long-attention model are local, head 1 reaching further, and the model is left as it was', async () => {
    const model = loadModel(longAttentionBytes());
    const before = printGraph(model.graph);
    const [site] = await modelHeadRoles(model, [longAttentionSample(1, 512, [1, 16])]);
    expect(site!.id).toBe('site0');
    const [h0, h1] = site!.heads;
    expect(h0!.role).toBe('local');
    expect(h1!.stats.reach).toBeGreaterThan(4 * h0!.stats.reach);
    expect(printGraph(model.graph)).toBe(before);
  });
});
