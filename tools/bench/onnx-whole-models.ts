// onnxruntime time and peak RSS of whole generated models, original vs `attnopt optimize`'d (core's optimize(),
// max error 1e-2, target onnxruntime-cpu):
//   bert:  tools/src/gen/bert-base.ts with few layers (bidirectional attention, random weights: nothing to
//          drop, so optimize should keep it dense and the two should run alike), symbolic sequence length,
//          calibrated on generated inputs at n = 128;
//   long:  tools/src/gen/long-attention.ts (a local layer with sinks and a global layer, 4 heads, d 64, any
//          sequence length), optimized once, calibrated on its own inputs (inputX through each layer's projections)
//          at --calibrate-n tokens, then both files timed at every n; the original lowered dense (its n² layers
//          are not run past --dense-max-n).
// Times: both sessions in this process (no spinning), one warm-up each, runs interleaved; medians. Peak RSS: a
// child process per (model, n) that creates the session and runs once.
//
//   npx tsx --conditions=@attnopt/source tools/bench/onnx-whole-models.ts [--bert-sizes 512,1024,2048] [--bert-layers 2]
//     [--long-sizes 2048,4096,8192] [--calibrate-n 2048] [--dense-max-n 8192] [--repeats 3] [--no-bert] [--no-long]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CalibrationSample, loadModel, optimize, saveModel } from '@attnopt/core';
import { type Graph } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { writeBertBase } from '../src/gen/bert-base.js';
import { inputX, layerInputs, longAttentionModel } from '../src/gen/long-attention.js';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
// no spinning: an idle session's intra-op threads would otherwise spin beside the one that runs (2 vCPUs)
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

/** Feeds for a model: int64 inputs (token ids < 1000, masks of ones), float inputs sin-filled, symbolic dims n. */
function feedsFor(session: ort.InferenceSession, n: number, floats?: Record<string, Float32Array>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    if (floats?.[name]) {
      feeds[name] = new ort.Tensor('float32', floats[name]!, [1, n, floats[name]!.length / n]);
    } else if (name.includes('mask')) {
      feeds[name] = new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
    } else {
      feeds[name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7919) % 1000)), [1, n]);
    }
  }
  return feeds;
}

if (args[0] === '--child') {
  const [, path, nText, floatsPath] = args;
  const n = Number(nText);
  const session = await ort.InferenceSession.create(path!, SESSION); // a path: weights may be external data
  const floats = floatsPath ? (Object.fromEntries(Object.entries(JSON.parse(readFileSync(floatsPath, 'utf8')) as Record<string, string>).map(([k, f]) => [k, new Float32Array(readFileSync(f).buffer.slice(0))])) as Record<string, Float32Array>) : undefined;
  await session.run(feedsFor(session, n, floats));
  console.log(JSON.stringify({ maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  process.exit(0);
}

const REPEATS = Number(opt('--repeats', '3'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dir = mkdtempSync(join(tmpdir(), 'onnx-whole-'));

function childRss(path: string, n: number, floatsPath?: string): string {
  const script = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, script, '--child', path, String(n), ...(floatsPath ? [floatsPath] : [])], { encoding: 'utf8', timeout: 300_000 });
  try {
    return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { maxRssMB: number }).maxRssMB.toFixed(0);
  } catch {
    console.error(r.stderr.slice(-600));
    return `failed (${r.signal ?? `exit ${r.status}`})`;
  }
}

interface Row { model: string; n: number; chosen: string; original: number; optimized: number; rssOriginal: string; rssOptimized: string }

async function timePair(original: string, optimized: string, n: number, floats?: Record<string, Float32Array>): Promise<[number, number]> {
  const a = await ort.InferenceSession.create(original, SESSION);
  const b = await ort.InferenceSession.create(optimized, SESSION);
  const fa = feedsFor(a, n, floats);
  const fb = feedsFor(b, n, floats);
  await a.run(fa);
  await b.run(fb);
  const ta: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    for (const which of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const t = performance.now();
      await (which === 0 ? a.run(fa) : b.run(fb));
      (which === 0 ? ta : tb).push(performance.now() - t);
    }
  }
  await a.release();
  await b.release();
  return [median(ta), median(tb)];
}

async function timeOne(path: string, n: number, floats: Record<string, Float32Array>): Promise<number> {
  const s = await ort.InferenceSession.create(path, SESSION);
  const f = feedsFor(s, n, floats);
  await s.run(f);
  const t: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    await s.run(f);
    t.push(performance.now() - t0);
  }
  await s.release();
  return median(t);
}

const chosenOf = (sites: readonly { id: string; chosen: string; restored?: boolean }[]) =>
  sites.map((s) => `${s.id}: ${s.chosen.replaceAll('|', '/')}${s.restored ? ' (kept as the model wrote it)' : ''}`).join('; ');

async function bert(rows: Row[]): Promise<void> {
  const sizes = opt('--bert-sizes', '512,1024,2048').split(',').map(Number);
  const layers = Number(opt('--bert-layers', '2'));
  const file = join(dir, 'bert.onnx');
  writeBertBase(file, { layers, maxPositions: Math.max(...sizes) });
  const model = loadModel(file);
  const original = join(dir, 'bert-original.onnx');
  writeFileSync(original, saveModel(model));
  const result = await optimize(loadModel(file), { maxError: 1e-2 });
  const optimized = join(dir, 'bert-optimized.onnx');
  writeFileSync(optimized, saveModel(result.model));
  for (const n of sizes) {
    const [a, b] = await timePair(original, optimized, n);
    rows.push({ model: `BERT-base-shaped, ${layers} layers`, n, chosen: chosenOf(result.sites), original: a, optimized: b, rssOriginal: childRss(original, n), rssOptimized: childRss(optimized, n) });
    console.error(`bert n=${n}: ${a.toFixed(1)} vs ${b.toFixed(1)} ms`);
  }
}

/** Layer inputs q<l>, k<l>, v<l> of the long-attention model at n tokens for an input seed. */
function longFeeds(n: number, seed: number): Record<string, Float32Array> {
  const gen = longAttentionModel(n);
  const x = inputX(gen, seed);
  const out: Record<string, Float32Array> = {};
  gen.layers.forEach((_, l) => {
    const { q, k, v } = layerInputs(gen, l, x);
    Object.assign(out, { [`q${l}`]: q, [`k${l}`]: k, [`v${l}`]: v });
  });
  return out;
}

// The long-attention model takes any length: optimize() calibrates it once, at --calibrate-n tokens, and the
// same two files are timed at every n (the original's dense layers stop at --dense-max-n: n² memory).
async function long(rows: Row[]): Promise<void> {
  const calibrateN = Number(opt('--calibrate-n', '2048'));
  const denseMax = Number(opt('--dense-max-n', '8192'));
  const samples: CalibrationSample[] = [1, 2].map((seed) =>
    Object.fromEntries(Object.entries(longFeeds(calibrateN, seed)).map(([name, data]) => [name, { dtype: 'f32' as const, shape: [1, calibrateN, data.length / calibrateN], data }])),
  );
  const symbolic = () => longAttentionModel(calibrateN, undefined, { symbolicLength: true }).graph;
  const lowered = symbolic();
  runPipeline(lowered, [lowerAttentionPass({ opset: 21 })]);
  const original = join(dir, 'long-original.onnx');
  writeFileSync(original, exportOnnx(newOnnxModel(lowered, { opset: 21 })));
  const result = await optimize(newOnnxModel(symbolic(), { opset: 21 }), { maxError: 1e-2, samples, seqLen: calibrateN });
  const optimized = join(dir, 'long-optimized.onnx');
  writeFileSync(optimized, saveModel(result.model));
  const chosen = `${chosenOf(result.sites)} (calibrated at n = ${calibrateN})`;
  for (const n of opt('--long-sizes', '2048,4096,8192').split(',').map(Number)) {
    const floats = longFeeds(n, 3);
    const floatsPath = join(dir, `long-${n}-inputs.json`);
    writeFileSync(floatsPath, JSON.stringify(Object.fromEntries(Object.entries(floats).map(([k, f]) => {
      const p = join(dir, `long-${n}-${k}.bin`);
      writeFileSync(p, new Uint8Array(f.buffer));
      return [k, p];
    }))));
    const model = 'long-attention (local + global layer, 4 heads)';
    if (n > denseMax) {
      const b = await timeOne(optimized, n, floats);
      rows.push({ model, n, chosen, original: NaN, optimized: b, rssOriginal: 'skipped', rssOptimized: childRss(optimized, n, floatsPath) });
      console.error(`long n=${n}: original skipped (n > --dense-max-n ${denseMax}), optimized ${b.toFixed(1)} ms`);
      continue;
    }
    const [a, b] = await timePair(original, optimized, n, floats);
    rows.push({ model, n, chosen, original: a, optimized: b, rssOriginal: childRss(original, n, floatsPath), rssOptimized: childRss(optimized, n, floatsPath) });
    console.error(`long n=${n}: ${a.toFixed(1)} vs ${b.toFixed(1)} ms (${chosen})`);
  }
}

async function main(): Promise<void> {
  const loadBefore = readFileSync('/proc/loadavg', 'utf8').trim();
  const t0 = performance.now();
  const rows: Row[] = [];
  if (!args.includes('--no-bert')) await bert(rows);
  if (!args.includes('--no-long')) await long(rows);
  rmSync(dir, { recursive: true, force: true });
  const loadAfter = readFileSync('/proc/loadavg', 'utf8').trim();
  console.log(`Load average before: \`${loadBefore}\`, after: \`${loadAfter}\`. Whole run: ${((performance.now() - t0) / 1e3).toFixed(0)} s.\n`);
  console.log('| model | n | optimized sites | original ms | optimized ms | orig / opt | original RSS MB | optimized RSS MB |');
  console.log('| ----- | - | --------------- | ----------- | ------------ | ---------- | --------------- | ---------------- |');
  const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'skipped');
  const ratio = (r: Row) => (Number.isFinite(r.original) ? `${(r.original / r.optimized).toFixed(2)}x` : '-');
  for (const r of rows) console.log(`| ${r.model} | ${r.n} | ${r.chosen} | ${ms(r.original)} | ${ms(r.optimized)} | ${ratio(r)} | ${r.rssOriginal} | ${r.rssOptimized} |`);
}

steadyMalloc();
await main();
