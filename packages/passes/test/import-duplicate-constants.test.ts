// A name defined twice by constants (an initializer and a later Constant node, or two Constant nodes: onnxruntime's
// resized GPT-2 test model has one), which is not valid ONNX: onnxruntime loads it anyway and reads the last
// definition at every use. The importer must give every use the same value onnxruntime computes with, which
// this test reads from onnxruntime itself (y = x + c), so shape inference and recognition see the model
// onnxruntime runs. A name that a computing node defines twice keeps the rule "the latest definition before
// the use" (onnxruntime refuses such a file).

import { encodeModel, importModel, type ModelProto, type NodeProto, type TensorProto } from '@attnopt/onnx';
import { describe, expect, it } from 'vitest';
import { staticNumbers } from '../src/shape-inference/shapes.js';
import { ortValues, runModel, ortTensor } from './helpers/ort.js';

const FLOAT = 1;
const floats = (name: string, values: number[]): TensorProto => ({
  name,
  dims: BigInt64Array.of(BigInt(values.length)),
  dataType: FLOAT,
  rawData: new Uint8Array(Float32Array.from(values).buffer),
});
const constant = (name: string, output: string, values: number[]): NodeProto => ({ name, opType: 'Constant', output: [output], attribute: [{ name: 'value', type: 4, t: floats('', values) }] });
const io = (name: string) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 2n }] } } } });

function model(nodes: NodeProto[], initializer: TensorProto[]): ModelProto {
  return { irVersion: 8n, opsetImport: [{ domain: '', version: 17n }], graph: { name: 'g', input: [io('x')], initializer, node: nodes, output: [io('y')] } };
}

describe('a name defined twice by constants resolves as onnxruntime reads it', () => {
  const cases: [string, ModelProto][] = [
    ['an initializer, then a Constant node after the use', model([{ name: 'add', opType: 'Add', input: ['x', 'c'], output: ['y'] }, constant('late', 'c', [5, 7])], [floats('c', [1, 1])])],
    [
      'a Constant node before the use, another after it',
      model([constant('early', 'c', [1, 1]), { name: 'add', opType: 'Add', input: ['x', 'c'], output: ['y'] }, constant('late', 'c', [5, 7])], []),
    ],
  ];
  it.each(cases)('%s', async (_name, proto) => {
    const got = await runModel(encodeModel(proto), { x: ortTensor('f32', [2], [10, 20]) });
    const fromOrt = [...ortValues(got['y']!)].map((y, i) => y - [10, 20][i]!);
    const g = importModel(proto).graph;
    const add = g.nodes.find((n) => n.op === 'Add')!;
    expect([...(staticNumbers(add.inputs[1]) ?? [])]).toEqual(fromOrt);
    expect(fromOrt).toEqual([5, 7]);
  });

  it('a name a computing node defines twice: each use reads the latest definition before it', () => {
    const proto = model(
      [
        { name: 'n1', opType: 'Neg', input: ['x'], output: ['t'] },
        { name: 'use', opType: 'Abs', input: ['t'], output: ['u'] },
        { name: 'n2', opType: 'Relu', input: ['x'], output: ['t'] },
        { name: 'add', opType: 'Add', input: ['u', 't'], output: ['y'] },
      ],
      [],
    );
    const g = importModel(proto).graph;
    expect(g.nodes.find((n) => n.name === 'use')!.inputs[0]!.producer!.name).toBe('n1');
    expect(g.nodes.find((n) => n.name === 'add')!.inputs[1]!.producer!.name).toBe('n2');
  });
});
