// The CPU backend's generated kernels (@attnopt/backend-cpu, WebAssembly SIMD128, 2 worker threads) vs
// onnxruntime's dense attention (a plain MatMul/Softmax/MatMul model from @attnopt/passes' lowering,
// graphOptimizationLevel 'all', intraOpNumThreads 2) at 8 heads, head dim 64, batch 1, bsd: our dense kernel
// and our causal window-256 kernel against onnxruntime dense on the same inputs. Interleaved runs after a
// warm-up, medians; GFLOP/s counts useful FLOPs only (4 · kept pairs · d per head), share of the 157 GFLOP/s
// fp32 peak of the 2-core AVX2+FMA machine (TOOLCHAIN.md). Times include copying Q/K/V into the kernel's
// shared memory, planning, and copying Y out into a new array (onnxruntime's include its input/output
// copies); the "output reused" rows pass one preallocated Y (CpuRunOptions.output) instead, which saves
// the page faults of a fresh multi-megabyte array. Also printed: the main-thread prepare time per call
// (plan, mask tiles, input copies: planStats) and the load average before and after (the machine is shared).
//
// Last, the ceiling: one core's throughput of independent f32x4 multiply-then-add chains in a generated
// WebAssembly loop (what the kernels' inner loops are made of; Node 20 has no relaxed-SIMD FMA by default).
//
//   npx tsx --conditions=@attnopt/source tools/bench/cpu-kernels.ts [--sizes 1024,2048,4096] [--repeats 5] [--threads 2]

import { compileAttention, CpuWorkerPool, ModuleBuilder, sharedMemory } from '@attnopt/backend-cpu';
import { type AttentionParams, attentionNode, dense, Graph, keptPairs, type MaskSpec, slidingWindow, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

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

/** GFLOP/s of one core running 12 independent chains a = a · x + y over f32x4 (2 flops per lane per step). */
function simdCeiling(): number {
  const m = new ModuleBuilder('ceiling');
  const f = m.func('run', { reps: 'i32' }, ['f32']);
  const CHAINS = 12;
  for (let c = 0; c < CHAINS; c++) f.local(`a${c}`, 'v128').f32x4Const(c + 1).set(`a${c}`);
  f.local('x', 'v128').local('y', 'v128').f32x4Const(0.9999999).set('x').f32x4Const(1e-7).set('y');
  f.forRange('i', 0, 'reps', 1, (g) => {
    for (let c = 0; c < CHAINS; c++) g.get(`a${c}`).get('x').f32x4Mul().get('y').f32x4Add().set(`a${c}`);
  });
  f.get('a0');
  for (let c = 1; c < CHAINS; c++) f.get(`a${c}`).f32x4Add();
  f.f32x4ExtractLane(0);
  const run = new WebAssembly.Instance(new WebAssembly.Module(m.build()), { env: { memory: sharedMemory(1 << 16) } }).exports['run'] as (reps: number) => number;
  run(1e6);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    run(2e7);
    best = Math.min(best, performance.now() - t0);
  }
  return (2e7 * CHAINS * 8) / (best * 1e6);
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  const loadBefore = loadavg();
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
  const prepares: string[] = [];
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
    const output = new Float32Array(n * H * D);
    const runs = {
      ort: () => session.run(feeds),
      dense: () => denseKernel.runParallel(inputs, pool),
      window: () => windowKernel.runParallel(inputs, pool),
      denseReused: () => denseKernel.runParallel(inputs, pool, { output }),
      windowReused: () => windowKernel.runParallel(inputs, pool, { output }),
    };
    const times: Record<keyof typeof runs, number[]> = { ort: [], dense: [], window: [], denseReused: [], windowReused: [] };
    // two warm-up rounds (V8 tiers the kernels up, the heap settles), then the runs interleaved in alternating
    // order, so no variant always follows the same one (a large allocation's GC lands on whichever runs next)
    for (let w = 0; w < 2; w++) for (const f of Object.values(runs)) await f();
    const entries = Object.entries(runs);
    for (let r = 0; r < REPEATS; r++) {
      for (const [name, f] of r % 2 === 0 ? entries : [...entries].reverse()) times[name as keyof typeof runs].push(await time(f));
    }
    const keptDense = n * n;
    const keptWindow = keptPairs(windowSpec, { nq: n, nk: n });
    const flops = (kept: number) => 4 * kept * D * H;
    const t = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<keyof typeof runs, number>;
    const prepMs = (k: typeof denseKernel) => {
      const xs: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        k.planStats(inputs);
        xs.push(performance.now() - t0);
      }
      return median(xs);
    };
    prepares.push(`n = ${n}: dense ${prepMs(denseKernel).toFixed(1)} ms, window ${prepMs(windowKernel).toFixed(1)} ms`);
    const gf = (kept: number, ms: number) => flops(kept) / (ms * 1e6);
    const row = (name: string, kept: number, ms: number, vsOrt: string) => {
      const g = gf(kept, ms);
      rows.push([String(n), name, ms.toFixed(1), g.toFixed(1), `${((100 * g) / PEAK).toFixed(1)}%`, vsOrt]);
    };
    row('onnxruntime dense', keptDense, t.ort, '1.00');
    row('backend-cpu dense (wasm)', keptDense, t.dense, `${(gf(keptDense, t.dense) / gf(keptDense, t.ort)).toFixed(2)} of ort GFLOP/s`);
    row('backend-cpu causal window 256 (wasm)', keptWindow, t.window, `${(t.ort / t.window).toFixed(2)}x faster than ort dense`);
    row('backend-cpu dense (wasm), output reused', keptDense, t.denseReused, `${(gf(keptDense, t.denseReused) / gf(keptDense, t.ort)).toFixed(2)} of ort GFLOP/s`);
    row('backend-cpu window 256 (wasm), output reused', keptWindow, t.windowReused, `${(t.ort / t.windowReused).toFixed(2)}x faster than ort dense`);
  }
  await pool.close();
  const header = ['n', 'kernel', 'median ms', 'GFLOP/s (useful)', '% of 157 peak', 'vs onnxruntime dense'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c]!)).join(' | ')} |`;
  console.log(`8 heads, head dim 64, batch 1, ${THREADS} threads, ${REPEATS} interleaved repeats (medians)`);
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(fmt(r));
  console.log(`main-thread prepare per call (plan, mask tiles, input copies; median of 3): ${prepares.join('; ')}`);
  console.log(`one core, f32x4 multiply-then-add chains (best of 5): ${simdCeiling().toFixed(1)} GFLOP/s`);
  console.log(`load average before: ${loadBefore}; after: ${loadavg()}`);
}

steadyMalloc();
await main();
