// verify speaks a byte LM's language: on the trained byte LM (examples/trained/code-lm.onnx) and 64 held-out bytes,
// it reports bits per byte of both models (row t scored on byte t + 1), the numbers a float64 computation here
// makes from onnxruntime's logits (atol 1e-9 bits: the same float32 logits, float64 sums in another order);
// --max-bpb-delta exits 3 when the optimized model loses more than that, and passes when it does not.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, test } from 'vitest';
import { encodeNpy } from '@attnopt/core';
import { attnoptInProcess as attnopt } from './run-captured.js';

const { onnx } = onnxProto;
const trained = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/trained');
const model = join(trained, 'code-lm.onnx');
const N = 64;
const VOCAB = 256;
const BITS_ATOL = 1e-9;
const bytes = [...readFileSync(join(trained, 'heldout', 'stdlib-heldout.txt')).subarray(0, N)];
const dir = mkdtempSync(join(tmpdir(), 'attnopt-bpb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const inputs = join(dir, 'inputs');
mkdirSync(inputs);
writeFileSync(join(inputs, 'input_ids.npy'), encodeNpy({ dtype: 'i64', shape: [1, N], data: BigInt64Array.from(bytes, BigInt) }));

// the same model with its output projection halved (logits at temperature 2): a model that predicts worse
const flatter = join(dir, 'flatter.onnx');
{
  const proto = onnx.ModelProto.decode(readFileSync(model));
  // the output projection: the one [width, 256] weight (the embedding table is [256, width])
  const heads = proto.graph!.initializer!.filter((t) => t.dims!.length === 2 && Number(t.dims![0]) === 128 && Number(t.dims![1]) === VOCAB);
  expect(heads).toHaveLength(1);
  const head = heads[0]!;
  const raw = head.rawData!;
  const w = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  for (let k = 0; k < w.length; k++) w[k] = w[k]! * 0.5;
  head.rawData = new Uint8Array(w.buffer);
  writeFileSync(flatter, onnx.ModelProto.encode(proto).finish());
}

/** Bits per byte of a model on `bytes`, in float64 from onnxruntime's logits (all graph optimizations, as verify deploys). */
async function bitsPerByte(path: string): Promise<number> {
  const session = await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all' });
  try {
    const y = (await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(bytes, BigInt), [1, N]) }))['logits']!.data as Float32Array;
    let bits = 0;
    for (let t = 0; t + 1 < N; t++) {
      const row = y.subarray(t * VOCAB, (t + 1) * VOCAB);
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      bits += (Math.log(z) + max - row[bytes[t + 1]!]!) / Math.LN2;
    }
    return bits / (N - 1);
  } finally {
    await session.release();
  }
}

interface BpbJson {
  outputs: { name: string; bitsPerByte?: { original: number; optimized: number; delta: number; positions: number } }[];
  passed: boolean;
  failures: string[];
}

describe('verify: bits per byte of a byte LM', () => {
  test('both models scored as a float64 computation from onnxruntime logits scores them; --max-bpb-delta judges the delta', async () => {
    const original = await bitsPerByte(model);
    const worse = await bitsPerByte(flatter);
    expect(worse).toBeGreaterThan(original); // the premise: halving the logits of a trained model loses bits
    const args = ['verify', model, flatter, '--inputs', inputs, '--tolerance', '1000', '--json'];
    const r = await attnopt(...args);
    expect(r.code, r.stderr).toBe(0);
    const bpb = (JSON.parse(r.stdout) as BpbJson).outputs.find((o) => o.name === 'logits')!.bitsPerByte!;
    expect(bpb.positions).toBe(N - 1);
    expect(Math.abs(bpb.original - original)).toBeLessThanOrEqual(BITS_ATOL);
    expect(Math.abs(bpb.optimized - worse)).toBeLessThanOrEqual(BITS_ATOL);
    expect(Math.abs(bpb.delta - (worse - original))).toBeLessThanOrEqual(2 * BITS_ATOL);

    const over = await attnopt(...args, '--max-bpb-delta', String((worse - original) / 2));
    expect(over.code).toBe(3);
    expect((JSON.parse(over.stdout) as BpbJson).failures.join('\n')).toMatch(/logits: bits per byte .* is over --max-bpb-delta/);
    const within = await attnopt(...args, '--max-bpb-delta', String(2 * (worse - original)));
    expect(within.code, within.stderr).toBe(0);
  });

  test('text output names bits per byte; --metric bpb on a model whose ids do not pair with logits is an error', async () => {
    const r = await attnopt('verify', model, model, '--inputs', inputs, '--max-bpb-delta', '0');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/bits per byte (\d\.\d{4}) -> \1 \(delta \+0\.00 over 63 positions\)/);
    // the masked-byte encoder reads id 256 (masked), a class its 256 logits do not have
    const masked = join(dir, 'masked');
    mkdirSync(masked);
    const ids = bytes.map((b, i) => (i % 7 === 3 ? 256 : b));
    writeFileSync(join(masked, 'input_ids.npy'), encodeNpy({ dtype: 'i64', shape: [1, N], data: BigInt64Array.from(ids, BigInt) }));
    const mlm = join(trained, 'byte-mlm.onnx');
    const auto = await attnopt('verify', mlm, mlm, '--inputs', masked, '--json');
    expect(auto.code, auto.stderr).toBe(0);
    expect((JSON.parse(auto.stdout) as BpbJson).outputs[0]!.bitsPerByte).toBeUndefined();
    const forced = await attnopt('verify', mlm, mlm, '--inputs', masked, '--metric', 'bpb');
    expect(forced.code).not.toBe(0);
    expect(forced.stderr).toMatch(/bits per byte: output logits against input input_ids: id 256 at \[0, 3\] is not a class of the 256 logits/);
  });
});
