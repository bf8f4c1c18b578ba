// Where the banded lowering spends its time in onnxruntime: the single-attention model of onnx-speedup.ts
// (8 heads, head dim 64, batch 1, layout bsd, causal ∩ (window 256 ∪ sinks 4), symbolic sequence length)
// lowered at each query block size, timed side by side (interleaved, medians), then one profiled run per
// block size (session option enableProfiling) summed by op type.
//
//   npx tsx --conditions=@attnopt/source tools/bench/banded-profile.ts [--n 4096] [--blocks 32,64,128,256] [--repeats 5] [--profile]

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type AttentionParams, attentionNode, causal, Graph, intersect, type MaskSpec, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const n = Number(opt('--n', '4096'));
const blocks = opt('--blocks', '32,64,128,256').split(',').map(Number);
const repeats = Number(opt('--repeats', '5'));
const window = Number(opt('--window', '256'));
const sinkCount = Number(opt('--sinks', '4'));
const H = 8;
const D = 64;
// no spinning: an idle session's intra-op threads would otherwise spin beside the one that runs (2 vCPUs)
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

export function bandedModel(spec: MaskSpec, blockSize: number | undefined, heads = H, headDim = D): Uint8Array {
  const params: AttentionParams = { numHeads: heads, kvNumHeads: heads, headDim, vHeadDim: headDim, scale: 1 / Math.sqrt(headDim), softcap: 0, layout: 'bsd', spec };
  const g = new Graph('attention');
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', ['batch', 'seq', heads * headDim]))));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21, ...(blockSize !== undefined ? { blockSize } : {}) })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const spec = sinkCount > 0 ? intersect(causal(), union(slidingWindow(window - 1, 0), sinks(sinkCount))) : intersect(causal(), slidingWindow(window - 1, 0));
  const data = new Float32Array(n * H * D).map((_, i) => Math.sin(i * 0.37) * 0.5);
  const feeds = { q: new ort.Tensor('float32', data, [1, n, H * D]), k: new ort.Tensor('float32', data, [1, n, H * D]), v: new ort.Tensor('float32', data, [1, n, H * D]) };
  console.log(`load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  // block 0: the dense causal model (the original of onnx-speedup.ts)
  const sessions = await Promise.all(blocks.map((b) => ort.InferenceSession.create(b === 0 ? bandedModel(causal(), undefined) : bandedModel(spec, b), SESSION)));
  const times: number[][] = blocks.map(() => []);
  for (const s of sessions) await s.run(feeds);
  for (let r = 0; r < repeats; r++) {
    const order = r % 2 === 0 ? blocks.map((_, k) => k) : blocks.map((_, k) => blocks.length - 1 - k);
    for (const k of order) {
      const t = performance.now();
      await sessions[k]!.run(feeds);
      times[k]!.push(performance.now() - t);
    }
  }
  for (const [k, b] of blocks.entries()) console.log(`block ${b}: median ${median(times[k]!).toFixed(1)} ms (${times[k]!.map((t) => t.toFixed(0)).join(' ')})`);
  for (const s of sessions) await s.release();
  if (!args.includes('--profile')) return;
  for (const b of blocks.filter((x) => x > 0)) {
    const s = await ort.InferenceSession.create(bandedModel(spec, b), { ...SESSION, enableProfiling: true, profileFilePrefix: `/tmp/banded-profile-${b}` });
    await s.run(feeds);
    await s.run(feeds);
    s.endProfiling();
    await s.release();
    const prefix = `banded-profile-${b}_`;
    const file = join('/tmp', readdirSync('/tmp').filter((f) => f.startsWith(prefix)).sort().at(-1)!);
    const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }[];
    const byOp = new Map<string, number>();
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const last = runs.at(-1)!; // the second run: the first one allocates
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < last.ts) continue;
      byOp.set(e.args?.op_name ?? '?', (byOp.get(e.args?.op_name ?? '?') ?? 0) + e.dur);
    }
    const top = [...byOp].sort((p, q) => q[1] - p[1]);
    console.log(`block ${b}: profiled run ${((runs.at(-1)?.dur ?? 0) / 1e3).toFixed(1)} ms; by op (ms): ${top.map(([op, us]) => `${op} ${(us / 1e3).toFixed(1)}`).join(', ')}`);
    rmSync(file, { force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  steadyMalloc();
  await main();
}
