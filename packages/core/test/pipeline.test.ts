// The compile pipeline: one list of passes whose labels are the stages decide and optimize announce, decide its
// prefix, and the IR verifier before the first pass and after every pass (on in the test suite through
// ATTNOPT_VERIFY_EACH=1, which vitest.shared.ts sets; on for users with verifyEach / --verify-each).

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { verifyGraph } from '@attnopt/ir';
import { analyze, attentionSites, decide, DECIDE_STAGES, loadModel, optimize, OPTIMIZE_STAGES, type SiteTimer } from '../src/index.js';

// the verifier itself, counted (the pass manager of @attnopt/rewrite calls it)
vi.mock('@attnopt/ir', async (original) => {
  const ir = await original<typeof import('@attnopt/ir')>();
  return { ...ir, verifyGraph: vi.fn(ir.verifyGraph) };
});
const verifications = vi.mocked(verifyGraph);

const here = fileURLToPath(new URL('.', import.meta.url));
const gpt2 = resolve(here, '../../../../shared/fixtures/onnx/torch-exports/gpt2_causal_attn_where_op17_dyn.onnx');
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');

describe('stages', () => {
  test('are the labels of the passes, in order; decide announces a prefix of optimize', () => {
    expect(OPTIMIZE_STAGES).toEqual(['recognize and analyze masks', 'calibrate', 'sparsify', 'lower']);
    expect(DECIDE_STAGES).toEqual(OPTIMIZE_STAGES.slice(0, DECIDE_STAGES.length));
    expect(DECIDE_STAGES.at(-1)).toBe('sparsify');
  });

  test('each is announced once, in order; calibrate and sparsify only with a budget above 0', async () => {
    const exact: string[] = [];
    await optimize(loadModel(gpt2), { maxError: 0, onStage: (s) => exact.push(s) });
    expect(exact).toEqual(['recognize and analyze masks', 'lower']);
    const approximate: string[] = [];
    await optimize(loadModel(gpt2), { seqLen: 16, onStage: (s) => approximate.push(s) });
    expect(approximate).toEqual(OPTIMIZE_STAGES);
    const decided: string[] = [];
    await decide(loadModel(gpt2), { seqLen: 16, onStage: (s) => decided.push(s) });
    expect(decided).toEqual(DECIDE_STAGES);
  });
});

test('sparsify reports each site it has decided (onProgress), in the dry run and in the run itself', async () => {
  const bart = resolve(here, '../../../tools/fixtures/whole-models/bart.onnx');
  const stages: string[] = [];
  const seen: string[] = [];
  await optimize(loadModel(bart), { seqLen: 16, measure: false, onStage: (s) => stages.push(s), onProgress: (d) => seen.push(`${stages.at(-1)}: ${d}`) });
  expect(seen).toEqual([1, 2, 3, 4, 5, 6].map((k) => `sparsify: ${k} of 6 sites decided`));
  // with a timer: the dry run's decision, its rewrite timed (a window at this budget and length), the run's decision
  const timed: string[] = [];
  const timer: SiteTimer = async () => ({ writtenSeconds: 1, chosenSeconds: 1, rounds: 1 });
  const causal = resolve(here, '../../../../shared/fixtures/onnx/torch-exports/mha_self_causal_op17_dyn.onnx');
  await decide(loadModel(causal), { seqLen: 1024, maxError: 5, measure: timer, onProgress: (d) => timed.push(d) });
  expect(timed).toEqual(['1 of 1 sites decided', "timing site0's rewrite (site 1 of 1) against the site as written", '1 of 1 sites decided']);
});

test('decide is the prefix of optimize: the same choices, its sites still Attention nodes', async () => {
  const decidedModel = loadModel(gpt2);
  const d = await decide(decidedModel, { seqLen: 16 });
  const optimizedModel = loadModel(gpt2);
  const o = await optimize(optimizedModel, { seqLen: 16 });
  const choices = (sites: readonly { id: string; chosen: string; guarantee: string; bound: number }[]) => sites.map((s) => [s.id, s.chosen, s.guarantee, s.bound]);
  expect(choices(d.sites)).toEqual(choices(o.sites));
  expect(attentionSites(decidedModel.graph)).toHaveLength(d.sites.length);
  expect(attentionSites(optimizedModel.graph)).toHaveLength(0);
});

describe('the verifier between passes', () => {
  beforeEach(() => {
    verifications.mockClear();
  });

  test('is on in the test suite: the input graph, then the graph after every pass that ran', async () => {
    expect(process.env['ATTNOPT_VERIFY_EACH']).toBe('1');
    analyze(loadModel(tinyBert).graph);
    expect(verifications).toHaveBeenCalledTimes(1 + 2); // recognize, analyze masks
    verifications.mockClear();
    await optimize(loadModel(tinyBert), { maxError: 0 });
    expect(verifications).toHaveBeenCalledTimes(1 + 5); // recognize, analyze masks, restore, lower, prune
    verifications.mockClear();
    await decide(loadModel(tinyBert), { maxError: 0 });
    expect(verifications).toHaveBeenCalledTimes(1 + 2); // recognize, analyze masks (sparsify: no budget)
  });

  test('verifyEach: false turns it off', async () => {
    analyze(loadModel(tinyBert).graph, { verifyEach: false });
    await optimize(loadModel(tinyBert), { maxError: 0, verifyEach: false });
    expect(verifications).not.toHaveBeenCalled();
  });
});
