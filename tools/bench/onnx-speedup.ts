// onnxruntime time and peak RSS, original vs optimized, on a single-attention model (8 heads, head dim 64,
// batch 1, layout bsd, symbolic sequence length):
//   original:  decomposed causal attention (the IR's Attention lowered densely: n x n scores and keep-mask);
//   native:    onnxruntime's fastest native alternative, com.microsoft GroupQueryAttention with
//              local_window_size 256 (causal window 256, no sinks: slightly less work than the optimized spec);
//   optimized: causal ∩ (window 256 ∪ sinks 4) lowered banded (the form sparsify chooses for local attention
//              with sinks; what it actually chooses on the generated local-attention data is printed too);
//   ort form:  the same spec lowered in the onnxruntime form (lowerAttentionPass native 'onnxruntime', opset 23:
//              the same blocks, windows and bias, each block's attention by one ONNX Attention op).
// FLOP ratio: the MatMul FLOPs of the original (4 n² d per head) over those the banded graph computes
// (4 · padded n · keys per query · d per head, keys per query = the extra rows + the block's band).
// Times: both sessions in this process, graphOptimizationLevel 'all', 2 intra-op threads, one warm-up each,
// then the runs interleaved in alternating order; medians. Peak RSS: one child process per (model, n) that
// creates the session and runs once (process.resourceUsage().maxRSS), so the two models never share a heap.
// Dense runs stop at the first n whose estimate exceeds the memory available or that took > 60 s.
//
//   npx tsx --conditions=@attnopt/source tools/bench/onnx-speedup.ts [--sizes 1024,2048,4096,8192,16384] [--repeats 3] [--append]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus, freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, Graph, intersect, loweringChoice, type MaskSpec, printSpec, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { chooseSiteSpec, lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { inputX, layerInputs, longAttentionModel } from '../src/gen/long-attention.js';
import { nativeFeeds, nativeModel } from './native-ort-gqa.js';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const H = 8;
const D = 64;
// no spinning: an idle session's intra-op threads would otherwise spin beside the one that runs (2 vCPUs)
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

function feeds(n: number): Record<string, ort.Tensor> {
  const data = new Float32Array(n * H * D).map((_, i) => Math.sin(i) * 0.5);
  const t = () => new ort.Tensor('float32', data, [1, n, H * D]);
  return { q: t(), k: t(), v: t() };
}

// child: node onnx-speedup.ts --child MODEL N  ->  one JSON line {maxRssMB, ms}
if (args[0] === '--child') {
  const [, path, nText] = args;
  const n = Number(nText);
  const session = await ort.InferenceSession.create(readFileSync(path!), SESSION);
  let ms = 0;
  if (n > 0) {
    const f = path!.endsWith('native.onnx') ? { ...feeds(n), ...nativeFeeds(n) } : feeds(n);
    const t = performance.now();
    await session.run(f);
    ms = performance.now() - t;
  }
  console.log(JSON.stringify({ maxRssMB: process.resourceUsage().maxRSS / 1024, ms }));
  process.exit(0);
}

const SIZES = opt('--sizes', '1024,2048,4096,8192,16384').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '3'));
const WINDOW = 256;
const ORIGINAL: MaskSpec = causal();
const OPTIMIZED: MaskSpec = intersect(causal(), union(slidingWindow(WINDOW - 1, 0), sinks(4)));

/** Original MatMul FLOPs over the banded graph's (both 4 · queries · keys · d per head). */
function flopRatio(n: number): number {
  const choice = loweringChoice(OPTIMIZED);
  if (choice.strategy !== 'banded') throw new Error(`${printSpec(OPTIMIZED)} does not lower banded: ${choice.why}`);
  const padded = Math.ceil(n / choice.blockSize) * choice.blockSize;
  return (n * n) / (padded * choice.keysPerQuery);
}

function build(spec: MaskSpec, options: { native?: 'onnxruntime'; opset?: number } = {}): Uint8Array {
  const opset = options.opset ?? 21;
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bsd', spec };
  const g = new Graph('attention');
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', ['batch', 'seq', H * D]))));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset, ...(options.native ? { native: options.native } : {}) })]);
  return exportOnnx(newOnnxModel(g, { opset }));
}

/** What sparsify chooses on onnxruntime-cpu for the generated local-attention layer (4 heads, d 64) at n = 1024. */
function sparsifyChoice(): string {
  const model = longAttentionModel(1024);
  const samples = [1, 2].map((seed) => {
    const { q, k, v } = layerInputs(model, 0, inputX(model, seed));
    const shape = [1, 1024, model.params.numHeads * model.params.headDim];
    return { q: { shape, data: q }, k: { shape, data: k }, v: { shape, data: v } };
  });
  const d = chooseSiteSpec(model.params, { id: 'attention0', samples }, { target: onnxruntimeCpuProfile, seed: 0 });
  const how = d.reasonDense ?? `bound ${d.bound.toExponential(2)}, predicted ${(d.timeBefore * 1e3).toFixed(1)} -> ${(d.timeAfter * 1e3).toFixed(1)} ms`;
  return `${d.chosen} (${loweringChoice(d.chosenSpec).strategy}; ${how})`;
}

function child(path: string, n: number): { maxRssMB: number; ms: number } | string {
  const script = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, script, '--child', path, String(n)], { encoding: 'utf8', timeout: 180_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { maxRssMB: number; ms: number };
  } catch {
    return `failed (${r.signal ?? `exit ${r.status}`})`;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const denseBytes = (n: number) => 3 * 4 * H * n * n; // input and output of an elementwise op over the scores + the mask

async function main(): Promise<void> {
  const loadBefore = readFileSync('/proc/loadavg', 'utf8').trim();
  const t0 = performance.now();
  const chosen = sparsifyChoice();
  console.error(`sparsify on onnxruntime-cpu (generated local layer, n = 1024): ${chosen}`);
  const dir = mkdtempSync(join(tmpdir(), 'onnx-speedup-'));
  const paths = { original: join(dir, 'original.onnx'), native: join(dir, 'native.onnx'), optimized: join(dir, 'optimized.onnx'), ortForm: join(dir, 'optimized-ort.onnx') };
  writeFileSync(paths.original, build(ORIGINAL));
  writeFileSync(paths.native, nativeModel(WINDOW));
  writeFileSync(paths.optimized, build(OPTIMIZED));
  writeFileSync(paths.ortForm, build(OPTIMIZED, { native: 'onnxruntime', opset: 23 }));
  const sessions = {
    original: await ort.InferenceSession.create(paths.original, SESSION),
    native: await ort.InferenceSession.create(paths.native, SESSION),
    optimized: await ort.InferenceSession.create(paths.optimized, SESSION),
    ortForm: await ort.InferenceSession.create(paths.ortForm, SESSION),
  };
  const idle = { original: child(paths.original, 0), optimized: child(paths.optimized, 0) };
  type Model = 'original' | 'native' | 'optimized' | 'ortForm';
  interface Row { n: number; original?: number; native: number; optimized: number; ortForm: number; rssOriginal?: number | string; rssNative: number | string; rssOptimized: number | string; rssOrtForm: number | string; skipped?: string }
  const rows: Row[] = [];
  let denseStop: string | undefined;
  for (const n of SIZES) {
    const f = feeds(n);
    const fn = { ...f, ...nativeFeeds(n) };
    const feedsOf = (w: Model) => (w === 'native' ? fn : f);
    const runDense = denseStop === undefined && denseBytes(n) < 0.8 * freemem();
    if (denseStop === undefined && !runDense) denseStop = `dense skipped from n = ${n}: its scores need about ${(denseBytes(n) / 2 ** 30).toFixed(1)} GiB, ${(freemem() / 2 ** 30).toFixed(1)} GiB free`;
    const times: Record<Model, number[]> = { original: [], native: [], optimized: [], ortForm: [] };
    const which: Model[] = runDense ? ['original', 'native', 'optimized', 'ortForm'] : ['native', 'optimized', 'ortForm'];
    for (const w of which) {
      const t = performance.now();
      await sessions[w].run(feedsOf(w)); // warm-up
      if (w === 'original' && performance.now() - t > 60_000) denseStop = `dense stopped after n = ${n}: one run took ${((performance.now() - t) / 1e3).toFixed(0)} s`;
    }
    const repeats = runDense && n >= 8192 ? Math.min(REPEATS, 2) : REPEATS;
    for (let r = 0; r < repeats; r++) {
      for (const w of r % 2 === 0 ? which : [...which].reverse()) {
        const t = performance.now();
        await sessions[w].run(feedsOf(w));
        times[w].push(performance.now() - t);
      }
    }
    const row: Row = { n, native: median(times.native), optimized: median(times.optimized), ortForm: median(times.ortForm), rssNative: '', rssOptimized: '', rssOrtForm: '' };
    if (runDense) {
      row.original = median(times.original);
      const next = SIZES[SIZES.indexOf(n) + 1];
      if (next !== undefined && denseStop === undefined && row.original * (next / n) ** 2 > 60_000) {
        denseStop = `dense skipped from n = ${next}: predicted > 60 s a run (${(row.original / 1e3).toFixed(1)} s at n = ${n}, times ${((next / n) ** 2).toFixed(0)})`;
      }
    } else {
      row.skipped = denseStop!;
    }
    rows.push(row);
    console.error(`n=${n}: original ${row.original?.toFixed(1) ?? '-'} ms, native ${row.native.toFixed(1)} ms, optimized ${row.optimized.toFixed(1)} ms, ort form ${row.ortForm.toFixed(1)} ms (${readFileSync('/proc/loadavg', 'utf8').trim()})`);
  }
  // peak RSS per model and n, each in a child of its own (the sessions here are released first)
  await sessions.original.release();
  await sessions.optimized.release();
  await sessions.native.release();
  await sessions.ortForm.release();
  const rss = (path: string, n: number) => ((r) => (typeof r === 'string' ? r : r.maxRssMB))(child(path, n));
  for (const row of rows) {
    if (row.original !== undefined) row.rssOriginal = rss(paths.original, row.n);
    row.rssNative = rss(paths.native, row.n);
    row.rssOptimized = rss(paths.optimized, row.n);
    row.rssOrtForm = rss(paths.ortForm, row.n);
  }
  rmSync(dir, { recursive: true, force: true });
  const loadAfter = readFileSync('/proc/loadavg', 'utf8').trim();
  const mb = (x: number | string | undefined) => (x === undefined ? '-' : typeof x === 'string' ? x : `${x.toFixed(0)}`);
  const table = [
    '| n | original ms | native GQA ms | optimized ms | ort form ms | orig / opt | native / opt | opt / ort form | orig / ort form | native / ort form | FLOP ratio | (orig / opt) / FLOP ratio | (orig / ort form) / FLOP ratio | original RSS MB | native RSS MB | optimized RSS MB | ort form RSS MB |',
    '| - | ----------- | ------------- | ------------ | ----------- | ---------- | ------------ | -------------- | --------------- | ----------------- | ---------- | ------------------------- | ------------------------------ | --------------- | ------------- | ---------------- | --------------- |',
    ...rows.map((r) =>
      `| ${r.n} | ${r.original?.toFixed(1) ?? 'skipped'} | ${r.native.toFixed(1)} | ${r.optimized.toFixed(1)} | ${r.ortForm.toFixed(1)} | ${r.original ? (r.original / r.optimized).toFixed(1) + 'x' : '-'} | ${(r.native / r.optimized).toFixed(1)}x | ${(r.optimized / r.ortForm).toFixed(2)}x | ${
        r.original ? (r.original / r.ortForm).toFixed(1) + 'x' : '-'
      } | ${(r.native / r.ortForm).toFixed(1)}x | ${flopRatio(r.n).toFixed(1)}x | ${r.original ? (r.original / r.optimized / flopRatio(r.n)).toFixed(2) : '-'} | ${
        r.original ? (r.original / r.ortForm / flopRatio(r.n)).toFixed(2) : '-'
      } | ${mb(r.rssOriginal)} | ${mb(r.rssNative)} | ${mb(r.rssOptimized)} | ${mb(r.rssOrtForm)} |`,
    ),
  ].join('\n');
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const section = `
## onnxruntime speedup: original vs optimized single-attention model

What: a single-attention ONNX model (8 heads, head dim 64, batch 1, layout bsd, symbolic sequence length; built with
the IR and lowered by \`lowerAttentionPass\`, opset 21). Original: decomposed causal attention (${loweringChoice(ORIGINAL).why}).
Native: onnxruntime's com.microsoft GroupQueryAttention with local_window_size ${WINDOW} (causal window ${WINDOW}, no sinks).
Optimized: \`${printSpec(OPTIMIZED)}\` (${loweringChoice(OPTIMIZED).why}). Ort form: the same spec lowered with
\`lowerAttentionPass({ opset: 23, native: 'onnxruntime' })\` (the same blocks, windows and bias; each block's attention by
one ONNX Attention op). onnxruntime-node ${ort.env.versions.common}, graphOptimizationLevel all,
2 intra-op threads; the four sessions in one process, one warm-up each, then ${REPEATS} runs per n interleaved in
alternating order (2 for dense at n >= 8192); medians. Peak RSS: \`process.resourceUsage().maxRSS\` of a child process
per (model, n) that creates the session and runs once (a child that only creates the session: original
${mb(typeof idle.original === 'string' ? idle.original : idle.original.maxRssMB)} MB, optimized ${mb(typeof idle.optimized === 'string' ? idle.optimized : idle.optimized.maxRssMB)} MB: Node + onnxruntime + inputs are in every figure).
What sparsify chooses on onnxruntime-cpu for the generated local-attention layer (\`tools/src/gen/long-attention.ts\`,
layer 0, 4 heads, n = 1024, 2 calibration inputs, budget 1e-2): ${chosen}.

Machine: ${cpus().length} vCPUs (\`nproc\`), ${cpu}, Node ${process.version}, onnxruntime-node ${ort.env.versions.common}.
Load average (\`/proc/loadavg\`) before: \`${loadBefore}\`, after: \`${loadAfter}\` (a shared machine: other jobs ran
beside this one, so absolute times are noisy; the ratios are measured side by side in one run).
${denseStop ? `Note: ${denseStop}.` : ''}
Whole run: ${((performance.now() - t0) / 1e3).toFixed(0)} s.

Command: \`npx tsx --conditions=@attnopt/source tools/bench/onnx-speedup.ts --sizes ${SIZES.join(',')} --repeats ${REPEATS}${args.includes('--append') ? ' --append' : ''}\`

${table}
`;
  console.log(section);
  if (args.includes('--append')) appendFileSync(new URL('../../BENCHMARKS.md', import.meta.url), section);
}

steadyMalloc();
await main();
