// Attention inside model-local functions (ModelProto.functions, as torch's dynamo exporter and onnxscript write
// modules): recognize writes out the calls of functions that hold attention and finds the sites inside. Where
// optimize changes nothing, every call is put back and the model is written byte for byte as read; where it
// lowers the sites, the calls stay written out and onnxruntime (which runs local functions itself on the
// original) gives the same outputs (|diff| <= 1e-5, fp32, at 300 tokens). The function is one attention layer
// with a causal mask (Trilu of -inf above the diagonal), called once directly and once from inside another
// function whose output it feeds (q = k = the first call's output: one site reads another's output directly);
// that function adds its residual by a third function, which holds no attention and stays a call. attnopt's
// CPU executor (calibration and verify with runtime attnopt-cpu) runs every local function by its nodes.

import { parseGraph } from '@attnopt/ir';
import { diffMessages, exportOnnx, type FunctionProto, importOnnx, newOnnxModel, type NodeProto } from '@attnopt/onnx';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { inspectModel, loadModel, optimize, saveModel, verifyModels } from '../src/index.js';

const [H, D] = [4, 16];
const node = (opType: string, input: string[], output: string[], attribute: NodeProto['attribute'] = [], domain?: string): NodeProto => ({ opType, input, output, attribute, ...(domain ? { domain } : {}) });
const ints = (name: string, xs: number[]) => ({ name, ints: BigInt64Array.from(xs.map(BigInt)), type: 7 });

/** local::CausalAttention(q, k, v) = softmax(q kᵀ / 4 + tril mask) v over [1, H, S, D]. */
const attention: FunctionProto = {
  name: 'CausalAttention',
  domain: 'local',
  input: ['q', 'k', 'v'],
  output: ['y'],
  opsetImport: [{ domain: '', version: 17n }],
  node: [
    node('Transpose', ['k'], ['kt'], [ints('perm', [0, 1, 3, 2])]),
    node('MatMul', ['q', 'kt'], ['s']),
    node('Constant', [], ['c'], [{ name: 'value_float', f: 0.25, type: 1 }]),
    node('Mul', ['s', 'c'], ['ss']),
    node('Shape', ['ss'], ['shape']),
    node('Constant', [], ['two'], [ints('value_ints', [2])]),
    node('Constant', [], ['four'], [ints('value_ints', [4])]),
    node('Slice', ['shape', 'two', 'four'], ['square']),
    node('ConstantOfShape', ['square'], ['ninf'], [{ name: 'value', t: { dataType: 1, dims: BigInt64Array.from([1n]), floatData: Float32Array.from([-Infinity]) }, type: 4 }]),
    node('Constant', [], ['one'], [{ name: 'value_int', i: 1n, type: 2 }]),
    node('Trilu', ['ninf', 'one'], ['mask'], [{ name: 'upper', i: 1n, type: 2 }]),
    node('Add', ['ss', 'mask'], ['masked']),
    node('Softmax', ['masked'], ['p'], [{ name: 'axis', i: -1n, type: 2 }]),
    node('MatMul', ['p', 'v'], ['y']),
  ],
};

/** local::Layer(x, v) = CausalAttention(x, x, v) + x: a function calling another. */
const layer: FunctionProto = {
  name: 'Layer',
  domain: 'local',
  input: ['x', 'v'],
  output: ['out'],
  opsetImport: [{ domain: '', version: 17n }, { domain: 'local', version: 1n }],
  node: [node('CausalAttention', ['x', 'x', 'v'], ['a'], [], 'local'), node('Residual', ['a', 'x'], ['out'], [], 'local')],
};

/** local::Residual(a, b) = a + b: a function that holds no attention (left a call by recognize). */
const residual: FunctionProto = {
  name: 'Residual',
  domain: 'local',
  input: ['a', 'b'],
  output: ['c'],
  opsetImport: [{ domain: '', version: 17n }],
  node: [node('Add', ['a', 'b'], ['c'])],
};

function modelBytes(): Uint8Array {
  const m = newOnnxModel(
    parseGraph(`graph g {
  input %q: f32[1, ${H}, seq, ${D}]
  input %k: f32[1, ${H}, seq, ${D}]
  input %v: f32[1, ${H}, seq, ${D}]
  %a = local::CausalAttention(%q, %k, %v)
  %y = local::Layer(%a, %v)
  output %y
}`),
    { opset: 17 },
  );
  m.proto.opsetImport = [...(m.proto.opsetImport ?? []), { domain: 'local', version: 1n }];
  m.proto.functions = [attention, layer, residual];
  return exportOnnx(m);
}

async function run(bytes: Uint8Array, seq: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  let x = 1;
  const t = () => new ort.Tensor('float32', Float32Array.from({ length: H * seq * D }, () => ((x = (x * 16807) % 2147483647) / 2147483647) * 2 - 1), [1, H, seq, D]);
  const out = await s.run({ q: t(), k: t(), v: t() });
  await s.release();
  return out.y!.data as Float32Array;
}

/** A calibration-sample tensor [1, H, seq, D] of seeded values in [-1, 1). */
function randomTensor(seq: number, seed: number) {
  let x = seed;
  return { dtype: 'f32' as const, shape: [1, H, seq, D], data: Float32Array.from({ length: H * seq * D }, () => ((x = (x * 16807) % 2147483647) / 2147483647) * 2 - 1) };
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i]!)));

describe('attention inside model-local functions', () => {
  it('inspect finds both sites, the one in the nested call included', () => {
    const r = inspectModel(loadModel(modelBytes()));
    expect(r.sites.map((s) => [s.heads, s.headDim, s.scale])).toEqual([
      [H, D, 0.25],
      [H, D, 0.25],
    ]);
    expect(r.misses).toEqual([]);
  });

  it('sites that gain nothing: the calls are put back and the graph is written field for field as it was read', async () => {
    const bytes = modelBytes();
    const { model, sites, notes } = await optimize(loadModel(bytes), { seqLen: 256 });
    expect(sites.map((s) => s.restored)).toEqual([true, true]);
    expect(notes.map((n) => n.message)).toContain('3 of 3 local-function calls written out to find attention are calls again (nothing in them changed)');
    // optimize adds its metadata to the model; the graph and the functions are the model's own
    const [got, want] = [importOnnx(saveModel(model)).proto, importOnnx(bytes).proto];
    expect(diffMessages(got.graph!, want.graph!, 'GraphProto')).toBeUndefined();
    expect(got.functions).toEqual(want.functions);
  });

  it('sites lowered inside the calls: the calls stay written out, and onnxruntime gives the original outputs', async () => {
    const bytes = modelBytes();
    const { model, sites } = await optimize(loadModel(bytes), { seqLen: 256, restoreUnchanged: false });
    expect(sites).toHaveLength(2);
    const out = saveModel(model);
    expect(maxAbsDiff(await run(out, 300), await run(bytes, 300))).toBeLessThanOrEqual(1e-5);
    // the call of the function without attention stays a call
    expect([...loadModel(out).graph.nodes].filter((n) => n.domain === 'local').map((n) => n.op)).toEqual(['Residual']);
  });

  it('a function that calls itself (not valid ONNX) is refused with the reason, not written out forever', () => {
    const m = newOnnxModel(parseGraph(`graph g {\n  input %x: f32[1, 4]\n  %y = local::Self(%x)\n  output %y\n}`), { opset: 17 });
    m.proto.opsetImport = [...(m.proto.opsetImport ?? []), { domain: 'local', version: 1n }];
    m.proto.functions = [{ name: 'Self', domain: 'local', input: ['a'], output: ['b'], opsetImport: [{ domain: '', version: 17n }, { domain: 'local', version: 1n }], node: [node('Softmax', ['a'], ['s']), node('Self', ['s'], ['b'], [], 'local')] }];
    expect(() => inspectModel(loadModel(exportOnnx(m)))).toThrow(/function "?local::Self"?.*: it is called 64 calls deep .* \(does a function call itself\?\)/);
  });

  it("attnopt's CPU executor runs the model, every local function by its nodes", async () => {
    const bytes = modelBytes();
    const { model } = await optimize(loadModel(bytes), { seqLen: 64, runtime: 'attnopt-cpu' });
    const samples = [{ q: randomTensor(64, 1), k: randomTensor(64, 2), v: randomTensor(64, 3) }];
    const report = await verifyModels(bytes, saveModel(model), model, samples, { runtime: 'attnopt-cpu' });
    expect(report.outputs[0]!.maxAbsError).toBeLessThanOrEqual(1e-5);
  });
});
