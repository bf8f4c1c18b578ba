import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataType, isExternal, readModel, type TensorProto } from '@attnopt/onnx';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bertBaseModel, bertBaseWeightBytes, parseBertArgs, writeBertBase, XorShift32, type BertOptions } from './bert-base.js';

process.env['ORT_DISABLE_TELEMETRY'] = '1';

const SMALL: BertOptions = { layers: 2, hidden: 64, heads: 4, intermediate: 256, vocab: 1000, maxPositions: 32, seed: 7 };
const BATCH = 2;
const SEQ = 7;

let dir: string;
let file: string;
let session: ort.InferenceSession;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'attnopt-bert-gen-'));
  file = join(dir, 'bert-small.onnx');
  writeBertBase(file, SMALL);
  session = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
});

afterAll(async () => {
  await session?.release();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function randomIds(seed: number): BigInt64Array {
  const rng = new XorShift32(seed);
  return BigInt64Array.from({ length: BATCH * SEQ }, () => BigInt(rng.nextU32() % SMALL.vocab!));
}

/** Batch 0 sees every token; batch 1 only its first 4. */
const MASK = BigInt64Array.from({ length: BATCH * SEQ }, (_, i) => (i < SEQ || i % SEQ < 4 ? 1n : 0n));

async function run(ids: BigInt64Array, mask: BigInt64Array = MASK): Promise<ort.Tensor> {
  const out = await session.run({
    input_ids: new ort.Tensor('int64', ids, [BATCH, SEQ]),
    attention_mask: new ort.Tensor('int64', mask, [BATCH, SEQ]),
  });
  return out['last_hidden_state']!;
}

describe('BERT-shaped ONNX generator', () => {
  test('the small model is written with a side file and reads back through the codec', () => {
    const loaded = readModel(file);
    const initializers = loaded.model.graph!.initializer!;
    const external = initializers.filter(isExternal);
    expect(external.length).toBeGreaterThan(0);
    const externalBytes = external.reduce((sum, t) => sum + loaded.externalData.resolve(t).length, 0);
    expect(statSync(`${file}.data`).size).toBeGreaterThanOrEqual(externalBytes);
    expect(loaded.model.opsetImport).toEqual([{ domain: '', version: 17n }]);
    const inputs = loaded.model.graph!.input!.map((v) => [v.name, v.type?.tensorType?.elemType, v.type?.tensorType?.shape?.dim?.map((d) => d.dimParam)]);
    expect(inputs).toEqual([
      ['input_ids', DataType.INT64, ['batch_size', 'sequence_length']],
      ['attention_mask', DataType.INT64, ['batch_size', 'sequence_length']],
    ]);
  });

  test('onnxruntime runs it: output [batch, seq, hidden], finite, LayerNorm-normalized per token', async () => {
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask']);
    expect(session.outputNames).toEqual(['last_hidden_state']);
    const out = await run(randomIds(1));
    expect(out.dims).toEqual([BATCH, SEQ, SMALL.hidden]);
    const data = out.data as Float32Array;
    expect(data.every(Number.isFinite)).toBe(true);
    const h = SMALL.hidden!;
    for (let t = 0; t < BATCH * SEQ; t++) {
      const row = data.subarray(t * h, (t + 1) * h);
      const mean = row.reduce((a, b) => a + b, 0) / h;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / h;
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      expect(variance).toBeCloseTo(1, 3);
    }
  });

  test('the mask bias hides masked keys: changing a masked token leaves the visible ones unchanged', async () => {
    const ids = randomIds(2);
    const a = (await run(ids)).data as Float32Array;
    const changed = ids.slice();
    changed[SEQ + 5] = (changed[SEQ + 5]! + 1n) % BigInt(SMALL.vocab!); // batch 1, position 5: masked out
    const b = (await run(changed)).data as Float32Array;
    const h = SMALL.hidden!;
    const visible = (x: Float32Array) => x.subarray(SEQ * h, (SEQ + 4) * h);
    const [va, vb] = [visible(a), visible(b)];
    let worst = 0;
    for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i]! - vb[i]!));
    expect(worst).toBeLessThan(1e-5);
    // ... while in batch 0, where every token is visible, the same change moves everything.
    const c = ids.slice();
    c[5] = (c[5]! + 1n) % BigInt(SMALL.vocab!);
    const d = (await run(c)).data as Float32Array;
    expect(Math.abs(d[0]! - a[0]!)).toBeGreaterThan(1e-6);
  });

  test('the default is BERT-base: 12 layers, about 436 MB of fp32 weights, one Softmax per layer', () => {
    const bytes = bertBaseWeightBytes();
    expect(bytes).toBeGreaterThan(400e6);
    expect(bytes).toBeLessThan(450e6);
    // Same graph at tiny width: counts of the decomposed ops per layer.
    const model = bertBaseModel({ hidden: 24, heads: 12, vocab: 50, maxPositions: 16 });
    const count = (op: string) => model.graph!.node!.filter((n) => n.opType === op).length;
    expect(count('Softmax')).toBe(12);
    expect(count('LayerNormalization')).toBe(1 + 2 * 12);
    expect(count('MatMul')).toBe(12 * 8);
    expect(count('Erf')).toBe(12);
    const size = (t: TensorProto) => t.rawData!.length;
    const total = model.graph!.initializer!.reduce((s, t) => s + size(t), 0);
    const expected = bertBaseWeightBytes({ hidden: 24, heads: 12, vocab: 50, maxPositions: 16 });
    expect(total - expected).toBeGreaterThanOrEqual(0);
    expect(total - expected).toBeLessThan(200); // the shared scalar and shape constants
  });

  test('weights are a pure function of the seed', () => {
    const w = (seed: number) => bertBaseModel({ ...SMALL, seed }).graph!.initializer![0]!.rawData!;
    expect(Buffer.from(w(3)).equals(Buffer.from(w(3)))).toBe(true);
    expect(Buffer.from(w(3)).equals(Buffer.from(w(4)))).toBe(false);
  });

  test('CLI arguments', () => {
    expect(parseBertArgs(['out.onnx', '--layers', '2', '--hidden=64'])).toEqual({ out: 'out.onnx', options: { layers: 2, hidden: 64 } });
    expect(() => parseBertArgs([])).toThrow(/usage/);
    expect(() => parseBertArgs(['a.onnx', '--layers', 'x'])).toThrow(/integer/);
    expect(() => parseBertArgs(['a.onnx', '--bogus'])).toThrow(/unknown option/);
    expect(() => bertBaseModel({ hidden: 64, heads: 5 })).toThrow(/divide/);
  });
});
