// The price of keeping padding out of reach in onnxruntime (CPU): a site with a lengths input (kvLength) lowered as
// shipped (padding.ts: keys and values at or past kvLength[b] replaced by row kvLength[b] - 1, one GatherND over K and
// one over V) against the same lowered graph with those two GatherND taken out (what the lowering built before: it
// read padding, and a NaN there reached the output; and it read all T keys, where the shipped form reads the first
// max(kvLength) of them). 8 heads, d 64, batch 1, bhsd, one attention site:
//   decode:  one query over a KV cache of T keys (past T - 1 plus the new one), kvLength T - 100 (full) or T / 4
//            (a preallocated cache a quarter filled);
//   prefill: T queries over T keys, kvLength T - 100.
// Specs: dense, and the window the guarded bench uses (causal ∩ (window 256 ∪ sinks 4); past-aligned in decode).
// Times: sessions at graphOptimizationLevel 'all', --threads intra-op threads (2), two warm-ups each, then --repeats
// rounds running both models back to back in alternating order, each run --calls times (decode: 200, one call is
// ~1 ms); the median of per-round ratios (a load change between rounds cancels).
//
//   npx tsx --conditions=@attnopt/source tools/bench/padding.ts [--keys 4096] [--repeats 9] [--threads 2]

import { cpus } from 'node:os';
import { type AttentionParams, attentionNode, causal, dense, Graph, intersect, sinks, slidingWindow, tensorType, union, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { lowerAttentionPass } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';

steadyMalloc();

process.env.ORT_DISABLE_TELEMETRY = '1';
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const T = Number(opt('--keys', '4096'));
const REPEATS = Number(opt('--repeats', '9'));
const THREADS = Number(opt('--threads', '2'));
const H = 8;
const D = 64;
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };

/** The site lowered for onnxruntime (opset 21); `reach` takes the padding GatherND out again. */
function siteModel(spec: AttentionParams['spec'], decode: boolean, reach: boolean): Uint8Array {
  const g = new Graph('padding_site');
  const input = (name: string, seq: string) => g.addInput(new Value(name, tensorType('f32', [1, H, seq, D])));
  const [q, k, v] = ['q', 'k', 'v'].map((name) => input(name, 'seq'));
  const past = decode ? { pastKey: input('past_key', 'past'), pastValue: input('past_value', 'past') } : {};
  const kvLength = g.addInput(new Value('kv_length', tensorType('i64', [1])));
  const y = new Value('y', tensorType('f32'));
  const p: AttentionParams = { numHeads: H, kvNumHeads: H, headDim: D, vHeadDim: D, scale: 1 / Math.sqrt(D), softcap: 0, layout: 'bhsd', spec };
  g.addNode(attentionNode(p, { q: q!, k: k!, v: v!, ...past, kvLength }, { y }, 'attn'));
  g.outputs.push(y);
  runPipeline(g, [lowerAttentionPass({ opset: 21 })]);
  const gathers = g.nodes.filter((n) => n.op === 'GatherND' && /\/[kv]_unpadded$/.test(n.outputs[0]!.name));
  if (gathers.length !== 2) throw new Error(`padding bench: expected the lowering's two padding GatherND, found ${gathers.length}`);
  if (reach)
    for (const n of gathers) {
      n.outputs[0]!.replaceAllUsesWith(n.inputs[0]!, g);
      g.removeNode(n);
    }
  return exportOnnx(newOnnxModel(g, { opset: 21 }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const uniform = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

async function main(): Promise<void> {
  console.log(`# padding bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads ${THREADS}, node ${process.version}, malloc ${mallocMode()}`);
  const window = (align: 'past' | 'top-left') => intersect(causal(align), union(slidingWindow(255, 0, align), sinks(4)));
  const full = T - 100;
  const cases = [
    { name: 'dense, decode', spec: dense, decode: true, kvLength: full },
    { name: 'dense, decode, cache 1/4 full', spec: dense, decode: true, kvLength: T / 4 },
    { name: 'window 256 + sinks 4, decode', spec: window('past'), decode: true, kvLength: full },
    { name: 'window 256 + sinks 4, decode, cache 1/4 full', spec: window('past'), decode: true, kvLength: T / 4 },
    { name: 'dense, prefill', spec: dense, decode: false, kvLength: full },
    { name: 'window 256 + sinks 4, prefill', spec: window('top-left'), decode: false, kvLength: full },
  ];
  for (const c of cases) {
    const S = c.decode ? 1 : T;
    const tensor = (seq: number) => new ort.Tensor('float32', uniform(H * seq * D), [1, H, seq, D]);
    const feeds: Record<string, ort.Tensor> = { q: tensor(S), k: tensor(S), v: tensor(S), kv_length: new ort.Tensor('int64', BigInt64Array.from([BigInt(c.kvLength)]), [1]) };
    if (c.decode) Object.assign(feeds, { past_key: tensor(T - 1), past_value: tensor(T - 1) });
    const shipped = await ort.InferenceSession.create(siteModel(c.spec, c.decode, false), SESSION);
    const reads = await ort.InferenceSession.create(siteModel(c.spec, c.decode, true), SESSION);
    const calls = c.decode ? 200 : 1;
    const time = async (s: ort.InferenceSession) => {
      const t0 = performance.now();
      for (let r = 0; r < calls; r++) await s.run(feeds);
      return (performance.now() - t0) / calls;
    };
    const a = (await shipped.run(feeds)).y!.data as Float32Array;
    const b = (await reads.run(feeds)).y!.data as Float32Array;
    const same = a.every((x, t) => Object.is(x, b[t]));
    for (let w = 0; w < 2; w++) for (const s of [shipped, reads]) await time(s);
    const ta: number[] = [];
    const tb: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      if (r % 2 === 0) {
        ta.push(await time(shipped));
        tb.push(await time(reads));
      } else {
        tb.push(await time(reads));
        ta.push(await time(shipped));
      }
    }
    const ratios = ta.map((t, r) => t / tb[r]!);
    console.log(
      `${c.name.padEnd(44)} T ${T}, kvLength ${c.kvLength}: out of reach ${median(ta).toFixed(3)} ms, reading padding ${median(tb).toFixed(3)} ms, ` +
        `ratio ${median(ratios).toFixed(2)}x (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}), same Y on finite padding: ${same}`,
    );
  }
}

await main();
