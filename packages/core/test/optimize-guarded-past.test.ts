// A decoder whose attention takes the KV cache as an input (the tiny Qwen: two com.microsoft GroupQueryAttention
// sites with past_key / past_value and seqlens_k, causal(past); each row's cache shifted to the buffer's end and
// the slots before it masked by a boolean key bias, as the lift reads a cache that a batch may pad) gets the
// guarded tier. At 1024 tokens (at 512 the key bias's share of the guarded forms' cost keeps them dense) with the default
// options every window and top-k blocks form is evaluated as a guarded form (no "past keys input" refusal); on the
// generated inputs the heads are diffuse, so the predicted fallback rate keeps both sites dense. With a budget of 2
// the chooser takes guarded windows aligned past, and the model
// optimized so passes verify on inputs it was not calibrated on (another seed), within its certificate, with the
// run-time fallback rate of each guarded site reported. A decode step of that model (1 new query over 600 cached keys)
// takes each site's exact dense form (the lowering's decode route), here the model's own GroupQueryAttention node: its
// outputs are the original's to float rounding in onnxruntime and in attnopt's CPU executor, and no row is certified. Priced with the decode steps after each call
// (each routed step the dense form plus the route's If), the sites stay as written. Split into head groups, a site
// takes one route around the whole split, whose dense branch is the GroupQueryAttention node again.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { attentionParams, causal, intersect, type Node, sinks, slidingWindow, union } from '@attnopt/ir';
import { applyDecision, type SiteDecision } from '@attnopt/passes';
import { analyze, attentionSites, decide, generateInputs, GUARANTEES_METADATA, type GuaranteesMetadata, loadModel, optimize, verifyModels, writeModel } from '../src/index.js';
import { lower } from '../src/pipeline/lower.js';
import { compileState } from '../src/pipeline/state.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const QWEN = path.resolve(here, '../../../../shared/fixtures/onnx/genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/1d392aee_decoder.onnx');
const SEQ = 1024;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-guarded-past-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

it('default options: the windows of a site with past keys are evaluated as guarded forms', async () => {
  const d = await decide(loadModel(QWEN), { maxError: 0.01, seqLen: SEQ });
  expect(d.sites.length).toBe(2);
  for (const s of d.sites) {
    const tried = s.decision!.tried;
    const windows = tried.filter((t) => /^(window|intersect\(causal\(align=past\), union\(window)/.test(t.spec) && t.fallbackRate !== null);
    expect(windows.length, s.id).toBeGreaterThan(0);
    for (const t of windows) expect(t.guardReason, t.spec).toBeUndefined();
    for (const t of tried) expect(t.guardReason ?? '', t.spec).not.toMatch(/not lowered guarded yet: a past keys input/);
    for (const t of tried.filter((t) => /topk_blocks/.test(t.spec) && t.bound !== null)) expect(t.guardReason, t.spec).toBeUndefined();
    // diffuse heads on generated inputs: the guarded forms would recompute too many rows
    expect(s.decision!.reasonDense, s.id).toMatch(/guarded forms would recompute too many rows/);
  }
}, 120_000);

it('budget 2: guarded windows aligned past, within the certificate on inputs of another seed', async () => {
  const r = await optimize(loadModel(QWEN), { maxError: 2, seqLen: SEQ });
  for (const s of r.sites) {
    expect(s.guarantee, s.id).toBe('guarded');
    expect(s.chosen, s.id).toMatch(/align=past/);
  }
  const file = path.join(scratch, 'qwen.onnx');
  writeModel(file, r.model);
  const v = await verifyModels(QWEN, file, r.model, generateInputs(loadModel(QWEN), { seed: 1, seqLen: SEQ }));
  expect(v.withinCertified).toBe(true);
  expect(v.passed, v.failures.join('; ')).toBe(true);
  // one fallback rate per guarded Attention: a site, or each guarded head group of a split site
  const guardedNodes = r.sites.reduce((a, s) => a + (s.groups ? s.groups.filter((g) => g.guarantee === 'guarded').length : 1), 0);
  expect(v.guardFallback?.length).toBe(guardedNodes);
  // a decode step: every guarded site takes its exact dense form (no row certified), in both runtimes; that form is
  // the exporter's own GroupQueryAttention node (the site was lifted from it), not a lowering of it
  const routes = r.model.graph.nodes.filter((n) => n.op === 'If' && n.name.endsWith('/decode_route'));
  expect(routes).toHaveLength(guardedNodes);
  // optimize's report and the metadata say so, per site
  const metadata = JSON.parse(r.model.proto.metadataProps!.find((e) => e.key === GUARANTEES_METADATA)!.value!) as GuaranteesMetadata;
  for (const s of r.sites) {
    expect(s.decodeRoute, s.id).toBe(64);
    expect(metadata.sites[s.id]!.decodeRoute?.queries, s.id).toBe(64);
  }
  for (const n of routes) expect(n.subgraphs()[0]!.nodes.map((x) => x.op).sort(), n.name).toEqual(['Constant', 'GroupQueryAttention']);
  const step = [...generateInputs(loadModel(QWEN), { seed: 2, seqLen: 1, dims: { past_seq_len: 600, total_seq_len: 601 } })];
  for (const runtime of ['onnxruntime', 'attnopt-cpu'] as const) {
    const d = await verifyModels(QWEN, file, r.model, step, { runtime, runs: 1 });
    expect(d.guardFallback?.length, runtime).toBe(guardedNodes);
    for (const g of d.guardFallback!) expect(g.checked, `${runtime} ${g.site}`).toBe(0);
    // onnxruntime runs the same dense ops in both models; attnopt's CPU executor runs the original's fused site with
    // its own kernel and the lowered dense form op by op: float16 logits differ there by float16 rounding (ULP 2^-10 at 1)
    expect(d.passed, `${runtime}: ${d.failures.join('; ')}`).toBe(true);
    for (const o of d.outputs) expect(o.maxAbsError, `${runtime} ${o.name}`).toBeLessThanOrEqual(runtime === 'onnxruntime' ? 1e-5 : 2 ** -10);
  }
}, 120_000);

it('decodeSteps: priced with the decode steps after each call, the sites stay as written where the steps outweigh the call', async () => {
  const at = (decodeSteps: number) => decide(loadModel(QWEN), { maxError: 2, seqLen: SEQ, decodeSteps, measure: false });
  const prompt = await at(0);
  const generating = await at(1000);
  for (const [s, g] of prompt.sites.map((s, k) => [s, generating.sites[k]!] as const)) {
    expect(s.decision!.guarantee, `${s.id}: ${s.decision!.reasonDense} ${s.decision!.notes.join(' | ')}`).toBe('guarded');
    // explain says what a decode step runs
    expect(s.decision!.notes.some((n) => /fewer than 64 new queries \(a decode step\) runs the site's exact dense form/.test(n)), s.id).toBe(true);
    // one decode step of the rewrite is predicted slower than the site's: 1000 steps outweigh the call's gain
    const step = s.decision!.decodeStep!;
    expect(step.rewrittenSeconds).toBeGreaterThan(step.asWrittenSeconds);
    expect(1000 * (step.rewrittenSeconds - step.asWrittenSeconds)).toBeGreaterThan(s.decision!.timeBefore - s.decision!.timeAfter);
    expect(g.decision!.guarantee, g.id).toBe('exact');
    expect(g.decision!.notes.some((n) => n.includes('plus 1000 decode steps')), g.id).toBe(true);
    expect(g.decision!.reasonDense, g.id).toContain("no candidate is cheaper than causal(align=past) on onnxruntime-cpu over one call of the calibration's shape and 1000 decode steps");
  }
}, 120_000);

// A site split into head groups (heads 0-1 a guarded window, heads 2-3 the site's own causal(past); each group whole
// key/value heads) lowers to one decode route around the whole split: a decode step runs the exporter's
// GroupQueryAttention node for every head, not each group's Slices of the cache, dense form and Concat.
it('a site split into head groups: one route around the whole split, its dense branch the GroupQueryAttention node', async () => {
  const model = loadModel(QWEN);
  analyze(model.graph);
  const sites = attentionSites(model.graph).map((s) => s.node);
  const groupNodes: Node[] = [];
  for (const { id, node } of attentionSites(model.graph)) {
    const params = attentionParams(node);
    const window = intersect(causal('past'), union(slidingWindow(63, 0, 'past'), sinks(4)));
    expect(params.spec).toEqual(causal('past'));
    const guard = { budget: 2, blockSize: 64, baseline: params.spec };
    const groups = [
      { heads: [0, 1], kvHeads: [0], spec: window, guard },
      { heads: [2, 3], kvHeads: [1], spec: params.spec },
    ];
    groupNodes.push(...(applyDecision(node, params, { id, groups } as unknown as SiteDecision, id) ?? []));
  }
  // optimize's lower step: it records each route for --json and the metadata (the site's, around the split, and each
  // group's own count) before the lowering replaces the nodes
  const state = compileState(model, {});
  lower.run(state);
  expect(sites.map((n) => state.decodeRoutes.get(n))).toEqual([64, 64]);
  expect(groupNodes.map((n) => state.decodeRoutes.get(n))).toEqual([64, undefined, 64, undefined]);
  const routes = model.graph.nodes.filter((n) => n.op === 'If' && n.name.endsWith('/decode_route'));
  expect(routes).toHaveLength(2);
  for (const n of routes) {
    expect(n.subgraphs()[0]!.nodes.map((x) => x.op).sort(), n.name).toEqual(['Constant', 'GroupQueryAttention']);
    expect(n.subgraphs()[1]!.nodes.some((x) => x.op === 'Slice'), n.name).toBe(true);
  }
  expect(model.graph.nodes.some((n) => n.op === 'Slice' && n.name.includes('heads'))).toBe(false);
  const file = path.join(scratch, 'qwen-split.onnx');
  writeModel(file, model);
  // a decode step: every output the original's, exactly (the same node), in both runtimes; no row certified
  const step = [...generateInputs(loadModel(QWEN), { seed: 2, seqLen: 1, dims: { past_seq_len: 600, total_seq_len: 601 } })];
  for (const runtime of ['onnxruntime', 'attnopt-cpu'] as const) {
    const d = await verifyModels(QWEN, file, loadModel(file), step, { runtime, runs: 1 });
    expect(d.guardFallback?.map((g) => [g.site, g.checked]), runtime).toEqual([
      ['site0.heads0-1', 0],
      ['site1.heads0-1', 0],
    ]);
    for (const o of d.outputs) expect(o.maxAbsError, `${runtime} ${o.name}`).toBe(0);
  }
}, 120_000);
