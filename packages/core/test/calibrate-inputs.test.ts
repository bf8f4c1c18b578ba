// Calibration inputs: .npy files (fixtures written by numpy: fixtures/npy/make_npy.py), TensorProto files
// (ONNX node-test data sets), calibration-set folders and generated inputs.

import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { Graph, Tensor, tensorType, Value } from '@attnopt/ir';
import { loadModel } from '../src/index.js';
import { calibrationSet, encodeNpy, generateInputs, hostToFloat64, readNpy, readTensorProto } from '../src/calibrate/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const npy = (name: string) => new Uint8Array(readFileSync(resolve(here, 'fixtures/npy', name)));
const fixtures = resolve(here, '../../../../shared/fixtures/onnx');
const nodeTest = (name: string) => resolve(fixtures, 'onnx-node-tests', name);
const tinyBert = resolve(here, '../../../examples/tiny-bert/model.onnx');
// every folder this file writes lies under one scratch folder, removed when the file's tests end
const scratch = mkdtempSync(join(tmpdir(), 'attnopt-calib-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('readNpy (files written by numpy)', () => {
  test.each([
    ['f4.npy', 'f32', [2, 3], [0, 0.25, 0.5, 0.75, 1, 1.25]],
    ['f8.npy', 'f64', [2, 2], [1.5, -2.25, 3, 1e-300]],
    ['f2.npy', 'f16', [3], [0.5, -1, 65504]],
    ['i8.npy', 'i64', [1, 3], [1, -2, 3]],
    ['b1.npy', 'bool', [3], [1, 0, 1]],
    ['u1.npy', 'u8', [3], [0, 255, 7]],
    ['scalar.npy', 'f32', [], [2.5]],
    ['v2.npy', 'f32', [4], [0, 1, 2, 3]],
    ['v3.npy', 'i64', [4], [0, 1, 2, 3]],
  ])('%s', (file, dtype, shape, values) => {
    const t = readNpy(npy(file), file);
    expect(t.dtype).toBe(dtype);
    expect(t.shape).toEqual(shape);
    expect([...hostToFloat64(t)]).toEqual(values);
  });

  test('i4 3-D in C order', () => {
    const t = readNpy(npy('i4.npy'));
    expect(t.shape).toEqual([2, 3, 4]);
    expect(t.data).toBeInstanceOf(Int32Array);
    expect(t.data[23]).toBe(23);
  });

  test('Fortran order, big-endian and non-npy bytes are refused with the file named', () => {
    expect(() => readNpy(npy('fortran.npy'), 'fortran.npy')).toThrow(/fortran\.npy: Fortran-order/);
    expect(() => readNpy(npy('big.npy'), 'big.npy')).toThrow(/big\.npy: big-endian dtype '>f4'/);
    expect(() => readNpy(new Uint8Array(20), 'x.npy')).toThrow(/x\.npy: not a NumPy/);
    expect(() => readNpy(npy('f4.npy').subarray(0, npy('f4.npy').length - 8), 't.npy')).toThrow(/t\.npy: f32\[2, 3\] needs 24 bytes/);
  });
});

describe('readTensorProto', () => {
  test('ONNX node-test input files', () => {
    const dir = nodeTest('test_attention_3d_attn_mask/test_data_set_0');
    const q = readTensorProto(new Uint8Array(readFileSync(join(dir, 'input_0.pb'))), 'input_0.pb');
    expect(q.name).toBe('Q');
    expect(q.tensor.dtype).toBe('f32');
    expect(q.tensor.shape.length).toBe(3);
    expect(() => readTensorProto(new Uint8Array([0xff, 0xff, 0xff]), 'bad.pb')).toThrow(/bad\.pb/);
  });
});

describe('calibration sets on disk', () => {
  test('ONNX test_data_set_N layout', () => {
    const dir = nodeTest('test_attention_3d_attn_mask');
    const model = loadModel(join(dir, 'model.onnx'));
    const samples = [...calibrationSet(dir, model)];
    expect(samples.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(samples[0]!).sort()).toEqual(model.graph.inputs.map((v) => v.name).sort());
  });

  test('numbered folders of .npy files, and the errors name the file and the input', () => {
    const model = loadModel(tinyBert);
    const [sample] = generateInputs(model, { batch: 2, seqLen: 5 });
    const root = mkdtempSync(join(scratch, 'set-'));
    const npyBytes = (dtype: string, shape: readonly number[], data: ArrayBufferView): Uint8Array => {
      let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
      header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
      const h = new TextEncoder().encode(header);
      const out = new Uint8Array(10 + h.length + data.byteLength);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]);
      out.set(h, 10);
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + h.length);
      return out;
    };
    const npyDtype: Record<string, string> = { i64: '<i8', f32: '<f4', i32: '<i4' };
    for (const k of [0, 1]) {
      mkdirSync(join(root, String(k)));
      for (const [name, t] of Object.entries(sample!)) writeFileSync(join(root, String(k), `${name}.npy`), npyBytes(npyDtype[t.dtype]!, t.shape, t.data));
    }
    // the library's writer gives the same bytes as the one written here from the format's definition
    for (const t of Object.values(sample!)) expect(encodeNpy(t)).toEqual(npyBytes(npyDtype[t.dtype]!, t.shape, t.data));
    expect(readNpy(encodeNpy({ dtype: 'f32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }))).toEqual({ dtype: 'f32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
    const read = [...calibrationSet(root, model)];
    expect(read).toHaveLength(2);
    for (const [name, t] of Object.entries(sample!)) expect([...read[1]![name]!.data]).toEqual([...t.data]);

    const names = Object.keys(sample!);
    const first = names[0]!;
    const bad = (make: (dir: string) => void): (() => unknown) => {
      const dir = mkdtempSync(join(scratch, 'bad-'));
      for (const n of names) copyFileSync(join(root, '0', `${n}.npy`), join(dir, `${n}.npy`));
      make(dir);
      return () => [...calibrationSet(dir, model)];
    };
    const t = sample![first]!;
    // wrong dtype
    expect(bad((d) => writeFileSync(join(d, `${first}.npy`), npyBytes('<i4', t.shape, Int32Array.from(t.data as BigInt64Array, Number))))).toThrow(
      new RegExp(`${first}\\.npy: input "${first}": dtype i32 does not match the model input's i64`),
    );
    // wrong rank
    expect(bad((d) => writeFileSync(join(d, `${first}.npy`), npyBytes('<i8', [t.data.length], t.data)))).toThrow(new RegExp(`${first}\\.npy: input "${first}": shape \\[10\\] has rank 1`));
    // missing input
    expect(bad((d) => writeFileSync(join(d, `${first}.npy`), '') )).toThrow(/not a NumPy/);
    const missing = bad(() => undefined);
    expect(missing).not.toThrow();
    const dir = mkdtempSync(join(scratch, 'missing-'));
    for (const n of names.slice(1)) copyFileSync(join(root, '0', `${n}.npy`), join(dir, `${n}.npy`));
    expect(() => [...calibrationSet(dir, model)]).toThrow(new RegExp(`input "${first}": missing: no ${first}\\.npy`));
  });

  test('NaN in a float calibration tensor is refused naming the file and the input', () => {
    const dir = nodeTest('test_attention_3d_attn_mask');
    const model = loadModel(join(dir, 'model.onnx'));
    const tmp = mkdtempSync(join(scratch, 'nan-'));
    const samples = [...calibrationSet(dir, model)];
    const q = samples[0]!['Q']!;
    const data = Float32Array.from(q.data as Float32Array);
    data[3] = NaN;
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${q.shape.join(', ')}), }`.padEnd(117, ' ') + '\n';
    const h = new TextEncoder().encode(header);
    const bytes = new Uint8Array(10 + h.length + data.byteLength);
    bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length, 0]);
    bytes.set(h, 10);
    bytes.set(new Uint8Array(data.buffer), 10 + h.length);
    for (const name of Object.keys(samples[0]!)) {
      if (name !== 'Q') copyFileSync(join(dir, 'test_data_set_0', `input_${model.graph.inputs.findIndex((v) => v.name === name)}.pb`), join(tmp, `input_${model.graph.inputs.findIndex((v) => v.name === name)}.pb`));
    }
    writeFileSync(join(tmp, 'Q.npy'), bytes);
    expect(() => [...calibrationSet(tmp, model)]).toThrow(/Q\.npy: input "Q": element 3 is NaN/);
  });
});

describe('generateInputs', () => {
  test('tiny-bert: ids within the vocabulary, masks of ones padded at the end, seeded', () => {
    const model = loadModel(tinyBert);
    const [a] = generateInputs(model, { batch: 2, seqLen: 5, seed: 3 });
    const [b] = generateInputs(model, { batch: 2, seqLen: 5, seed: 3 });
    expect(a).toEqual(b);
    for (const [name, t] of Object.entries(a!)) {
      expect(t.shape).toEqual([2, 5]);
      if (name.includes('mask')) expect([...t.data].map(Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    }
  });

  test('torch exports: every input gets its type and the symbolic sizes asked for', () => {
    for (const f of ['mha_self_op17_dyn.onnx', 'gpt2_causal_attn_where_op17_dyn.onnx', 'bert_self_attn_additive_mask_op17_dyn.onnx']) {
      const model = loadModel(resolve(fixtures, 'torch-exports', f));
      const samples = generateInputs(model, { batch: 3, seqLen: 6, count: 2 });
      expect(samples).toHaveLength(2);
      for (const v of model.graph.inputs.filter((i) => !i.initializer)) {
        const t = samples[0]![v.name]!;
        expect(t.dtype).toBe(v.type?.kind === 'tensor' ? v.type.dtype : undefined);
        if (v.type?.kind === 'tensor') {
          v.type.shape?.forEach((d, k) => {
            if (typeof d === 'number') expect(t.shape[k]).toBe(d);
          });
        }
        expect(t.shape[0]).toBe(3);
      }
      expect(samples[0]).not.toEqual(samples[1]);
    }
  });
  test('ids shared by two embeddings stay within the smaller table; a symbolic batch follows a static one', () => {
    // ids[batch, seq] -> Gather(words[50, 4]) and Gather(types[3, 4]); segment[2, seq] fixes the batch at 2.
    const g = new Graph('shared-ids');
    const ids = g.addInput(new Value('ids', tensorType('i64', ['batch', 'seq'])));
    const segment = g.addInput(new Value('segment', tensorType('f32', [2, 'seq'])));
    const table = (name: string, rows: number) =>
      g.addInitializer(new Value(name, tensorType('f32', [rows, 4]), Tensor.fromValues('f32', [rows, 4], new Float32Array(rows * 4))));
    const words = table('words', 50);
    const types = table('types', 3);
    const a = new Value('a');
    const b = new Value('b');
    g.add({ op: 'Gather', inputs: [words, ids], outputs: [a] });
    g.add({ op: 'Gather', inputs: [types, ids], outputs: [b] });
    g.outputs.push(a, b, segment);
    const [sample] = generateInputs(g, { seqLen: 400, seed: 1 });
    const t = sample!['ids']!;
    expect(t.shape).toEqual([2, 400]);
    const values = [...t.data].map(Number);
    expect(Math.max(...values)).toBe(2);
    expect(Math.min(...values)).toBe(0);
    expect(sample!['segment']!.shape).toEqual([2, 400]);
  });
});

describe('generated inputs: sizes of symbolic dims', () => {
  // com.microsoft Attention with its projection weight and bias fed as model inputs (onnxruntime's test model)
  const attention = resolve(fixtures, 'ort-models/onnxruntime/test/testdata/attention_mask1d_fp16.onnx');

  test('a weight fed as an input does not fix the batch (its leading dim is no batch)', () => {
    const [sample] = generateInputs(loadModel(attention), { seqLen: 5 });
    expect(sample!['weight']!.shape).toEqual([768, 2304]);
    expect(sample!['input']!.shape).toEqual([1, 5, 768]);
    expect(sample!['mask_index']!.shape).toEqual([1]);
  });

  test('dims name the size of any symbolic dim and win over the rules', () => {
    const microbench = resolve(fixtures, 'ort-models/onnxruntime/python/tools/microbench/models/attention_fp32.onnx');
    const [sample] = generateInputs(loadModel(microbench), { seqLen: 5, dims: { hidden_size: 48, len: 144, batch_size: 3 } });
    expect(sample!['INPUT']!.shape).toEqual([3, 5, 48]);
    expect(sample!['WEIGHT']!.shape).toEqual([48, 144]);
    expect(sample!['BIAS']!.shape).toEqual([144]);
  });
});

describe('generated inputs: op parameters by name', () => {
  test('a Sampling GPT-2 gets a max_length past its prompt, so onnxruntime can run it', () => {
    const sampling = resolve(fixtures, 'ort-models/onnxruntime/test/testdata/transformers/tiny_gpt2_sampling.onnx');
    const [sample] = generateInputs(loadModel(sampling), { seqLen: 6 });
    expect([...sample!['max_length']!.data]).toEqual([10]);
    expect([...sample!['min_length']!.data]).toEqual([1]);
    expect([...sample!['repetition_penalty']!.data]).toEqual([1]);
    expect(sample!['input_ids']!.shape).toEqual([1, 6]);
  });
});
