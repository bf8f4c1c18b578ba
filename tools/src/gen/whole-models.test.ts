// The whole-model corpus of tools/fixtures/whole-models (written by whole_models.py, never run here) runs in
// onnxruntime-node: each model at two bindings of its batch, sequence and past lengths (the export's and
// another), against PyTorch's output for the same inputs (float32 on both sides, different kernels:
// |ort - torch| <= 1e-5 + 1e-4 |torch|; seen: at most 1.2e-5 on logits of size ~1), and at a third binding of
// every symbolic dim it declares, where every output must be finite with the declared static dims.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/whole-models');
const ATOL = 1e-5;
const RTOL = 1e-4;

interface JsonTensor {
  dtype: 'float32' | 'int64';
  dims: number[];
  data: number[];
}
interface Reference {
  output: string;
  bindings: { inputs: Record<string, JsonTensor>; expected: JsonTensor }[];
}

const expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as Record<string, { file: string }>;
const reference = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8')) as Record<string, Reference>;

function tensor(t: JsonTensor): ort.Tensor {
  return t.dtype === 'int64' ? new ort.Tensor('int64', BigInt64Array.from(t.data, BigInt), t.dims) : new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
}

/** The third binding of the symbolic dims the exporter names (past + new = total). */
const BINDING: Record<string, number> = {
  batch_size: 3,
  sequence_length: 11,
  past_sequence_length: 5,
  total_sequence_length: 16,
  encoder_sequence_length: 13,
  decoder_sequence_length: 7,
  frames: 20,
};

/** Deterministic input data by the input's role (read from its name). */
function generated(name: string, type: string, dims: number[]): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (type === 'float32') return new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + 1)), dims);
  const last = dims[dims.length - 1]!;
  const value = (i: number): number => {
    const col = i % last;
    if (name === 'position_ids') return BINDING.past_sequence_length! + col; // the decoders with past take position_ids
    if (name === 'token_type_ids') return 0;
    if (name === 'global_attention_mask') return col === 0 ? 1 : 0;
    if (name.endsWith('attention_mask')) return 1;
    return (i * 7 + 3) % 100 + 2; // token ids below every vocabulary
  };
  return new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(value(i))), dims);
}

describe('whole-model corpus in onnxruntime-node', () => {
  test('expected.json and reference.json list the same models, each file present', () => {
    expect(Object.keys(reference).sort()).toEqual(Object.keys(expected).sort());
    for (const e of Object.values(expected)) expect(fs.existsSync(path.join(DIR, e.file)), e.file).toBe(true);
  });

  for (const [name, e] of Object.entries(expected)) {
    test(`${name}: PyTorch's output at two bindings, then finite outputs at a third`, async () => {
      const session = await ort.InferenceSession.create(path.join(DIR, e.file), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
      const ref = reference[name]!;
      expect(ref.bindings).toHaveLength(2);
      for (const [k, binding] of ref.bindings.entries()) {
        const feeds = Object.fromEntries(Object.entries(binding.inputs).map(([n, t]) => [n, tensor(t)]));
        const got = (await session.run(feeds))[ref.output]!;
        expect(got.dims).toEqual(binding.expected.dims);
        const data = got.data as Float32Array;
        let worst = 0;
        binding.expected.data.forEach((want, i) => {
          worst = Math.max(worst, Math.abs(data[i]! - want) - (ATOL + RTOL * Math.abs(want)));
        });
        expect(worst, `${name}, binding ${k}: largest excess over atol ${ATOL} + rtol ${RTOL}`).toBeLessThanOrEqual(0);
      }

      const feeds2: Record<string, ort.Tensor> = {};
      for (const m of session.inputMetadata) {
        if (!m.isTensor) continue;
        const dims = m.shape.map((d) => {
          if (typeof d === 'number') return d;
          const size = BINDING[d];
          if (size === undefined) throw new Error(`${e.file}: input ${m.name} has symbolic dim '${d}' that the test does not bind`);
          return size;
        });
        feeds2[m.name] = generated(m.name, m.type, dims);
      }
      const outs = await session.run(feeds2);
      for (const m of session.outputMetadata) {
        if (!m.isTensor) continue;
        const t = outs[m.name]!;
        expect(t.dims.length, `${name}: ${m.name} rank`).toBe(m.shape.length);
        m.shape.forEach((d, i) => {
          if (typeof d === 'number') expect(t.dims[i], `${name}: ${m.name} dim ${i}`).toBe(d);
        });
        expect(t.dims[0], `${name}: ${m.name} batch`).toBe(BINDING.batch_size);
        expect((t.data as Float32Array).every(Number.isFinite), `${name}: ${m.name} finite`).toBe(true);
      }
    });
  }
});
