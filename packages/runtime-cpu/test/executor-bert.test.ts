// A whole generated model: the BERT-shaped generator of tools/ (2 layers, hidden 64, 4 heads, vocabulary
// 1000: embeddings, additive padding mask, Erf Gelu, LayerNormalization) run by the executor and by
// onnxruntime, before and after recognition, with padding in batch 1.
// Tolerance: |executor - onnxruntime| <= 1e-4 + 1e-4 |onnxruntime| element-wise.

import { isAttention } from '@attnopt/ir';
import { encodeModel, importOnnx } from '@attnopt/onnx';
import { recognizePass } from '@attnopt/passes';
import { describe, expect, it } from 'vitest';
import { type NodeEvent, runGraph } from '../src/index.js';
import { bertBaseModel, type BertOptions } from '../../../tools/src/gen/bert-base.js';
import { compareOutputs, runOrt, seededFeeds } from './executor-ort.js';

const SMALL: BertOptions = { layers: 2, hidden: 64, heads: 4, intermediate: 256, vocab: 1000, maxPositions: 32, seed: 7 };
const ATOL = 1e-4;
const RTOL = 1e-4;

describe('generated BERT (small config)', () => {
  const bytes = encodeModel(bertBaseModel(SMALL));

  it.each([
    { batch: 2, seq: 7 },
    { batch: 1, seq: 32 },
  ])('matches onnxruntime at batch $batch, seq $seq, as imported and recognized', async (sizes) => {
    const graph = importOnnx(bytes).graph;
    const feeds = seededFeeds(graph, 3, sizes);
    expect(Math.max(...Array.from(feeds['input_ids']!.data as BigInt64Array, Number))).toBeLessThan(SMALL.vocab!);
    const want = await runOrt(bytes, feeds);
    const original = compareOutputs(await runGraph(graph, feeds, { opset: 17 }), want, ATOL, RTOL);
    expect(original.mismatches).toEqual([]);
    recognizePass({ explain: false }).run(graph);
    expect(graph.nodes.filter(isAttention).length).toBe(SMALL.layers);
    const recognized = compareOutputs(await runGraph(graph, feeds, { opset: 17 }), want, ATOL, RTOL);
    expect(recognized.mismatches).toEqual([]);
    console.log(`bert-small ${sizes.batch}x${sizes.seq}: max abs error ${original.maxAbsError.toExponential(2)} imported, ${recognized.maxAbsError.toExponential(2)} recognized`);
  });

  it('frees every intermediate after its last reader: peak live bytes stay a small multiple of one activation', async () => {
    const graph = importOnnx(bytes).graph;
    const sizes = { batch: 2, seq: 16 };
    const feeds = seededFeeds(graph, 5, sizes);
    const events: NodeEvent[] = [];
    await runGraph(graph, feeds, { opset: 17, onNode: (e) => events.push(e) });
    const produced = events.reduce((s, e) => s + e.outputs.reduce((t, o) => t + (o ? o.data.byteLength : 0), 0), 0);
    const peak = Math.max(...events.map((e) => e.liveBytes));
    const ffn = sizes.batch * sizes.seq * SMALL.intermediate! * 4; // the largest activation, bytes
    // everything made over the run is many times the peak; the peak is a few activations at most
    expect(produced).toBeGreaterThan(10 * peak);
    expect(peak).toBeLessThan(6 * ffn);
    // at the end only the output is alive (the feeds too are dropped after their last reader)
    const out = sizes.batch * sizes.seq * SMALL.hidden! * 4;
    expect(events[events.length - 1]!.liveBytes).toBe(out);
  });
});
