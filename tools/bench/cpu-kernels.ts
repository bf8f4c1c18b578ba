// The CPU backend's generated kernels (@attnopt/backend-cpu, WebAssembly SIMD128, 2 worker threads) vs
// onnxruntime's dense attention (a plain MatMul/Softmax/MatMul model from @attnopt/passes' lowering,
// graphOptimizationLevel 'all', intraOpNumThreads 2) at 8 heads, head dim 64, batch 1, bsd: our dense kernel
// and our causal window-256 kernel against onnxruntime dense on the same inputs. Interleaved runs after a
// warm-up, medians; GFLOP/s counts useful FLOPs only (4 · kept pairs · d per head), share of the 157 GFLOP/s
// fp32 peak of the 2-core AVX2+FMA machine (TOOLCHAIN.md). Times include packing Q/K/V into the kernel's
// shared memory and unpacking Y (onnxruntime's include its input/output copies).
//
//   npx tsx --conditions=@attnopt/source tools/bench/cpu-kernels.ts [--sizes 1024,2048,4096] [--repeats 5] [--threads 2]

import { compileAttention, CpuWorkerPool } from '@attnopt/backend-cpu';
import { type AttentionParams, attentionNode, dense, Graph, keptPairs, type MaskSpec, slidingWindow, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SIZES = opt('--sizes', '1024,2048,4096').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '5'));
const THREADS = Number(opt('--threads', '2'));
const H = 8;
const D = 64;
const PEAK = 157;

const paramsOf = (spec: MaskSpec): AttentionParams => ({
  numHeads: H,
  kvNumHeads: H,
  headDim: D,
  vHeadDim: D,
  scale: 1 / Math.sqrt(D),
  softcap: 0,
  layout: 'bsd',
  spec,
});

function onnxDense(): Uint8Array {
  const g = new Graph('attention');
  const shape = ['batch', 'seq', H * D];
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', shape))));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(paramsOf(dense), { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const random = (n: number, seed: number) => {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
};

async function main(): Promise<void> {
  const session = await ort.InferenceSession.create(onnxDense(), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const pool = new CpuWorkerPool(THREADS);
  const denseKernel = compileAttention(paramsOf(dense));
  const windowSpec = slidingWindow(255, 0);
  const windowKernel = compileAttention(paramsOf(windowSpec));
  const rows: string[][] = [];
  for (const n of SIZES) {
    const [q, k, v] = [1, 2, 3].map((s) => random(n * H * D, s * 7919 + n)) as [Float32Array, Float32Array, Float32Array];
    const shape = [1, n, H * D];
    const feeds = { q: new ort.Tensor('float32', q, shape), k: new ort.Tensor('float32', k, shape), v: new ort.Tensor('float32', v, shape) };
    const inputs = { q: { shape, data: q }, k: { shape, data: k }, v: { shape, data: v } };
    const time = async (f: () => Promise<unknown>) => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const runs = {
      ort: () => session.run(feeds),
      dense: () => denseKernel.runParallel(inputs, pool),
      window: () => windowKernel.runParallel(inputs, pool),
    };
    const times: Record<keyof typeof runs, number[]> = { ort: [], dense: [], window: [] };
    for (const f of Object.values(runs)) await f(); // warm-up
    for (let r = 0; r < REPEATS; r++) for (const [name, f] of Object.entries(runs)) times[name as keyof typeof runs].push(await time(f));
    const keptDense = n * n;
    const keptWindow = keptPairs(windowSpec, { nq: n, nk: n });
    const flops = (kept: number) => 4 * kept * D * H;
    const t = { ort: median(times.ort), dense: median(times.dense), window: median(times.window) };
    const gf = (kept: number, ms: number) => flops(kept) / (ms * 1e6);
    const row = (name: string, kept: number, ms: number, vsOrt: string) => {
      const g = gf(kept, ms);
      rows.push([String(n), name, ms.toFixed(1), g.toFixed(1), `${((100 * g) / PEAK).toFixed(1)}%`, vsOrt]);
    };
    row('onnxruntime dense', keptDense, t.ort, '1.00');
    row('backend-cpu dense (wasm)', keptDense, t.dense, `${(gf(keptDense, t.dense) / gf(keptDense, t.ort)).toFixed(2)} of ort GFLOP/s`);
    row('backend-cpu causal window 256 (wasm)', keptWindow, t.window, `${(t.ort / t.window).toFixed(2)}x faster than ort dense`);
  }
  await pool.close();
  const header = ['n', 'kernel', 'median ms', 'GFLOP/s (useful)', '% of 157 peak', 'vs onnxruntime dense'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c]!)).join(' | ')} |`;
  console.log(`8 heads, head dim 64, batch 1, ${THREADS} threads, ${REPEATS} interleaved repeats (medians)`);
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(fmt(r));
}

await main();
