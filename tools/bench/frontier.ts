// The frontier on the trained byte models (examples/trained): for each budget and sequence length, what optimize
// chooses per site (per head group when split), what it costs in quality on held-out text and what it buys in time,
// original and optimized side by side in one run, through both of attnopt's paths:
//   onnxruntime: `attnopt optimize` (costed for onnxruntime-cpu, every changed site lowered to standard ONNX ops),
//     both models in onnxruntime-node;
//   attnopt-cpu: the choices `attnopt codegen --target cpu` makes (decide costed for attnopt-cpu), each site or head
//     group compiled to its CPU kernel as codegen writes it, and the decided model (sites as attnopt::Attention) run
//     in attnopt's CPU executor, whose attention op calls the same generated kernels (`verify --runtime attnopt-cpu`),
//     against the original in the same executor.
// Budgets: exact (0); guarded g1e-3, g1e-2, g1e-1 (no calibration data: generated inputs at n, exact and guarded
// forms only, as `attnopt optimize` does by default); any budget with `-whole` (g1e-2-whole): the same with one
// form for all heads of a site (no head groups), so the two rows show what the per-head split buys; c1e-2: guarded, calibrated on the calibration folder;
// statistical s1e-2, s1e-1 (--allow-statistical with the committed calibration folder, 1024 bytes); and a probe,
// statistical at an absolute budget of 10 (above every site's tightest bound on the calibration data), to show what
// the cheapest sparse forms cost on these heads.
// Quality: verifyModels (core) on held-out windows of n bytes (code-lm: the windows' bytes; byte-mlm: every
// i % 7 == 3 masked, id 256): bits per byte of both models and the delta (code-lm), top-1 agreement and mean KL of
// the logits. Time: verifyModels' medians of 5 alternating runs after a warm-up, summed over the windows
// (onnxruntime: graph optimizations on, default threads; attnopt-cpu: the CPU executor and its kernels, on the
// first window only, the median of --cpu-runs runs after the warm-up, default 1).
//
//   npx tsx --conditions=@attnopt/source tools/bench/frontier.ts [--quick] [--models code-lm,byte-mlm]
//     [--n 1024,2048,4096] [--budgets exact,g1e-3,g1e-2,g1e-1,c1e-2,s1e-2,s1e-1,s10] [--windows BYTES]
//     [--cpu-n 1024,2048,4096] [--cpu-runs 1] [--out FILE.json]
// --quick: code-lm only, n 1024 and 4096, budgets exact, g1e-2, s1e-2, 4096 held-out bytes per n, the attnopt-cpu
// path at 1024 only (flags given beside it win). --cpu-n: the lengths at which the attnopt-cpu path runs too
// (default: every n; --cpu-n none skips it; the executor's original takes about a minute per run at 4096).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CalibrationSample,
  calibrationSet,
  compile,
  decide,
  type DecideResult,
  saveModel,
  loadModel,
  optimize,
  type OptimizedSite,
  type OptimizeOptions,
  type VerifyReport,
  verifyModels,
} from '@attnopt/core';
import { steadyMalloc } from '../src/steady-malloc.js';

steadyMalloc();
process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const opt = (name: string, dflt: string, quick = dflt) => (args.includes(name) ? args[args.indexOf(name) + 1]! : QUICK ? quick : dflt);
const MODELS = opt('--models', 'code-lm,byte-mlm', 'code-lm').split(',');
const SIZES = opt('--n', '1024,2048,4096', '1024,4096').split(',').map(Number);
const BUDGETS = opt('--budgets', 'exact,g1e-3,g1e-2,g1e-1,c1e-2,s1e-2,s1e-1,s10', 'exact,g1e-2,s1e-2').split(',');
const CPU_ARG = opt('--cpu-n', SIZES.join(','), '1024');
const CPU_SIZES = CPU_ARG === 'none' ? [] : CPU_ARG.split(',').map(Number);
const CPU_RUNS = Number(opt('--cpu-runs', '1')); // attnopt-cpu: timed runs after the warm-up (the executor is slow at 4096)
const WINDOW_BYTES = Number(opt('--windows', '8192', '4096')); // held-out bytes scored per (model, n): windows = this / n, at least 1
const OUT = opt('--out', '');
const DIR = 'examples/trained';
const MASK_ID = 256;
const heldout = readFileSync(join(DIR, 'heldout', 'stdlib-heldout.txt'));

/** Held-out windows of n bytes, one after another from the start (byte-mlm: every i % 7 == 3 masked). */
function windows(model: string, n: number): CalibrationSample[] {
  const count = Math.max(1, Math.floor(WINDOW_BYTES / n));
  return Array.from({ length: count }, (_, w) => {
    const bytes = [...heldout.subarray(w * n, (w + 1) * n)].map((b, i) => (model === 'byte-mlm' && i % 7 === 3 ? MASK_ID : b));
    if (bytes.length !== n) throw new Error(`${DIR}/heldout: ${heldout.length} bytes hold no window ${w} of ${n}`);
    return { input_ids: { dtype: 'i64', shape: [1, n], data: BigInt64Array.from(bytes, BigInt) } };
  });
}

/**
 * A budget's optimize options: g = guarded (generated calibration), c = guarded calibrated on the folder,
 * s = statistical allowed (the calibration folder).
 */
function budgetOptions(budget: string, model: string, n: number): OptimizeOptions {
  // `<budget>-whole`: one form for all heads of a site (no head groups), to measure what the per-head split buys
  if (budget.endsWith('-whole')) return { ...budgetOptions(budget.slice(0, -'-whole'.length), model, n), headGroups: false };
  const name = budget;
  if (name === 'exact') return { maxError: 0, seqLen: n };
  const maxError = Number(name.slice(1));
  if (name.startsWith('g')) return { maxError, seqLen: n };
  const folder = join(DIR, 'calibration', model);
  const samples = [...calibrationSet(folder, loadModel(join(DIR, `${model}.onnx`)))];
  if (name.startsWith('c')) return { maxError, seqLen: n, samples, samplesFrom: 'user' };
  return { maxError, seqLen: n, allowStatistical: true, samples, samplesFrom: 'user' };
}

const forms = (s: Pick<OptimizedSite, 'chosen' | 'groups'>) => (s.groups ? s.groups.map((g) => `h${g.heads.join('')}:${g.chosen}`).join(' | ') : s.chosen);

interface Row {
  model: string;
  n: number;
  budget: string;
  optimizeSeconds: number;
  sites: { id: string; chosen: string; guarantee: string; bound: number; restored: boolean; fallbackRate?: number }[];
  changed: boolean;
  bpbOriginal?: number;
  bpbOptimized?: number;
  bpbDelta?: number;
  top1: number;
  kl: number;
  ortOriginalMs: number;
  ortOptimizedMs: number;
  cpu?: CpuPath;
}

/** The attnopt-cpu path of one (model, n, budget): codegen --target cpu's choices, kernels, and the executor's run. */
interface CpuPath {
  decideSeconds: number;
  sites: { id: string; chosen: string; guarantee: string; bound: number }[];
  /** Kernels `codegen --target cpu` writes (one per site, or per head group of a split site), and sites it skips. */
  kernels: number;
  skipped: { site: string; spec: string; reason: string }[];
  bpbOriginal?: number;
  bpbDelta?: number;
  top1?: number;
  kl?: number;
  originalMs?: number;
  optimizedMs?: number;
  /** Why the executor could not run the decided model, when it could not. */
  error?: string;
}

const rows: Row[] = [];
const fmt = (x: number | undefined, d = 3) => (x === undefined ? '' : x.toFixed(d));

function quality(r: VerifyReport) {
  const o = r.outputs.find((x) => x.name === 'logits') ?? r.outputs[0]!;
  return { top1: o.top1Agreement ?? NaN, kl: o.meanKL ?? NaN, bpb: o.bitsPerByte };
}

/** codegen --target cpu's choices for this budget, its kernels, and the decided model in the CPU executor. */
async function cpuPath(modelName: string, modelPath: string, originalBytes: Uint8Array, budget: string, n: number, samples: CalibrationSample[]): Promise<CpuPath> {
  const model = loadModel(modelPath);
  const t0 = performance.now();
  const decided: DecideResult = await decide(model, { ...budgetOptions(budget, modelName, n), target: 'attnopt-cpu' });
  const decideSeconds = (performance.now() - t0) / 1e3;
  let kernels = 0;
  const skipped: CpuPath['skipped'] = [];
  for (const plan of decided.sites) {
    for (const unit of plan.groups ?? [plan]) {
      try {
        compile(unit, { target: 'cpu' });
        kernels++;
      } catch (e) {
        skipped.push({ site: unit.id, spec: unit.chosen, reason: (e as Error).message });
      }
    }
  }
  const path: CpuPath = {
    decideSeconds,
    sites: decided.sites.map((s) => ({ id: s.id, chosen: forms(s), guarantee: s.guarantee, bound: s.bound })),
    kernels,
    skipped,
  };
  try {
    const report = await verifyModels(originalBytes, saveModel(model), model, samples.slice(0, 1), { runtime: 'attnopt-cpu', runs: CPU_RUNS });
    const q = quality(report);
    return { ...path, ...(q.bpb ? { bpbOriginal: q.bpb.original, bpbDelta: q.bpb.delta } : {}), top1: q.top1, kl: q.kl, originalMs: report.msOriginal, optimizedMs: report.msOptimized };
  } catch (e) {
    return { ...path, error: (e as Error).message.split('\n')[0]! };
  }
}

const speedup = (a?: number, b?: number) => (a === undefined || b === undefined ? '' : `${a.toFixed(0)} / ${b.toFixed(0)} (${(a / b).toFixed(2)}x)`);

console.log('| model | n | budget | onnxruntime path: forms | bits/byte | Δ bits/byte | top-1 | KL | onnxruntime ms orig / opt | attnopt-cpu path: forms | Δ bits/byte | top-1 | KL | attnopt-cpu ms orig / opt | optimize s |');
console.log('|---|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|');
for (const modelName of MODELS) {
  const modelPath = join(DIR, `${modelName}.onnx`);
  const originalBytes = readFileSync(modelPath);
  for (const n of SIZES) {
    const samples = windows(modelName, n);
    for (const budget of BUDGETS) {
      const t0 = performance.now();
      const result = await optimize(loadModel(modelPath), budgetOptions(budget, modelName, n));
      const optimizeSeconds = (performance.now() - t0) / 1e3;
      const bytes = saveModel(result.model);
      const ortReport = await verifyModels(originalBytes, bytes, result.model, samples, { runtime: 'onnxruntime' });
      const q = quality(ortReport);
      const row: Row = {
        model: modelName,
        n,
        budget,
        optimizeSeconds,
        sites: result.sites.map((s) => ({
          id: s.id,
          chosen: forms(s),
          guarantee: s.guarantee,
          bound: s.bound,
          restored: s.restored === true,
          ...(s.fallbackRate !== undefined ? { fallbackRate: s.fallbackRate } : {}),
        })),
        changed: result.sites.some((s) => !s.restored),
        ...(q.bpb ? { bpbOriginal: q.bpb.original, bpbOptimized: q.bpb.optimized, bpbDelta: q.bpb.delta } : {}),
        top1: q.top1,
        kl: q.kl,
        ortOriginalMs: ortReport.msOriginal,
        ortOptimizedMs: ortReport.msOptimized,
      };
      if (CPU_SIZES.includes(n)) row.cpu = await cpuPath(modelName, modelPath, originalBytes, budget, n, samples);
      rows.push(row);
      const chosen = (sites: { chosen: string; restored?: boolean }[]) => [...new Set(sites.map((s) => `${s.chosen}${s.restored ? ' (as written)' : ''}`))].join('; ');
      const c = row.cpu;
      const cpuCells = c === undefined
        ? ' | | | | '
        : c.error !== undefined
          ? `${chosen(c.sites)} | executor: ${c.error} | | | |`
          : `${chosen(c.sites)}${c.skipped.length ? ` (${c.skipped.length} without kernel)` : ''} | ${fmt(c.bpbDelta, 4)} | ${fmt(c.top1, 4)} | ${c.kl!.toExponential(2)} | ${speedup(c.originalMs, c.optimizedMs)}`;
      console.log(
        `| ${modelName} | ${n} | ${budget} | ${chosen(row.sites)} | ${fmt(row.bpbOriginal)} | ${fmt(row.bpbDelta, 4)} | ${fmt(row.top1, 4)} | ${row.kl.toExponential(2)} | ` +
          `${speedup(row.ortOriginalMs, row.ortOptimizedMs)} | ${cpuCells} | ${optimizeSeconds.toFixed(0)} s |`,
      );
      if (OUT) writeFileSync(OUT, JSON.stringify(rows, null, 1));
    }
  }
}
