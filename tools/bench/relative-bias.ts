// The price of a relative-position bias in onnxruntime (CPU): a T5-like site (8 heads, head dim 64, batch 1, layout
// bsd, bidirectional), softmax(Q Kᵀ / sqrt(d) + bias(j - i)) V with T5's bucketed bias (32 buckets, max distance 128,
// a [32, 8] table falling with the distance) computed by the model's own ops, at n = 4096 (--sizes):
//   dense:      the model as written (the n x n bias and scores);
//   banded:     window [i - 127, i + 128] ∪ sinks 4, the bias read on the band's offsets (relative-bias.ts), no
//               certificate (what the statistical tier writes);
//   guarded:    the same, guarded with budget 1e-3 over the dense baseline (the bias's largest value outside the
//               band joins the score bound; fallback rows read the bias on their keys);
//   forced:     the guarded model on diffuse inputs (every row that drops a key falls back), against dense on them.
// Each form is the model imported, recognized and mask-analyzed (which reads the bias as a function of j - i), its
// site given the form, and lowered with standard ONNX ops (opset 21). Inputs as guarded.ts's (local: rotary-like,
// peak logit 40; diffuse: small random q and k). Times: graphOptimizationLevel 'all', --threads intra-op threads,
// two warm-ups, --repeats rounds back to back in alternating order; medians and the median of per-round ratios.
//
//   npx tsx --conditions=@attnopt/source tools/bench/relative-bias.ts [--sizes 4096] [--repeats 7] [--threads 2]

import { cpus } from 'node:os';
import { attentionAttrs, attentionParams, type AttentionSpec, dense, isAttention, sinks, slidingWindow, union } from '@attnopt/ir';
import { exportOnnx, importOnnx, newOnnxModel } from '@attnopt/onnx';
import { t5Site } from '../../packages/core/test/helpers/t5-site.js';
import { analyzeMaskPass, lowerAttentionPass, RECOGNITION_RULES } from '@attnopt/passes';
import { removeDead, rewritePass, runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';
import { D, diffuseInputs, H, localInputs } from './guarded-models.js';

steadyMalloc();
process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const SIZES = opt('--sizes', '4096').split(',').map(Number);
const REPEATS = Number(opt('--repeats', '7'));
const THREADS = Number(opt('--threads', '2'));
const FORM: AttentionSpec = union(slidingWindow(127, 128), sinks(4));
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

/** The model with its site given `spec` (guarded with `budget` over the dense baseline where given), lowered. */
function lowered(model: Uint8Array, spec: AttentionSpec, budget?: number): Uint8Array {
  const m = importOnnx(model);
  runPipeline(m.graph, [rewritePass('recognize', RECOGNITION_RULES), analyzeMaskPass()]);
  const node = m.graph.nodes.find(isAttention);
  if (!node) throw new Error('relative-bias bench: the site was not recognized');
  const { guard: _, ...params } = attentionParams(node);
  for (const [key, a] of attentionAttrs({ ...params, spec, ...(budget !== undefined ? { guard: { budget, blockSize: 64, baseline: dense, summaries: 'box', logZ: 'max-logit' } } : {}) })) node.attrs.set(key, a);
  runPipeline(m.graph, [lowerAttentionPass({ opset: 21 })]);
  if (m.graph.nodes.some(isAttention)) throw new Error('relative-bias bench: the site was not lowered');
  // the model's n x n bias, read by the site alone, is left unread (optimize's prune pass removes it too)
  removeDead(m.graph, [...m.graph.nodes]);
  return exportOnnx(newOnnxModel(m.graph, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  console.log(`# relative-bias bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads ${THREADS}, node ${process.version}, malloc ${mallocMode()}`);
  const original = t5Site({ heads: H, headDim: D, table: (bucket, head) => -0.5 * (bucket % 16) - 0.05 * head });
  const bytes: Record<string, Uint8Array> = { dense: original, banded: lowered(original, FORM), guarded: lowered(original, FORM, 1e-3) };
  bytes.forced = bytes.guarded!;
  bytes.denseDiffuse = original;
  const names = Object.keys(bytes);
  for (const n of SIZES) {
    const sessions: Record<string, ort.InferenceSession> = {};
    for (const m of names) sessions[m] = await ort.InferenceSession.create(bytes[m]!, SESSION);
    const local = localInputs(n);
    const diffuse = diffuseInputs(n);
    const feedsOf = (m: string) => (m === 'forced' || m === 'denseDiffuse' ? diffuse : local);
    const outs: Record<string, Float32Array> = {};
    for (const m of names) for (let w = 0; w < 2; w++) outs[m] = (await sessions[m]!.run(feedsOf(m))).y!.data as Float32Array;
    const times: Record<string, number[]> = Object.fromEntries(names.map((m) => [m, []]));
    for (let r = 0; r < REPEATS; r++) {
      for (const m of r % 2 === 0 ? names : [...names].reverse()) {
        const t0 = performance.now();
        await sessions[m]!.run(feedsOf(m));
        times[m]!.push(performance.now() - t0);
      }
    }
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((x, y, t) => Math.max(x, Math.abs(y - b[t]!)), 0);
    const ratio = (a: string, b: string) => median(times[a]!.map((t, r) => t / times[b]![r]!)).toFixed(2);
    console.log(`\nn = ${n}, ${H} heads, d ${D}, T5 buckets, window [i - 127, i + 128] ∪ sinks 4, ${REPEATS} rounds`);
    for (const m of names) console.log(`  ${m.padEnd(14)} median ${median(times[m]!).toFixed(1)} ms   max |y - dense| ${maxDiff(outs[m]!, feedsOf(m) === local ? outs.dense! : outs.denseDiffuse!).toExponential(2)}`);
    console.log(`  dense / guarded ${ratio('dense', 'guarded')}x;  guarded / banded ${ratio('guarded', 'banded')}x;  dense / banded ${ratio('dense', 'banded')}x;  forced / dense (diffuse inputs) ${ratio('forced', 'denseDiffuse')}x`);
  }
}

await main();
