// One decode step (1 query over a KV cache of T keys: past T - 1 plus the new one) of a causal site lowered three ways
// for onnxruntime (standard ops, opset 21): dense (causal, aligned past), window 64 + sinks 4 banded, and the same
// guarded (budget 1e-3, key blocks of 64). Beside the times, the cost model's prediction for the same three forms
// (what `explain`'s "one decode step" note is made of). H heads of size D, batch 1, bhsd; 300 calls per round,
// 9 rounds in alternating order, medians of the times and of per-round ratios; 2 intra-op threads.
//
//   H=8 D=64 T=4096 npx tsx --conditions=@attnopt/source tools/bench/decode-step.ts    (defaults: H 2, D 16, T 1024)

import { cpus } from 'node:os';
import { attentionCost, guardCertificateCost, onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';

steadyMalloc();

process.env.ORT_DISABLE_TELEMETRY = '1';
const H = Number(process.env.H ?? 2);
const D = Number(process.env.D ?? 16);
const T = Number(process.env.T ?? 1024);
const CALLS = 300;
const ROUNDS = 9;
const BASE: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal('past') };
const WINDOW = intersect(causal('past'), union(slidingWindow(63, 0, 'past'), sinks(4)));
const GUARD = { budget: 1e-3, blockSize: 64, baseline: causal('past') };

/** The site with past keys, lowered for onnxruntime. */
function siteModel(spec: AttentionParams['spec'], guarded: boolean): Uint8Array {
  const g = new Graph('decode_step');
  const input = (name: string, seq: string) => g.addInput(new Value(name, tensorType('f32', [1, H, seq, D])));
  const [q, k, v] = ['q', 'k', 'v'].map((name) => input(name, 'seq'));
  const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => input(name, 'past'));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode({ ...BASE, spec, ...(guarded ? { guard: GUARD } : {}) }, { q: q!, k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const uniform = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

async function main(): Promise<void> {
  console.log(`# decode-step bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads 2, node ${process.version}, malloc ${mallocMode()}`);
  const names = ['dense', 'window', 'guarded'] as const;
  const bytes = { dense: siteModel(causal('past'), false), window: siteModel(WINDOW, false), guarded: siteModel(WINDOW, true) };
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = { dense: await ort.InferenceSession.create(bytes.dense, options), window: await ort.InferenceSession.create(bytes.window, options), guarded: await ort.InferenceSession.create(bytes.guarded, options) };
  const tensor = (seq: number) => new ort.Tensor('float32', uniform(H * seq * D), [1, H, seq, D]);
  const feeds = { q: tensor(1), k: tensor(1), v: tensor(1), past_key: tensor(T - 1), past_value: tensor(T - 1) };
  const time = async (s: ort.InferenceSession) => {
    const t0 = performance.now();
    for (let r = 0; r < CALLS; r++) await s.run(feeds);
    return (performance.now() - t0) / CALLS;
  };
  for (const m of names) await time(sessions[m]);
  const times: Record<string, number[]> = { dense: [], window: [], guarded: [] };
  for (let r = 0; r < ROUNDS; r++) for (const m of r % 2 === 0 ? names : [...names].reverse()) times[m]!.push(await time(sessions[m]));
  const ratio = (m: string) => median(times[m]!.map((t, r) => t / times.dense![r]!));
  // the cost model's prediction for the same forms at this call
  const dims = { batch: 1, nq: 1, nk: T, past: T - 1 };
  const dense = attentionCost(BASE, dims, onnxruntimeCpuProfile).time;
  const window = attentionCost({ ...BASE, spec: WINDOW }, dims, onnxruntimeCpuProfile);
  const guarded = window.time + guardCertificateCost({ ...BASE, spec: WINDOW }, dims, onnxruntimeCpuProfile, GUARD.blockSize, window.computedPairs);
  const ms = (s: number) => `${(s * 1e3).toFixed(3)} ms`;
  console.log(`H ${H}, d ${D}, T ${T}:`);
  console.log(`  measured:  dense ${median(times.dense!).toFixed(3)} ms, window ${median(times.window!).toFixed(3)} ms (${ratio('window').toFixed(2)}x), guarded ${median(times.guarded!).toFixed(3)} ms (${ratio('guarded').toFixed(2)}x)`);
  console.log(`  predicted: dense ${ms(dense)}, window ${ms(window.time)} (${(window.time / dense).toFixed(2)}x), guarded ${ms(guarded)} (${(guarded / dense).toFixed(2)}x)`);
}

await main();
