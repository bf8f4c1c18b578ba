// One decode step (NQ new queries, default 1, over a KV cache of T keys: past T - NQ plus the new ones) of a causal
// site lowered for onnxruntime (standard ops, opset 21): dense (causal, aligned past); window 64 + sinks 4 and the same
// guarded (budget 1e-3, key blocks of 64) as the lowering emits them, with the decode route (an If that sends a call of
// fewer than 8 (window) or 64 (guarded) new queries to the exact dense form: `window`, `guarded`), and without it (`windowSparse`,
// `guardedSparse`: the sparse forms themselves); and the site split into two head groups (the first half of the heads
// the guarded window, the rest causal) as the lowering routes it, one If around the whole split (`split`), and with
// each group routed on its own (`splitGroups`, the lowering before the split's route). Beside the times, the cost
// model's prediction for the unsplit forms (what `explain`'s "one decode step" note is made of). H heads of size D, batch 1, bhsd; 300 calls per round, 9 rounds in
// alternating order, medians of the times and of per-round ratios against dense; 2 intra-op threads.
//
//   H=8 D=64 T=4096 NQ=1 npx tsx --conditions=@attnopt/source tools/bench/decode-step.ts    (defaults: H 2, D 16, T 1024, NQ 1)

import { cpus } from 'node:os';
import { attentionCost, guardCertificateCost, onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { DECODE_ROUTE_BRANCH_SECONDS, DECODE_ROUTE_NODES, DECODE_ROUTE_BANDED_QUERIES, decodeRouteThreshold, HEAD_GROUP, type HeadGroup, type HeadGroupAnnotation, lowerAttentionPass, splitHeads } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { median, medianRatio, timeSideBySide } from '../src/side-by-side.js';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';

steadyMalloc();

process.env.ORT_DISABLE_TELEMETRY = '1';
const H = Number(process.env.H ?? 2);
const D = Number(process.env.D ?? 16);
const T = Number(process.env.T ?? 1024);
const NQ = Number(process.env.NQ ?? 1);
const CALLS = 300;
const ROUNDS = 9;
const BASE: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec: causal('past') };
const WINDOW = intersect(causal('past'), union(slidingWindow(63, 0, 'past'), sinks(4)));
const GUARD = { budget: 1e-3, blockSize: 64, baseline: causal('past') };

/**
 * The site with past keys, lowered for onnxruntime (`route` false: without the decode route); `split`: as two head
 * groups, the guarded window and causal, routed whole or each group on its own.
 */
function siteModel(spec: AttentionParams['spec'], guarded: boolean, route = true, split?: 'whole' | 'groups'): Uint8Array {
  const g = new Graph('decode_step');
  const input = (name: string, seq: string) => g.addInput(new Value(name, tensorType('f32', [1, H, seq, D])));
  const [q, k, v] = ['q', 'k', 'v'].map((name) => input(name, 'seq'));
  const [pastKey, pastValue] = ['past_key', 'past_value'].map((name) => input(name, 'past'));
  const y = new Value('y', tensorType('f32'));
  const node = g.addNode(attentionNode({ ...BASE, spec, ...(guarded ? { guard: GUARD } : {}) }, { q: q!, k: k!, v: v!, pastKey: pastKey!, pastValue: pastValue! }, { y }, 'attn'));
  g.outputs.push(y);
  if (split !== undefined) {
    const heads = (h0: number, h1: number) => Array.from({ length: h1 - h0 }, (_, k) => h0 + k);
    const groups = [
      { heads: heads(0, H / 2), kvHeads: heads(0, H / 2), spec: WINDOW, guard: GUARD },
      { heads: heads(H / 2, H), kvHeads: heads(H / 2, H), spec: causal('past') },
    ] as unknown as HeadGroup[];
    for (const n of splitHeads(node, BASE, groups, 'site0')) {
      const a = n.annotations.get(HEAD_GROUP) as HeadGroupAnnotation;
      if (split === 'groups') n.annotations.set(HEAD_GROUP, { site: a.site, heads: a.heads, kvHeads: a.kvHeads });
    }
  }
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(route ? {} : { decodeQueries: 0 }) })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const uniform = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

async function main(): Promise<void> {
  console.log(`# decode-step bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads 2, node ${process.version}, malloc ${mallocMode()}`);
  const names = ['dense', 'window', 'guarded', 'windowSparse', 'guardedSparse', 'split', 'splitGroups'] as const;
  const bytes = {
    dense: siteModel(causal('past'), false),
    window: siteModel(WINDOW, false),
    guarded: siteModel(WINDOW, true),
    windowSparse: siteModel(WINDOW, false, false),
    guardedSparse: siteModel(WINDOW, true, false),
    split: siteModel(causal('past'), false, true, 'whole'),
    splitGroups: siteModel(causal('past'), false, true, 'groups'),
  };
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = Object.fromEntries(await Promise.all(names.map(async (m) => [m, await ort.InferenceSession.create(bytes[m], options)] as const))) as Record<(typeof names)[number], ort.InferenceSession>;
  const tensor = (seq: number) => new ort.Tensor('float32', uniform(H * seq * D), [1, H, seq, D]);
  const feeds = { q: tensor(NQ), k: tensor(NQ), v: tensor(NQ), past_key: tensor(T - NQ), past_value: tensor(T - NQ) };
  const times = await timeSideBySide(sessions, names, feeds, CALLS, ROUNDS);
  const ratio = (m: (typeof names)[number]) => medianRatio(times[m], times.dense);
  // the cost model's prediction for the same forms at this call (a routed call: the dense form and the route's 4 nodes)
  const dims = { batch: 1, nq: NQ, nk: T, past: T - NQ };
  const profile = onnxruntimeCpuProfile;
  const dense = attentionCost(BASE, dims, profile).time;
  const window = attentionCost({ ...BASE, spec: WINDOW }, dims, profile);
  const guarded = window.time + guardCertificateCost({ ...BASE, spec: WINDOW }, dims, profile, GUARD.blockSize, window.computedPairs);
  const routeCost = dense + DECODE_ROUTE_NODES * profile.opOverheadSeconds + DECODE_ROUTE_BRANCH_SECONDS;
  const routed = { window: NQ < decodeRouteThreshold('banded', undefined)!, guarded: NQ < decodeRouteThreshold('banded', GUARD.blockSize)! };
  const ms = (s: number) => `${(s * 1e3).toFixed(3)} ms`;
  const measured = (m: (typeof names)[number]) => `${m} ${median(times[m]).toFixed(3)} ms${m === 'dense' ? '' : ` (${ratio(m).toFixed(2)}x)`}`;
  console.log(`H ${H}, d ${D}, T ${T}, ${NQ} new queries (the route sends fewer than ${DECODE_ROUTE_BANDED_QUERIES} (window) and ${GUARD.blockSize} (guarded) to the dense form):`);
  console.log(`  measured:  ${names.map(measured).join(', ')}`);
  const predicted = (m: string, t: number) => `${m} ${ms(t)}${m === 'dense' ? '' : ` (${(t / dense).toFixed(2)}x)`}`;
  console.log(
    `  predicted: ${[predicted('dense', dense), predicted('window', routed.window ? routeCost : window.time), predicted('guarded', routed.guarded ? routeCost : guarded), predicted('windowSparse', window.time), predicted('guardedSparse', guarded)].join(', ')}`,
  );
}

await main();
