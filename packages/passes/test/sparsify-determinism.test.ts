// Determinism: the same model, calibration inputs and seed give the same decisions (compared as JSON) and the
// same rewritten graph (compared as IR text), with head groups, seeded forms (LSH, Linformer, Performer) and
// Nystrom among the candidates; another seed changes the seeded forms tried.

import { attnoptCpuProfile } from '@attnopt/cost';
import { attentionNode, type AttentionParams, causal, gaussian, Graph, printGraph, tensorType, Value } from '@attnopt/ir';
import { runPipeline } from '@attnopt/rewrite';
import { describe, expect, it } from 'vitest';
import { type CalibrationSample, type SiteDecision, sparsifyPass } from '../src/sparsify/index.js';

const N = 256;
const D = 32;
const H = 4;
const HK = 2;
const params: AttentionParams = { numHeads: H, kvNumHeads: HK, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal() };

/** Key/value head 0 (query heads 0, 1) local by positional features, key/value head 1 spread (small noise). */
function sample(seed: number): CalibrationSample {
  const F = D / 2;
  const w = gaussian(7, F).map((x) => x / 4);
  const a = Math.sqrt(20 / (F * params.scale));
  const noise = gaussian(seed, (H + HK) * N * D);
  const pos = (i: number, t: number) => a * (t % 2 === 0 ? Math.cos(w[t >> 1]! * i) : Math.sin(w[t >> 1]! * i));
  const q = new Float64Array(H * N * D);
  const k = new Float64Array(HK * N * D);
  for (let i = 0; i < N; i++) {
    for (let t = 0; t < D; t++) {
      for (let h = 0; h < H; h++) q[(h * N + i) * D + t] = (h < 2 ? pos(i, t) : 0) + 0.1 * noise[(h * N + i) * D + t]!;
      for (let u = 0; u < HK; u++) k[(u * N + i) * D + t] = (u === 0 ? pos(i, t) : 0) + 0.1 * noise[((H + u) * N + i) * D + t]!;
    }
  }
  return { q: { shape: [1, H, N, D], data: q }, k: { shape: [1, HK, N, D], data: k }, v: { shape: [1, HK, N, D], data: gaussian(seed + 1, HK * N * D) } };
}

function graph(): Graph {
  const g = new Graph('determinism');
  for (let s = 0; s < 2; s++) {
    const q = g.addInput(new Value(`q${s}`, tensorType('f32', [1, H, N, D])));
    const k = g.addInput(new Value(`k${s}`, tensorType('f32', [1, HK, N, D])));
    const v = g.addInput(new Value(`v${s}`, tensorType('f32', [1, HK, N, D])));
    const y = new Value(`y${s}`, tensorType('f32', [1, H, N, D]));
    g.addNode(attentionNode(params, { q, k, v }, { y }, `attention${s}`));
    g.outputs.push(y);
  }
  return g;
}

function run(seed: number): { decisions: string; text: string; tried: string[] } {
  const g = graph();
  const decisions: SiteDecision[] = [];
  const calibration = [
    { id: 'site0', samples: [sample(1), sample(2)] },
    { id: 'site1', samples: [sample(3)] },
  ];
  runPipeline(g, [sparsifyPass({ calibration, seed, target: attnoptCpuProfile, allowUncertified: true, onDecision: (d) => decisions.push(d) })]);
  return { decisions: JSON.stringify(decisions), text: printGraph(g), tried: decisions.flatMap((d) => d.tried.map((t) => t.spec)) };
}

describe('sparsify determinism', () => {
  it('same model, inputs and seed: identical decisions (JSON) and graphs (IR text)', () => {
    const a = run(5);
    const b = run(5);
    expect(JSON.parse(a.decisions)).toHaveLength(2);
    expect(a.decisions).toMatch(/"groups"/); // the head-group path is part of what is compared
    expect(b.decisions).toBe(a.decisions);
    expect(b.text).toBe(a.text);
  });

  it('another seed changes the seeded forms tried', () => {
    const a = run(5);
    const c = run(6);
    const seeded = (t: string[]) => t.filter((s) => /seed=/.test(s));
    expect(seeded(a.tried).length).toBeGreaterThan(0);
    expect(seeded(c.tried)).not.toEqual(seeded(a.tried));
  });
});
