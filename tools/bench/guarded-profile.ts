// Where the guarded form's time goes in onnxruntime: the guarded model of tools/bench/guarded.ts profiled with
// onnxruntime's own profiler (sessionOptions.enableProfiling; `guarded` takes the box summaries alone and log Z_S the
// largest kept logit, `guardedSum` the box and the log-sum-exp, `guardedBall` the box and the ball and the
// log-sum-exp), kernel time summed per node-name prefix (the lowering names its nodes band_* for the banded form,
// guard_* for the certificate and the fallback) and per op.
//
// --file PATH profiles a whole model instead, on one generated input of --seq-len tokens (@attnopt/core's generateInputs,
// seed 1); --top K prints the K costliest nodes (30).
//
//   npx tsx --conditions=@attnopt/source tools/bench/guarded-profile.ts [--n 4096] [--runs 5] [--inputs local|diffuse] [--model guarded|guardedSum|guardedBall|unguarded|dense]
//   npx tsx --conditions=@attnopt/source tools/bench/guarded-profile.ts --file optimized.onnx --seq-len 1024 [--runs 5]

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateInputs, loadModel } from '@attnopt/core';
import { type AttentionGuard, causal } from '@attnopt/ir';
import * as ort from 'onnxruntime-node';
import { diffuseInputs, GUARDED_SPEC, localInputs, siteModel } from './guarded-models.js';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const N = Number(opt('--n', '4096'));
const RUNS = Number(opt('--runs', '5'));
const INPUTS = opt('--inputs', 'local');
const MODEL = opt('--model', 'guarded');
const FILE = opt('--file', '');
/** The guarded models' certificates (--model). */
const GUARD_CHOICES: Record<string, Pick<AttentionGuard, 'summaries' | 'logZ'>> = {
  guarded: { summaries: 'box', logZ: 'max-logit' },
  guardedSum: { summaries: 'box' },
  guardedBall: {},
};
/** Runs left out of the sums: see main. */
const WARM_UPS = 2;

const ORT_TYPES: Record<string, ort.Tensor.Type> = { f32: 'float32', f64: 'float64', i64: 'int64', i32: 'int32', bool: 'bool', u8: 'uint8', i8: 'int8' };

/** One generated input of FILE at --seq-len tokens, as onnxruntime tensors. */
async function fileInputs(): Promise<Record<string, ort.Tensor>> {
  const model = await loadModel(FILE);
  const [sample] = generateInputs(model, { seqLen: Number(opt('--seq-len', '1024')), seed: 1 });
  return Object.fromEntries(
    Object.entries(sample!).map(([name, t]) => {
      const type = ORT_TYPES[t.dtype];
      if (!type) throw new Error(`guarded-profile: ${FILE}: input ${name} has dtype ${t.dtype}, not handled here`);
      return [name, new ort.Tensor(type, t.data as ort.Tensor.DataType, [...t.shape])];
    }),
  );
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

async function main(): Promise<void> {
  const prefix = join(tmpdir(), `guarded-profile-${process.pid}`);
  const bytes = FILE ? readFileSync(FILE) : MODEL === 'dense' ? siteModel(causal(), undefined) : siteModel(GUARDED_SPEC, MODEL === 'unguarded' ? undefined : 1e-3, 64, GUARD_CHOICES[MODEL] ?? {});
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: Number(opt('--threads', '2')),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    enableProfiling: true,
    profileFilePrefix: prefix,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const feeds = FILE ? await fileInputs() : INPUTS === 'diffuse' ? diffuseInputs(N) : localInputs(N);
  for (let r = 0; r < WARM_UPS + RUNS; r++) await session.run(feeds);
  session.endProfiling();
  const base = `guarded-profile-${process.pid}`;
  const found = readdirSync(tmpdir()).find((f) => f.startsWith(base) && f.endsWith('.json'));
  if (!found) throw new Error(`guarded-profile: onnxruntime wrote no profile ${prefix}*.json`);
  const file = join(tmpdir(), found);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  rmSync(file);
  const byGroup = new Map<string, number>();
  const byNode = new Map<string, number>();
  const nodesOf = new Map<string, Set<string>>();
  let total = 0;
  // the warm-ups left out: the first run allocates, the second fills the memory pattern's block, both on fresh pages
  // (each took 8-10x a steady run's time at n = 4096)
  const lastWarmUp = events.filter((e) => e.name === 'model_run').sort((a, b) => a.ts - b.ts)[WARM_UPS - 1];
  const warmEnd = lastWarmUp ? lastWarmUp.ts + lastWarmUp.dur : 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < warmEnd) continue;
    const node = e.name.replace(/_kernel_time$/, '').replace(/^[^/]*\//, '');
    const group = node.startsWith('guard_') ? 'guard' : node.startsWith('band_') ? 'band' : 'other';
    byGroup.set(group, (byGroup.get(group) ?? 0) + e.dur);
    nodesOf.set(group, (nodesOf.get(group) ?? new Set()).add(node));
    const key = `${e.args?.op_name ?? '?'} ${node}`;
    byNode.set(key, (byNode.get(key) ?? 0) + e.dur);
    total += e.dur;
  }
  const ms = (us: number) => (us / 1000 / RUNS).toFixed(2);
  console.log(`# ${FILE || `${MODEL} model`}, ${INPUTS} inputs, n = ${N}: kernel ms per run (mean of ${RUNS} runs after ${WARM_UPS} warm-ups)`);
  for (const [g, us] of byGroup) console.log(`  ${g.padEnd(6)} ${ms(us)}   (${nodesOf.get(g)!.size} nodes)`);
  console.log(`  total  ${ms(total)}`);
  // the runs' own durations: what the kernels' sum leaves out is per-node dispatch and allocation
  const runs = events.filter((e) => e.name === 'model_run' && e.ts >= warmEnd);
  console.log(`  model_run ${ms(runs.reduce((s, e) => s + e.dur, 0))} (${runs.length} runs)`);
  for (const [k, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, Number(opt("--top", "30")))) console.log(`    ${ms(us).padStart(8)}  ${k}`);
}

steadyMalloc();
await main();
