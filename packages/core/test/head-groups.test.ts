// One pipeline for every command: a site whose heads want different forms is split into head groups by
// decide(), and optimize, explain and compile all see those groups. The model: the generated long-attention
// model (2 heads of 32, n = 512) with head 1's attention reaching 16 times further than head 0's, so head 0
// wants a narrow window and head 1 stays dense (measured when this test was written: head 0
// window(left=16, right=16) | head 1 dense on onnxruntime-cpu).

import { beforeAll, describe, expect, test } from 'vitest';
import { attentionParams, compile, decide, type DecideResult, explainDecisions, loadModel, optimize, parseSpec, printSpec, type SitePlan } from '../src/index.js';
import { HEADS, longAttentionBytes, longAttentionSample } from './helpers/long-attention.js';

const N = 512;
const REACH = [1, 16];
const samples = [longAttentionSample(1, N, REACH), longAttentionSample(2, N, REACH)];
// the statistical tier: the groups' forms are accepted on these samples' measured bounds (their block summaries
// are too loose here for the guarded tier)
const options = { samples, seqLen: N, maxError: 1e-2, allowStatistical: true };

describe('head groups through decide, optimize, explain and compile', () => {
  let decided: DecideResult;
  let site: SitePlan;
  beforeAll(async () => {
    decided = await decide(loadModel(longAttentionBytes()), options);
    site = decided.sites[0]!;
  }, 120_000);

  test('decide splits the site into one group per head, with their own specs', () => {
    expect(decided.sites).toHaveLength(1);
    expect(site.groups).toBeDefined();
    const groups = site.groups!;
    expect(groups.map((g) => g.id)).toEqual(['site0.g0', 'site0.g1']);
    expect(groups.flatMap((g) => g.heads)).toEqual([...Array(HEADS).keys()]);
    expect(new Set(groups.map((g) => g.chosen)).size).toBe(2);
    for (const g of groups) {
      expect(printSpec(parseSpec(g.chosen))).toBe(g.chosen);
      expect(attentionParams(g.node).numHeads).toBe(g.heads.length);
      expect(printSpec(attentionParams(g.node).spec)).toBe(g.chosen);
      if (g.exact) expect(g.bound).toBe(0);
      else expect(g.bound).toBeLessThanOrEqual(options.maxError);
    }
    expect(site.exact).toBe(groups.every((g) => g.exact));
    expect(site.bound).toBe(Math.max(...groups.map((g) => g.bound)));
    expect(site.flopsAfter).toBeCloseTo(groups.reduce((a, g) => a + g.flops, 0), 6);
    expect(site.flopsAfter).toBeLessThan(site.flopsBefore);
  });

  test('optimize reports the groups decide chose (same heads, specs, bounds)', async () => {
    const optimized = await optimize(loadModel(longAttentionBytes()), options);
    const s = optimized.sites[0]!;
    expect(s.chosen).toBe(site.chosen);
    expect(s.restored).toBeUndefined();
    expect(s.groups?.map((g) => [g.heads, g.chosen, g.exact, g.bound])).toEqual(site.groups!.map((g) => [g.heads, g.chosen, g.exact, g.bound]));
    // the model is at opset 23: the windowed group lowers to ONNX Attention per batch of query blocks
    expect(optimized.notes.some((n) => n.pass === 'lower-attention' && n.message.includes('onnxruntime form: one Attention per batch of blocks'))).toBe(true);
  });

  test('explain names every group', () => {
    const why = explainDecisions(decided).sites[0]!.why.join('\n');
    for (const g of site.groups!) expect(why).toContain(`${g.id}: head ${g.heads[0]} compute ${g.chosen}`);
  });

  test.each(['cpu', 'wgsl'] as const)('compile gives a %s kernel per group, computing its spec over its heads', (target) => {
    for (const g of site.groups!) {
      const kernel = compile(g, { target });
      expect(kernel.manifest.site).toBe(g.id);
      expect(kernel.manifest.spec).toBe(g.chosen);
      expect(kernel.manifest.heads).toBe(g.heads.length);
      expect(kernel.files.every((f) => f.name.startsWith(g.id))).toBe(true);
    }
  });
});
