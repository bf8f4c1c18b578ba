// The frontier on the trained byte models (examples/trained): for each budget and sequence length, what optimize
// chooses per site (per head group when split), what it costs in quality on held-out text and what it buys in time,
// original and optimized side by side in one run, in onnxruntime and on attnopt's CPU executor.
//   budgets: exact (0); guarded 1e-3, 1e-2, 1e-1 (no calibration data: generated inputs at n, exact and guarded
//   forms only, as `attnopt optimize` does by default); c1e-2: guarded, calibrated on the calibration folder; statistical 1e-2, 1e-1 (--allow-statistical with the
//   committed calibration folder, 1024 bytes); and a probe, statistical at an absolute budget of 10 (above every
//   site's tightest bound on the calibration data), to show what the cheapest sparse forms cost on these heads.
// Quality: verifyModels (core) on held-out windows of n bytes (code-lm: the windows' bytes; byte-mlm: every
// i % 7 == 3 masked, id 256): bits per byte of both models and the delta (code-lm), top-1 agreement and mean KL of
// the logits. Time: verifyModels' medians of 5 alternating runs after a warm-up, summed over the windows
// (onnxruntime: graph optimizations on, default threads; attnopt-cpu: the CPU executor and its kernels).
//
//   npx tsx --conditions=@attnopt/source tools/bench/frontier.ts [--models code-lm,byte-mlm] [--n 1024,2048,4096]
//     [--budgets exact,g1e-3,g1e-2,g1e-1,s1e-2,s1e-1,s10] [--windows W] [--cpu-n 1024] [--out FILE.json]
// --cpu-n: the lengths at which the CPU executor is timed too (it is much slower than onnxruntime at 4096).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CalibrationSample, calibrationSet, saveModel, loadModel, optimize, type OptimizedSite, type OptimizeOptions, type VerifyReport, verifyModels } from '@attnopt/core';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const MODELS = opt('--models', 'code-lm,byte-mlm').split(',');
const SIZES = opt('--n', '1024,2048,4096').split(',').map(Number);
const BUDGETS = opt('--budgets', 'exact,g1e-3,g1e-2,g1e-1,s1e-2,s1e-1,s10').split(',');
const CPU_SIZES = opt('--cpu-n', '1024').split(',').map(Number);
const WINDOW_BYTES = Number(opt('--windows', '8192')); // held-out bytes scored per (model, n): windows = this / n, at least 1
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
function budgetOptions(name: string, model: string, n: number): OptimizeOptions {
  if (name === 'exact') return { maxError: 0, seqLen: n };
  const maxError = Number(name.slice(1));
  if (name.startsWith('g')) return { maxError, seqLen: n };
  const folder = join(DIR, 'calibration', model);
  const samples = [...calibrationSet(folder, loadModel(join(DIR, `${model}.onnx`)))];
  if (name.startsWith('c')) return { maxError, seqLen: n, samples, samplesFrom: 'user' };
  return { maxError, seqLen: n, allowStatistical: true, samples, samplesFrom: 'user' };
}

const forms = (s: OptimizedSite) => (s.groups ? s.groups.map((g) => `h${g.heads.join('')}:${g.chosen}`).join(' | ') : s.chosen);

interface Row {
  model: string;
  n: number;
  budget: string;
  optimizeSeconds: number;
  sites: { id: string; chosen: string; guarantee: string; bound: number; restored: boolean }[];
  changed: boolean;
  bpbOriginal?: number;
  bpbOptimized?: number;
  bpbDelta?: number;
  top1: number;
  kl: number;
  ortOriginalMs: number;
  ortOptimizedMs: number;
  cpuOriginalMs?: number;
  cpuOptimizedMs?: number;
}

const rows: Row[] = [];
const fmt = (x: number | undefined, d = 3) => (x === undefined ? '' : x.toFixed(d));

function quality(r: VerifyReport) {
  const o = r.outputs.find((x) => x.name === 'logits') ?? r.outputs[0]!;
  return { top1: o.top1Agreement ?? NaN, kl: o.meanKL ?? NaN, bpb: o.bitsPerByte };
}

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
        sites: result.sites.map((s) => ({ id: s.id, chosen: forms(s), guarantee: s.guarantee, bound: s.bound, restored: s.restored === true })),
        changed: result.sites.some((s) => !s.restored),
        ...(q.bpb ? { bpbOriginal: q.bpb.original, bpbOptimized: q.bpb.optimized, bpbDelta: q.bpb.delta } : {}),
        top1: q.top1,
        kl: q.kl,
        ortOriginalMs: ortReport.msOriginal,
        ortOptimizedMs: ortReport.msOptimized,
      };
      if (CPU_SIZES.includes(n)) {
        const cpu = await verifyModels(originalBytes, bytes, result.model, samples.slice(0, 1), { runtime: 'attnopt-cpu' });
        row.cpuOriginalMs = cpu.msOriginal;
        row.cpuOptimizedMs = cpu.msOptimized;
      }
      rows.push(row);
      const chosen = [...new Set(row.sites.map((s) => `${s.chosen}${s.restored ? ' (as written)' : ''}`))].join('; ');
      console.log(
        `| ${modelName} | ${n} | ${budget} | ${chosen} | ${fmt(row.bpbOriginal)} | ${fmt(row.bpbDelta, 4)} | ${fmt(row.top1, 4)} | ${row.kl.toExponential(2)} | ` +
          `${row.ortOriginalMs.toFixed(0)} / ${row.ortOptimizedMs.toFixed(0)} (${(row.ortOriginalMs / row.ortOptimizedMs).toFixed(2)}x) | ` +
          `${row.cpuOriginalMs === undefined ? '' : `${row.cpuOriginalMs.toFixed(0)} / ${row.cpuOptimizedMs!.toFixed(0)} (${(row.cpuOriginalMs / row.cpuOptimizedMs!).toFixed(2)}x)`} | ${optimizeSeconds.toFixed(0)} s |`,
      );
      if (OUT) writeFileSync(OUT, JSON.stringify(rows, null, 1));
    }
  }
}
