// Validates @attnopt/cost on onnxruntime CPU: single-attention models (8 heads, head dim 64, batch 1, bsd,
// dynamic sequence length) built with the IR and lowered by @attnopt/passes, for dense, causal, window and
// sinks ∪ window specs (the last two lowered banded) at several n; measured median time (interleaved, after a warm-up) vs the cost model's prediction
// with the shipped profile; prints the table, the Spearman rank correlation and the relative errors.
//
//   npx tsx --conditions=@attnopt/source tools/bench/cost-model.ts [--sizes 256,512,1024,2048,4096] [--repeats 5]

import { attentionCost, onnxruntimeCpuProfile } from '@attnopt/cost';
import { type AttentionParams, attentionNode, causal, dense, Graph, intersect, loweringChoice, type MaskSpec, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SIZES = opt('--sizes', '256,512,1024,2048,4096').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '5'));
const H = 8;
const D = 64;
const FORMS: [string, MaskSpec][] = [
  ['dense', dense],
  ['causal', causal()],
  ['window 256', slidingWindow(255, 0)],
  ['causal ∩ (window 256 ∪ sinks 4)', intersect(causal(), union(slidingWindow(255, 0), sinks(4)))],
];
const lowered = (spec: MaskSpec) => loweringChoice(spec).strategy; // the form the lowering (and the model) uses

function build(spec: MaskSpec): { bytes: Uint8Array; params: AttentionParams } {
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bsd', spec };
  const g = new Graph('attention');
  const shape = ['batch', 'seq', H * D];
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.addInput(new Value(n, tensorType('f32', shape))));
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return { bytes: exportOnnx(newOnnxModel(g, { opset: 21 })), params };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ranks = (xs: number[]) => {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(xs.length);
  for (let k = 0; k < order.length; ) {
    let e = k;
    while (e + 1 < order.length && order[e + 1]![0] === order[k]![0]) e++;
    for (let j = k; j <= e; j++) r[order[j]![1]] = (k + e) / 2 + 1;
    k = e + 1;
  }
  return r;
};
function spearman(a: number[], b: number[]): number {
  const [ra, rb] = [ranks(a), ranks(b)];
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const [ma, mb] = [mean(ra), mean(rb)];
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i]! - ma) * (rb[i]! - mb);
    da += (ra[i]! - ma) ** 2;
    db += (rb[i]! - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

interface Row { form: string; n: number; predicted: number; measured: number[] }

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const n of SIZES) {
    const sessions = [];
    for (const [form, spec] of FORMS) {
      const { bytes, params } = build(spec);
      // no spinning: an idle session's intra-op threads would spin beside the one that runs (2 vCPUs)
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } });
      const data = new Float32Array(n * H * D).map((_, i) => Math.sin(i) * 0.5);
      const feeds = { q: new ort.Tensor('float32', data, [1, n, H * D]), k: new ort.Tensor('float32', data, [1, n, H * D]), v: new ort.Tensor('float32', data, [1, n, H * D]) };
      for (let w = 0; w < 2; w++) await session.run(feeds); // warm-up: a session's first runs are its slow ones
      const predicted = attentionCost(params, { batch: 1, nq: n, nk: n }, onnxruntimeCpuProfile).time;
      const row: Row = { form, n, predicted, measured: [] };
      rows.push(row);
      sessions.push({ session, feeds, row });
    }
    const repeats = n >= 4096 ? Math.min(REPEATS, 3) : REPEATS;
    for (let r = 0; r < repeats; r++) {
      const order = r % 2 === 0 ? sessions : [...sessions].reverse(); // interleaved, alternating order
      for (const s of order) {
        const t = performance.now();
        await s.session.run(s.feeds);
        s.row.measured.push((performance.now() - t) / 1e3);
      }
    }
    for (const s of sessions) await s.session.release();
    console.error(`n=${n} done`);
  }
  const ms = (s: number) => (s * 1e3).toFixed(2);
  console.log('| form | lowered | n | predicted ms | measured ms (median) | predicted / measured |');
  console.log('| ---- | ------- | - | ------------ | -------------------- | -------------------- |');
  const pred: number[] = [];
  const meas: number[] = [];
  const relErr: number[] = [];
  for (const r of rows) {
    const m = median(r.measured);
    pred.push(r.predicted);
    meas.push(m);
    relErr.push(Math.abs(r.predicted - m) / m);
    console.log(`| ${r.form} | ${lowered(FORMS.find(([f]) => f === r.form)![1])} | ${r.n} | ${ms(r.predicted)} | ${ms(m)} | ${(r.predicted / m).toFixed(2)} |`);
  }
  console.log(`\nSpearman rank correlation (all ${rows.length} rows): ${spearman(pred, meas).toFixed(3)}`);
  console.log(`relative error |pred - meas| / meas: median ${(median(relErr) * 100).toFixed(0)}%, max ${(Math.max(...relErr) * 100).toFixed(0)}%`);
  console.log(`profile: ${onnxruntimeCpuProfile.name}, ${onnxruntimeCpuProfile.measured?.date ?? 'not measured'}`);
}

steadyMalloc();
await main();
