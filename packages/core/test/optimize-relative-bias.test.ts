// optimize on a T5-like site: bidirectional attention with a bucketed relative-position bias (32 buckets, max
// distance 128, a [32, H] table falling with the distance) added to Q Kᵀ / sqrt(D). The mask analysis reads the bias
// as a function of j - i, so the banded and guarded forms read it on their offsets (never n x n). Calibrated where
// attention is local, optimize takes a guarded window; in onnxruntime the optimized model stays within the budget of
// the original on local inputs and on repeated spans (each query matches a key 499 back, outside the window), float32
// rounding aside (1e-4). Before the relative reading, an n x n bias kept every form dense on onnxruntime. The model's
// own bias subgraph and the initializers only it read leave the optimized model (the prune pass).

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadModel, optimize, saveModel } from '../src/index.js';
import { D, H, localTensors, repeatSpans, sample, type Tensors, W } from './helpers/guarded-site.js';
import { t5Site } from './helpers/t5-site.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

const N = 2048;
const BUDGET = 1e-3;

async function run(bytes: Uint8Array, t: Tensors): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const x = (d: Float32Array) => new ort.Tensor('float32', d, [1, N, W]);
  return (await s.run({ q: x(t.q), k: x(t.k), v: x(t.v) })).y!.data as Float32Array;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, t) => Math.max(m, Math.abs(x - b[t]!)), 0);

describe('optimize, a T5 relative-position bias', () => {
  it('takes a guarded window that reads the bias on its band, and holds the budget on repeated spans', async () => {
    // a table falling with the distance class (bucket mod 16), a little faster on head 1
    const original = t5Site({ heads: H, headDim: D, table: (bucket, head) => -0.5 * (bucket % 16) - 0.1 * head });
    // (no seqLen: the costs reported are at the calibration's length, n = 2048, not at the default 128)
    const result = await optimize(loadModel(original), { maxError: BUDGET, samples: [sample(localTensors(N, 1), N)] });
    expect(result.sites).toHaveLength(1);
    const site = result.sites[0]!;
    expect(site, site.reason).toMatchObject({ guarantee: 'guarded', bound: BUDGET, exact: false });
    expect(site.chosen).toMatch(/window/);
    expect(site.flopsAfter).toBeLessThan(site.flopsBefore / 2);
    expect(site.flopsBefore).toBeGreaterThanOrEqual(2 * 2 * N * N * W); // QKᵀ and P V over n x n, every head
    // the model's n x n bias is no longer read: its nodes and the initializers only they read (the table) are gone
    expect(result.model.graph.initializers.map((v) => v.name)).not.toContain('rel_table');
    // (the model's Log over n x n positions; the lowering's own replays it on the 2n - 1 offsets, named for the site)
    expect([...result.model.graph.nodes].filter((n) => /^log_\d+$/.test(n.name))).toHaveLength(0);
    expect([...result.model.graph.nodes].filter((n) => n.op === 'Log' && /rel_log/.test(n.name)).length).toBeGreaterThan(0);
    const optimized = saveModel(result.model);
    const local = localTensors(N, 2);
    expect(maxAbsDiff(await run(optimized, local), await run(original, local))).toBeLessThanOrEqual(BUDGET + 1e-4);
    const spans = repeatSpans(localTensors(N, 3), N);
    expect(maxAbsDiff(await run(optimized, spans), await run(original, spans))).toBeLessThanOrEqual(BUDGET + 1e-4);
  }, 300_000);
});
