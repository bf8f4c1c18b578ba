// The price of the guarded tier in onnxruntime (CPU): one attention site, 8 heads, head dim 64, batch 1, layout bsd,
// causal, at n = 4096 (--sizes), lowered four ways with standard ONNX ops (lowerAttentionPass, opset 21):
//   dense:      the site's own spec, causal, dense (n x n scores);
//   unguarded:  causal ∩ (window 256 ∪ sinks 4), banded, no certificate;
//   guarded:    the same, guarded with budget 1e-3 (key block summaries, per-row certificate, fallback rows dense),
//               as sparsify writes it where the cheaper certificate recomputes no calibration row the tighter one
//               certifies: the box summaries alone (guard.summaries 'box'; --summaries box-ball for both) and log Z_S
//               the largest kept logit alone (guard.logZ 'max-logit'; --log-z kept-sum for the log-sum-exp);
//   guardedSum: the same with log Z_S the kept scores' log-sum-exp (timed beside it; the rows where the two
//               differ are counted);
// Inputs: local attention (rotary-like features with geometric frequencies, peak logit 40), on which the guarded
// form should recompute no row; and diffuse attention (small random q, k: every row that drops a key, i.e. every
// row past the first 260, falls back), timed as `forced` (the guarded model) against `dense on diffuse`. The rows
// the guarded output differs from the unguarded one on are counted (a row that fell back differs, so this counts
// the fallback rows, up to rows whose dense and sparse results coincide).
// Times: sessions at graphOptimizationLevel 'all', --threads intra-op threads (2), two warm-ups each, then
// --repeats rounds running every model back to back in alternating order; medians, and the median of per-round
// ratios (a load change between rounds cancels). Beside wall time, the process's CPU time per run (user + system,
// every thread): on a shared machine it counts the work done, not the time other jobs held the cores.
//
// --spec topk: causal ∩ top-k blocks (64, 4, quest, ranked among the visible blocks, as sparsify writes it) instead
// of the window (guarded over the causal baseline); --spec lsh: causal ∩ chunked LSH (2 rounds, 16 buckets, chunks
// of 128: 512 keys per query).
// --baseline window:L: the site's own spec a sliding window of L + 1 keys (a proven one: Mistral's), instead of
// causal; the forms are that window ∩ (window 256 ∪ sinks 4) as sparsify writes them, and `exact` (the window as
// written, banded: what attnopt computes without the guard's budget) is timed beside them; `dense` is the window
// over every n x n score, as the model writes it.
// --sessions S: S sessions per model, round r running session r mod S (default 1), so that no one session decides a
// ratio (each dense session holds its n x n buffers: at n = 4096, S = 3 runs out of this machine's 24 GB).
// Run with glibc's malloc thresholds fixed (../src/steady-malloc.ts: without, a run's output buffer lands on fresh
// pages in some sessions and not in others, up to 1.9x apart); --malloc as-is leaves them.
// --save DIR writes the dense / unguarded / guarded models as DIR/<n>-<name>.onnx; --before DIR times the guarded
// model saved there beside the current one (`guardedBefore`, `forcedBefore`): a lowering change measured side by side.
//
//   npx tsx --conditions=@attnopt/source tools/bench/guarded.ts [--sizes 4096] [--repeats 7] [--threads 2] [--spec window|topk|lsh] [--baseline causal|window:L] [--summaries box|box-ball] [--log-z max-logit|kept-sum] [--key-block 64] [--sessions S] [--save DIR] [--before DIR]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { causal, type GuardLogZ, type GuardSummaries, intersect, lshBuckets, sinks, slidingWindow, topkBlocks, union } from '@attnopt/ir';
import * as ort from 'onnxruntime-node';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';
import { D, diffuseInputs, GUARDED_SPEC, H, localInputs, siteModel } from './guarded-models.js';

steadyMalloc();

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SIZES = opt('--sizes', '4096').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '7'));
const SESSIONS = Number(opt('--sessions', '1'));
const THREADS = Number(opt('--threads', '2'));
const KEY_BLOCK = Number(opt('--key-block', '64'));
const SUMMARIES = opt('--summaries', 'box') as GuardSummaries;
const LOG_Z = opt('--log-z', 'max-logit') as GuardLogZ;
const SPECS = {
  window: { spec: GUARDED_SPEC, label: 'causal ∩ (window 256 ∪ sinks 4)' },
  topk: { spec: intersect(causal(), topkBlocks(64, 4, 'quest', 'top-left')), label: 'causal ∩ top-k blocks (64, 4, quest, ranked causally)' },
  lsh: { spec: intersect(causal(), lshBuckets(2, 16, 3, 128)), label: 'causal ∩ lsh (2 rounds, 16 buckets, chunks of 128)' },
} as const;
const SPEC_NAME = opt('--spec', 'window');
if (!(SPEC_NAME in SPECS)) throw new Error(`guarded bench: --spec ${SPEC_NAME}: window, topk or lsh`);
const BASELINE_NAME = opt('--baseline', 'causal');
const windowBaseline = /^window:(\d+)$/.exec(BASELINE_NAME);
if (BASELINE_NAME !== 'causal' && (!windowBaseline || SPEC_NAME !== 'window')) throw new Error(`guarded bench: --baseline ${BASELINE_NAME}: causal, or window:L with --spec window`);
const BASELINE = windowBaseline ? slidingWindow(Number(windowBaseline[1]), 0) : causal();
const { spec: SPEC, label: LABEL } = windowBaseline
  ? { spec: intersect(BASELINE, union(slidingWindow(255, 0), sinks(4))), label: `window ${Number(windowBaseline[1]) + 1} ∩ (window 256 ∪ sinks 4)` }
  : SPECS[SPEC_NAME as keyof typeof SPECS];
const SAVE = opt('--save', '');
const BEFORE = opt('--before', '');
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  console.log(`# guarded bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads ${THREADS}, node ${process.version}, malloc ${mallocMode()}`);
  for (const n of SIZES) {
    const names: string[] = ['dense', 'unguarded', 'guarded', 'guardedSum', 'forced', 'denseDiffuse', 'unguardedDiffuse', ...(windowBaseline ? ['exact'] : [])];
    const dense = siteModel(BASELINE, undefined, KEY_BLOCK, {}, BASELINE, 'dense');
    const unguarded = siteModel(SPEC, undefined);
    const guarded = siteModel(SPEC, 1e-3, KEY_BLOCK, { summaries: SUMMARIES, logZ: LOG_Z }, BASELINE);
    const guardedSum = siteModel(SPEC, 1e-3, KEY_BLOCK, { summaries: SUMMARIES, logZ: 'kept-sum' }, BASELINE);
    const exact = windowBaseline ? siteModel(BASELINE, undefined, KEY_BLOCK, {}, BASELINE, 'banded') : dense;
    if (SAVE) mkdirSync(SAVE, { recursive: true });
    if (SAVE) for (const [m, x] of Object.entries({ dense, unguarded, guarded })) writeFileSync(join(SAVE, `${n}-${m}.onnx`), x);
    const bytes: Record<string, Uint8Array> = { dense, unguarded, guarded, guardedSum, forced: guarded, denseDiffuse: dense, unguardedDiffuse: unguarded, exact };
    if (BEFORE) {
      bytes.guardedBefore = bytes.forcedBefore = readFileSync(join(BEFORE, `${n}-guarded.onnx`));
      names.push('guardedBefore', 'forcedBefore');
    }
    // SESSIONS sessions per model, used in turn: with malloc as-is two sessions of one model ran up to 1.9x apart on
    // this machine (page faults on the output buffer, ../src/steady-malloc.ts), which one session per model turns
    // into a ratio
    const sessionsOf: Record<string, ort.InferenceSession[]> = {};
    for (const m of names) sessionsOf[m] = await Promise.all(Array.from({ length: SESSIONS }, () => ort.InferenceSession.create(bytes[m]!, SESSION)));
    const sessionOf = (m: string, r: number) => sessionsOf[m]![r % SESSIONS]!;
    const local = localInputs(n);
    const diffuse = diffuseInputs(n);
    const feedsOf = (m: string) => (m.startsWith('forced') || m.endsWith('Diffuse') ? diffuse : local);
    const outs: Record<string, Float32Array> = {};
    for (const m of names) for (const session of sessionsOf[m]!) for (let w = 0; w < 2; w++) outs[m] = (await session.run(feedsOf(m))).y!.data as Float32Array;
    const times: Record<string, number[]> = Object.fromEntries(names.map((m) => [m, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((m) => [m, []]));
    for (let r = 0; r < REPEATS; r++) {
      const order = r % 2 === 0 ? names : [...names].reverse();
      for (const m of order) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await sessionOf(m, r).run(feedsOf(m));
        times[m]!.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu[m]!.push((c.user + c.system) / 1000);
      }
    }
    const rowsDiffering = (a: Float32Array, b: Float32Array) => {
      let rows = 0;
      for (let i = 0; i < n; i++) {
        let differs = false;
        for (let c = 0; c < H * D && !differs; c++) differs = a[i * H * D + c] !== b[i * H * D + c];
        if (differs) rows++;
      }
      return rows;
    };
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, t) => Math.max(m, Math.abs(x - b[t]!)), 0);
    const ratioOf = (xs: Record<string, number[]>) => (a: string, b: string) => median(xs[a]!.map((t, r) => t / xs[b]![r]!));
    const ratio = ratioOf(times);
    const cpuRatio = ratioOf(cpu);
    console.log(`\nn = ${n}, 8 heads, d 64, ${LABEL}, ${REPEATS} rounds, ${SESSIONS} session(s) per model`);
    for (const m of names) {
      const ref = feedsOf(m) === local ? outs.dense! : outs.denseDiffuse!;
      console.log(`  ${m.padEnd(16)} median ${median(times[m]!).toFixed(1)} ms (cpu ${median(cpu[m]!).toFixed(1)} ms)   max |y - dense| ${maxDiff(outs[m]!, ref).toExponential(2)}`);
    }
    console.log(`  local inputs: rows where guarded differs from unguarded (fell back): ${rowsDiffering(outs.guarded!, outs.unguarded!)} of ${n}`);
    console.log(`  diffuse inputs: rows where guarded differs from unguarded (fell back): ${rowsDiffering(outs.forced!, outs.unguardedDiffuse!)} of ${n}`);
    console.log(`  local inputs: rows where guarded (${SUMMARIES}, ${LOG_Z}) differs from guardedSum: ${rowsDiffering(outs.guarded!, outs.guardedSum!)} of ${n}`);
    const both = (a: string, b: string) => `${ratio(a, b).toFixed(2)}x (cpu time ${cpuRatio(a, b).toFixed(2)}x)`;
    console.log(`  dense / guarded    ${both('dense', 'guarded')}   (target >= 5)`);
    console.log(`  guarded / unguarded ${both('guarded', 'unguarded')}   (target <= 1.25)`);
    console.log(`  guardedSum / unguarded ${both('guardedSum', 'unguarded')}`);
    console.log(`  dense / unguarded  ${both('dense', 'unguarded')}`);
    console.log(`  forced / dense (diffuse inputs) ${both('forced', 'denseDiffuse')}   (target <= 1.3)`);
    if (windowBaseline) console.log(`  exact (the model's window, banded) / guarded ${both('exact', 'guarded')};  dense / exact ${both('dense', 'exact')}`);
    if (BEFORE) {
      console.log(`  before: guarded / unguarded ${both('guardedBefore', 'unguarded')}, forced / dense ${both('forcedBefore', 'denseDiffuse')}`);
      console.log(`  after / before: guarded ${both('guarded', 'guardedBefore')}, forced ${both('forced', 'forcedBefore')}`);
    }
  }
}

await main();
