// The IR bridge on built models: attnopt::Attention through the file format, subgraphs reading outer values,
// external data staying lazy, and errors that name the file, the node and the problem.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  attentionNode,
  attentionParams,
  causal,
  Graph,
  parseGraph,
  printGraph,
  printSpec,
  sinks,
  slidingWindow,
  tensorType,
  union,
  Value,
  verifyGraph,
} from '@attnopt/ir';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AttributeType,
  DataType,
  decodeModel,
  diffMessages,
  encodeModel,
  exportModel,
  exportOnnx,
  importModel,
  importOnnx,
  newOnnxModel,
  nodeReadFiles,
  OnnxImportError,
  readModel,
  writeModel,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type ReadFiles,
  type TensorProto,
  type ValueInfoProto,
} from '../src/index.js';

const utf8 = new TextDecoder();
const f32 = (name: string, ...dims: (number | string)[]): ValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: DataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: BigInt(d) } : { dimParam: d })) },
    },
  },
});
const floats = (name: string, values: number[]): TensorProto => ({
  name,
  dims: BigInt64Array.of(BigInt(values.length)),
  dataType: DataType.FLOAT,
  rawData: new Uint8Array(Float32Array.from(values).buffer),
});
const model = (graph: GraphProto): ModelProto => ({ irVersion: 10n, opsetImport: [{ domain: '', version: 21n }], graph });

describe('attnopt::Attention through ONNX', () => {
  it('exports as domain attnopt with the spec as text, and re-imports to the same graph', () => {
    const g = new Graph('attn');
    const q = g.addInput(new Value('q', tensorType('f32', ['B', 4, 'S', 16])));
    const k = g.addInput(new Value('k', tensorType('f32', ['B', 2, 'S', 16])));
    const v = g.addInput(new Value('v', tensorType('f32', ['B', 2, 'S', 16])));
    const y = new Value('y', tensorType('f32', ['B', 4, 'S', 16]));
    const spec = union(sinks(4), slidingWindow(128, 0), causal('bottom-right'));
    const params = { numHeads: 4, kvNumHeads: 2, headDim: 16, vHeadDim: 16, scale: 0.25, softcap: 0, layout: 'bhsd' as const, spec };
    g.addNode(attentionNode(params, { q, k, v }, { y }, 'site0'));
    g.outputs.push(y);
    expect(verifyGraph(g)).toEqual([]);

    const bytes = exportOnnx(newOnnxModel(g));
    const proto = decodeModel(bytes);
    expect(proto.opsetImport).toContainEqual({ domain: 'attnopt', version: 1n });
    const node = proto.graph!.node![0]!;
    expect([node.domain, node.opType, node.name]).toEqual(['attnopt', 'Attention', 'site0']);
    const specAttr = node.attribute!.find((a) => a.name === 'spec')!;
    expect(specAttr.type).toBe(AttributeType.STRING);
    expect(utf8.decode(specAttr.s)).toBe(printSpec(spec));

    const back = importOnnx(bytes);
    expect(attentionParams(back.graph.nodes[0]!)).toEqual(attentionParams(g.nodes[0]!));
    expect(printGraph(back.graph)).toBe(printGraph(g));
    expect(verifyGraph(back.graph)).toEqual([]);
    expect(exportOnnx(back)).toEqual(bytes);
  });

  it('round-trips a parsed graph with a causal attention site', () => {
    const text = [
      'graph main {',
      '  input %q: f32[B, S, 64]',
      '  input %k: f32[B, S, 64]',
      '  input %v: f32[B, S, 64]',
      '  %y: f32[B, S, 64] = attnopt::Attention(%q, %k, %v) {numHeads = 4, kvNumHeads = 4, headDim = 16, vHeadDim = 16, scale = 0.25, softcap = 0.0, layout = "bsd", spec = spec<causal>}',
      '  output %y',
      '}',
      '',
    ].join('\n');
    const g = parseGraph(text);
    const back = importOnnx(exportOnnx(newOnnxModel(g)));
    expect(printGraph(back.graph)).toBe(printGraph(g));
  });
});

describe('subgraphs', () => {
  // y = If(cond) { then: Add(x, w) } else { Neg(x) }, both branches reading the outer x and w.
  const ifModel = (elseInput = 'x'): ModelProto =>
    model({
      name: 'main',
      input: [{ name: 'cond', type: { tensorType: { elemType: DataType.BOOL, shape: { dim: [] } } } }, f32('x', 2)],
      initializer: [floats('w', [1, 2])],
      node: [
        {
          name: 'if0',
          opType: 'If',
          input: ['cond'],
          output: ['y'],
          attribute: [
            { name: 'then_branch', type: AttributeType.GRAPH, g: { name: 'then', node: [{ name: 'add', opType: 'Add', input: ['x', 'w'], output: ['t'] }], output: [f32('t', 2)] } },
            { name: 'else_branch', type: AttributeType.GRAPH, g: { name: 'else', node: [{ name: 'neg', opType: 'Neg', input: [elseInput], output: ['e'] }], output: [f32('e', 2)] } },
          ],
        },
      ],
      output: [f32('y', 2)],
    });

  it('resolves outer values to the same Value objects and round-trips', () => {
    const proto = ifModel();
    const bytes = encodeModel(proto);
    const m = importModel(decodeModel(bytes));
    const [x] = m.graph.inputs.filter((v) => v.name === 'x');
    const w = m.graph.initializers[0]!;
    const [thenG, elseG] = m.graph.nodes[0]!.subgraphs();
    expect(thenG!.nodes[0]!.inputs).toEqual([x, w]);
    expect(thenG!.nodes[0]!.inputs[0]).toBe(x);
    expect(elseG!.nodes[0]!.inputs[0]).toBe(x);
    expect(verifyGraph(m.graph)).toEqual([]);
    expect(encodeModel(exportModel(m))).toEqual(bytes);

    // Renaming the outer value renames it inside the subgraphs too; the rest stays as it was.
    x!.name = 'x2';
    const out = decodeModel(encodeModel(exportModel(m)));
    const ifNode = out.graph!.node![0]!;
    expect(ifNode.attribute![0]!.g!.node![0]!.input).toEqual(['x2', 'w']);
    expect(ifNode.attribute![1]!.g!.node![0]!.input).toEqual(['x2']);
    expect(out.graph!.input![1]!.name).toBe('x2');
    expect(diffMessages(ifNode.attribute![0]!.g!.output![0]!, proto.graph!.node![0]!.attribute![0]!.g!.output![0]!, 'ValueInfoProto')).toBeUndefined();
    expect(verifyGraph(importModel(out).graph)).toEqual([]);
  });

  it('refuses a subgraph reading a name defined nowhere, naming file, node and value', () => {
    expect(() => importModel(ifModel('nope'), { file: 'if.onnx' })).toThrowError(
      'if.onnx: graph "main" > node "if0" (If) > attribute else_branch > graph "else" > node "neg" (Neg): input 0 "nope" is defined nowhere in scope',
    );
  });
});

describe('external data', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-onnx-ir-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('imports external tensors lazily (read on bytes()) and exports them back as the same references', () => {
    const big = Array.from({ length: 512 }, (_, i) => i / 8);
    const file = path.join(dir, 'm.onnx');
    writeModel(
      file,
      model({
        name: 'g',
        input: [f32('x', 512)],
        initializer: [floats('w', big), floats('b', [1, 2])],
        node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'] }],
        output: [f32('y', 512)],
      }),
      { externalData: { threshold: 1024 } },
    );
    let reads = 0;
    const files: ReadFiles = { ...nodeReadFiles, read: (f, p, n) => (reads++, nodeReadFiles.read(f, p, n)) };
    const m = importOnnx(file, { files });
    const [w, b] = m.graph.initializers;
    expect(w!.initializer!.isLazy).toBe(true);
    expect(b!.initializer!.isLazy).toBe(false);
    expect(reads).toBe(0);
    expect(diffMessages(exportModel(m), readModel(file).model)).toBeUndefined();
    expect(reads).toBe(0);
    expect([...w!.initializer!.toFloat64()]).toEqual(big);
    expect(reads).toBe(1);
  });
});

describe('bad input', () => {
  const addModel = (node: NodeProto, initializer: TensorProto[] = []): ModelProto =>
    model({ name: 'main', input: [f32('x', 2)], initializer, node: [node], output: [f32('y', 2)] });

  it('names the file, the node and the undefined value', () => {
    const m = addModel({ name: 'bad', opType: 'Add', input: ['x', 'nope'], output: ['y'] });
    const error = (() => {
      try {
        importModel(m, { file: 'model.onnx' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(OnnxImportError);
    expect((error as Error).message).toBe(
      'model.onnx: graph "main" > node "bad" (Add): input 1 "nope" is defined nowhere in scope (not a graph input, initializer or node output of this graph or an enclosing one)',
    );
  });

  it('refuses an unknown dtype number in an initializer, an attribute tensor and a value type', () => {
    const bad: TensorProto = { name: 'w', dims: BigInt64Array.of(2n), dataType: 99, rawData: new Uint8Array(8) };
    expect(() => importModel(addModel({ opType: 'Add', input: ['x', 'w'], output: ['y'] }, [bad]), { file: 'a.onnx' })).toThrowError(
      'a.onnx: graph "main" > initializer "w": unknown data type 99',
    );
    const constant: NodeProto = { name: 'c', opType: 'Constant', output: ['y'], attribute: [{ name: 'value', type: AttributeType.TENSOR, t: bad }] };
    expect(() => importModel(addModel(constant), { file: 'b.onnx' })).toThrowError(
      'b.onnx: graph "main" > node "c" (Constant) > attribute value: unknown data type 99',
    );
    const typed = addModel({ opType: 'Neg', input: ['x'], output: ['y'] });
    typed.graph!.input![0]!.type!.tensorType!.elemType = 77;
    expect(() => importModel(typed, { file: 'c.onnx' })).toThrowError('c.onnx: graph "main" > input "x": unknown data type 77');
  });

  it('refuses raw data of the wrong size, naming the tensor', () => {
    const short: TensorProto = { name: 'w', dims: BigInt64Array.of(2n), dataType: DataType.FLOAT, rawData: new Uint8Array(7) };
    expect(() => importModel(addModel({ opType: 'Add', input: ['x', 'w'], output: ['y'] }, [short]), { file: 'd.onnx' })).toThrowError(
      /^d\.onnx: graph "main" > initializer "w": tensor f32\[2\] needs 8 bytes, got 7$/,
    );
  });

  it('keeps unknown ops, attributes the IR does not interpret, omitted outputs and typed-field tensors', () => {
    const m = model({
      name: 'main',
      input: [f32('x', 2)],
      initializer: [{ name: 'i', dims: BigInt64Array.of(2n), dataType: DataType.INT64, int64Data: BigInt64Array.of(3n, -4n) }],
      node: [
        {
          opType: 'Mystery',
          domain: 'com.example',
          input: ['x', '', 'i'],
          output: ['a', '', 'c'],
          docString: 'kept',
          attribute: [
            { name: 'shape', type: AttributeType.TYPE_PROTO, tp: { tensorType: { elemType: 1 } } },
            { name: 'ref', type: AttributeType.INT, refAttrName: 'outer' },
            { name: 'bytes', type: AttributeType.STRING, s: Uint8Array.of(0xff, 0xfe) },
            { name: 'txt', type: AttributeType.STRINGS, strings: [new TextEncoder().encode('héllo')] },
          ],
        },
        { opType: 'Add', input: ['a', 'c'], output: ['y'] },
      ],
      output: [f32('y', 2)],
    });
    const bytes = encodeModel(m);
    const imported = importModel(decodeModel(bytes));
    const mystery = imported.graph.nodes[0]!;
    expect(mystery.inputs[1]).toBeUndefined();
    expect(mystery.outputs.length).toBe(3);
    expect([...mystery.attrs.values()].map((a) => (a.type === 'opaque' ? `opaque:${a.kind}` : a.type))).toEqual([
      'opaque:type_proto',
      'opaque:ref',
      'opaque:string',
      'strings',
    ]);
    expect([...imported.graph.initializers[0]!.initializer!.bigints()]).toEqual([3n, -4n]);
    expect(verifyGraph(imported.graph)).toEqual([]);
    expect(encodeModel(exportModel(imported))).toEqual(bytes);

    // A changed node is rebuilt: opaque attributes, omitted outputs and the doc string come back as they were.
    mystery.name = 'now_named';
    const out = decodeModel(encodeModel(exportModel(imported)));
    const n = out.graph!.node![0]!;
    expect(n.name).toBe('now_named');
    const unnamed: NodeProto = { ...n, name: undefined };
    expect(diffMessages(unnamed, decodeModel(bytes).graph!.node![0]!, 'NodeProto')).toBeUndefined();
  });
});
