// A decode step of a whole model whose sites are split into head groups: the tiny Qwen decoder of the corpus (two
// com.microsoft GroupQueryAttention sites, 4 query heads over 2 key/value heads, KV cache), each site split by hand
// (heads 0-1 a guarded window 63 + sinks 4 at budget 2, heads 2-3 causal(past)) and lowered for onnxruntime two ways:
// `whole`, one decode route around each whole split (the exporter's GroupQueryAttention node as its dense branch),
// and `groups`, each group routed on its own (the split's record dropped, as the lowering did before). One new token
// over 600 cached ones (generateInputs, seed 2); 200 calls per round, 9 rounds in alternating order, medians of
// the times and of per-round ratios against the original; 2 intra-op threads.
//
//   npx tsx --conditions=@attnopt/source tools/bench/decode-split-whole.ts

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { analyze, attentionSites, generateInputs, loadModel, modelOpset, saveModel } from '@attnopt/core';
import { attentionParams, causal, intersect, sinks, slidingWindow, union } from '@attnopt/ir';
import { applyDecision, HEAD_GROUP, type HeadGroupAnnotation, lowerAttentionPass, type SiteDecision } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import * as ort from 'onnxruntime-node';
import { median, medianRatio, timeSideBySide } from '../src/side-by-side.js';
import { mallocMode, steadyMalloc } from '../src/steady-malloc.js';

steadyMalloc();
process.env.ORT_DISABLE_TELEMETRY = '1';
const here = path.dirname(fileURLToPath(import.meta.url));
const QWEN = path.resolve(here, '../../../shared/fixtures/onnx/genai-models/test/models/hf-internal-testing/tiny-qwen35-cuda/1d392aee_decoder.onnx');
const CALLS = 200;
const ROUNDS = 9;
const ORT_TYPES: Record<string, ort.Tensor.Type> = { f32: 'float32', f16: 'float16', i64: 'int64', i32: 'int32', bool: 'bool' };

/** The decoder with each site split in two head groups, lowered with the route around the whole split or per group. */
function split(whole: boolean): Uint8Array {
  const model = loadModel(QWEN);
  analyze(model.graph);
  for (const { id, node } of attentionSites(model.graph)) {
    const params = attentionParams(node);
    const guard = { budget: 2, blockSize: 64, baseline: params.spec };
    const groups = [
      { heads: [0, 1], kvHeads: [0], spec: intersect(causal('past'), union(slidingWindow(63, 0, 'past'), sinks(4))), guard },
      { heads: [2, 3], kvHeads: [1], spec: params.spec },
    ];
    for (const g of applyDecision(node, params, { id, groups } as unknown as SiteDecision, id) ?? []) {
      const a = g.annotations.get(HEAD_GROUP) as HeadGroupAnnotation;
      if (!whole) g.annotations.set(HEAD_GROUP, { site: a.site, heads: a.heads, kvHeads: a.kvHeads });
    }
  }
  runPipeline(model.graph, [lowerAttentionPass({ opset: modelOpset(model) })]);
  return saveModel(model);
}

async function main(): Promise<void> {
  console.log(`# decode-split-whole bench: ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, onnxruntime-node threads 2, malloc ${mallocMode()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const names = ['original', 'whole', 'groups'] as const;
  const bytes = { original: new Uint8Array(readFileSync(QWEN)), whole: split(true), groups: split(false) };
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = Object.fromEntries(await Promise.all(names.map(async (m) => [m, await ort.InferenceSession.create(bytes[m], options)] as const))) as Record<(typeof names)[number], ort.InferenceSession>;
  const [sample] = generateInputs(loadModel(QWEN), { seed: 2, seqLen: 1, dims: { past_seq_len: 600, total_seq_len: 601 } });
  const feeds = Object.fromEntries(
    Object.entries(sample!).map(([name, t]) => {
      const type = ORT_TYPES[t.dtype];
      if (!type) throw new Error(`decode-split-whole: input ${name} has dtype ${t.dtype}, not handled here`);
      return [name, new ort.Tensor(type, t.data as ort.Tensor.DataType, [...t.shape])];
    }),
  );
  const times = await timeSideBySide(sessions, names, feeds, CALLS, ROUNDS);
  const ratio = (m: (typeof names)[number]) => medianRatio(times[m], times.original);
  console.log(`one decode step (1 new token over 600 cached): ${names.map((m) => `${m} ${median(times[m]).toFixed(3)} ms${m === 'original' ? '' : ` (${ratio(m).toFixed(2)}x)`}`).join(', ')}`);
}

await main();
