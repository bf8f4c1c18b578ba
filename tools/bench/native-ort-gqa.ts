// onnxruntime's native com.microsoft GroupQueryAttention with local_window_size against our banded lowering
// of causal ∩ window(w - 1) (the same keys: the query and the w - 1 before it; outputs agree to ~3e-7), batch 1,
// layout bsd, 8 heads (8 KV heads), head dim 64, window 256, prompt (no past). Both sessions in this process,
// graphOptimizationLevel 'all', 2 intra-op threads, one warm-up each, then runs interleaved; medians.
// The outputs are compared too (max abs difference), so the two compute the same attention.
//
//   npx tsx --conditions=@attnopt/source tools/bench/native-ort-gqa.ts [--n 4096] [--window 256] [--repeats 5]

import { type AttentionParams, attentionNode, causal, Graph, intersect, Node, slidingWindow, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { steadyMalloc } from '../src/steady-malloc.js';

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const n = Number(opt('--n', '4096'));
const w = Number(opt('--window', '256'));
const repeats = Number(opt('--repeats', '5'));
// keys before the query the banded spec keeps (window(left, 0)); the native op's window convention is checked by the output difference
const left = Number(opt('--left', String(w - 1)));
const H = 8;
const D = 64;
// no spinning: an idle session's intra-op threads would otherwise spin beside the one that runs (2 vCPUs)
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

function inputs(g: Graph): Value[] {
  return ['q', 'k', 'v'].map((name) => g.addInput(new Value(name, tensorType('f32', [1, 'seq', H * D]))));
}

/** com.microsoft::GroupQueryAttention(q, k, v, -, -, seqlens_k, total_sequence_length), local window w (-1: full causal). */
export function nativeModel(w: number): Uint8Array {
  const g = new Graph('native_gqa');
  const [q, k, v] = inputs(g);
  const seqlens = g.addInput(new Value('seqlens_k', tensorType('i32', [1])));
  const total = g.addInput(new Value('total_sequence_length', tensorType('i32', [])));
  const y = new Value('y', tensorType('f32'));
  const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;
  g.addNode(
    new Node({
      domain: 'com.microsoft',
      op: 'GroupQueryAttention',
      name: 'gqa',
      inputs: [q, k, v, undefined, undefined, seqlens, total],
      outputs: [y, new Value('present_key'), new Value('present_value')],
      attrs: { num_heads: int(H), kv_num_heads: int(H), local_window_size: int(w), scale: { type: 'float', value: 1 / Math.sqrt(D) } },
    }),
  );
  g.outputs.push(y);
  const model = newOnnxModel(g, { opset: 21 });
  (model.proto.opsetImport as { domain: string; version: bigint }[]).push({ domain: 'com.microsoft', version: 1n });
  return exportOnnx(model);
}

/** The feeds GroupQueryAttention takes besides q, k, v for a prompt of n tokens. */
export function nativeFeeds(n: number): Record<string, ort.Tensor> {
  return { seqlens_k: new ort.Tensor('int32', Int32Array.from([n - 1]), [1]), total_sequence_length: new ort.Tensor('int32', Int32Array.from([n]), []) };
}

/** attnopt::Attention with causal ∩ window(w), lowered by the banded form. */
function bandedModel(): Uint8Array {
  const g = new Graph('banded');
  const [q, k, v] = inputs(g);
  const params: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bsd', spec: intersect(causal(), slidingWindow(left, 0)) };
  const y = new Value('y', tensorType('f32'));
  g.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const data = (seed: number) => new Float32Array(n * H * D).map((_, i) => Math.sin(i * 0.37 + seed) * 0.5);
  const qkv = { q: new ort.Tensor('float32', data(1), [1, n, H * D]), k: new ort.Tensor('float32', data(2), [1, n, H * D]), v: new ort.Tensor('float32', data(3), [1, n, H * D]) };
  const native = await ort.InferenceSession.create(nativeModel(w), SESSION);
  const banded = await ort.InferenceSession.create(bandedModel(), SESSION);
  const feedsNative = { ...qkv, ...nativeFeeds(n) };
  const time = async (s: ort.InferenceSession, feeds: Record<string, ort.Tensor>) => {
    const t0 = performance.now();
    const out = await s.run(feeds);
    return { ms: performance.now() - t0, y: out.y!.data as Float32Array };
  };
  const a = await time(native, feedsNative);
  const b = await time(banded, qkv);
  let diff = 0;
  for (let i = 0; i < a.y.length; i++) diff = Math.max(diff, Math.abs(a.y[i]! - b.y[i]!));
  const tn: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < repeats; r++) {
    if (r % 2 === 0) {
      tn.push((await time(native, feedsNative)).ms);
      tb.push((await time(banded, qkv)).ms);
    } else {
      tb.push((await time(banded, qkv)).ms);
      tn.push((await time(native, feedsNative)).ms);
    }
  }
  const [mn, mb] = [median(tn), median(tb)];
  console.log(`n=${n} heads=${H} d=${D} window=${w} onnxruntime ${ort.env.versions.common} cpu, 2 threads, ${repeats} runs (medians)`);
  console.log(`native GroupQueryAttention(local_window_size=${w}): ${mn.toFixed(1)} ms`);
  console.log(`banded lowering causal ∩ window(${left}):           ${mb.toFixed(1)} ms`);
  console.log(`banded / native: ${(mb / mn).toFixed(2)}   max |y_native - y_banded| = ${diff.toExponential(2)}`);
  await native.release();
  await banded.release();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  steadyMalloc();
  await main();
}
