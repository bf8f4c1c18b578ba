// Exporting an edited graph: untouched parts stay the very protos they were, changed parts are rebuilt,
// value_info follows the values that still exist, and the result re-imports and verifies.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Tensor, tensorType, Value, verifyGraph } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import {
  DataType,
  decodeModel,
  diffMessages,
  encodeModel,
  exportModel,
  importModel,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from '../src/index.js';
import { CORPUS_DIR } from './corpus.js';

const FILE = path.join(CORPUS_DIR, 'torch-exports/bert_self_attn_additive_mask_op14_dyn.onnx');

const floatInfo = (name: string): ValueInfoProto => ({
  name,
  type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, {}] } } },
});

/** The corpus model, decoded, with value_info for the two Cast outputs of the chain Cast -> Cast_1. */
function load(): { original: ModelProto; decoded: ModelProto } {
  const bytes = readFileSync(FILE);
  const original = decodeModel(bytes);
  const decoded = decodeModel(bytes, { file: FILE });
  decoded.graph!.valueInfo = [floatInfo('/Cast_output_0'), floatInfo('/Cast_1_output_0')];
  original.graph!.valueInfo = decoded.graph!.valueInfo;
  return { original, decoded };
}

const roundTrip = (m: ModelProto): ModelProto => decodeModel(encodeModel(m));
const byName = (nodes: readonly NodeProto[]): Map<string, NodeProto> => new Map(nodes.map((n) => [n.name ?? '', n]));

describe('export after edits', () => {
  it('removes an Identity-like node by rewiring its uses to its input', () => {
    const { original, decoded } = load();
    const model = importModel(decoded, { file: FILE });
    const cast = model.graph.nodes.find((n) => n.outputs[0]?.name === '/Cast_1_output_0')!;
    expect(cast.op).toBe('Cast');
    const readers = cast.outputs[0]!.uses().map((u) => u.node.name);
    expect(readers.length).toBeGreaterThan(0);
    cast.outputs[0]!.replaceAllUsesWith(cast.inputs[0]!, model.graph);
    model.graph.removeNode(cast);

    const exported = exportModel(model);
    const out = roundTrip(exported);
    const before = byName(original.graph!.node!);
    expect(out.graph!.node!.length).toBe(before.size - 1);
    expect(out.graph!.node!.some((n) => n.name === cast.name)).toBe(false);
    for (const n of out.graph!.node!) {
      const was = before.get(n.name ?? '')!;
      if (readers.includes(n.name ?? '')) {
        // Rewired: only the input names changed.
        expect(n.input).toEqual(was.input!.map((i) => (i === '/Cast_1_output_0' ? '/Cast_output_0' : i)));
        const withOldInputs: NodeProto = { ...n, input: was.input };
        expect(diffMessages(withOldInputs, was, 'NodeProto')).toBeUndefined();
      } else {
        expect(diffMessages(n, was, 'NodeProto'), n.name).toBeUndefined();
      }
    }
    // Untouched nodes are the very protos imported.
    const reused = exported.graph!.node!.filter((n) => decoded.graph!.node!.includes(n)).length;
    expect(reused).toBe(before.size - 1 - readers.length);
    // value_info: kept for the value that still exists, dropped for the removed one.
    expect(out.graph!.valueInfo!.map((v) => v.name)).toEqual(['/Cast_output_0']);
    // Everything else (model header, inputs, outputs, initializers) is as it was.
    const rest = (m: ModelProto): ModelProto => ({ ...m, graph: { ...m.graph!, node: [], valueInfo: [] } });
    expect(diffMessages(rest(out), rest(original))).toBeUndefined();

    const again = importModel(out);
    expect(verifyGraph(again.graph)).toEqual([]);
  });

  it('adds a node with a new value: a fresh proto and value_info with its type', () => {
    const { decoded } = load();
    const model = importModel(decoded, { file: FILE });
    const x = model.graph.inputs[0]!;
    const extra = new Value('extra', tensorType('f32', ['batch', 'seq', 768]));
    const y2 = new Value('y2', tensorType('f32', ['batch', 'seq', 768]));
    model.graph.add({ op: 'Identity', name: 'added_identity', inputs: [x], outputs: [extra] });
    model.graph.add({ domain: 'com.example', op: 'Custom', inputs: [extra], outputs: [y2], attrs: { alpha: { type: 'float', value: 0.5 } } });
    model.graph.outputs.push(y2);

    const out = roundTrip(exportModel(model));
    const nodes = out.graph!.node!;
    expect(nodes.at(-2)).toEqual({ input: [x.name], output: ['extra'], name: 'added_identity', opType: 'Identity' });
    expect(nodes.at(-1)).toEqual({
      input: ['extra'],
      output: ['y2'],
      opType: 'Custom',
      domain: 'com.example',
      attribute: [{ name: 'alpha', type: 1, f: 0.5 }],
    });
    const info = out.graph!.valueInfo!.find((v) => v.name === 'extra')!;
    expect(info.type!.tensorType!.elemType).toBe(DataType.FLOAT);
    expect(info.type!.tensorType!.shape!.dim!.map((d) => d.dimParam ?? Number(d.dimValue))).toEqual(['batch', 'seq', 768]);
    expect(out.graph!.output!.at(-1)!.name).toBe('y2');
    expect(out.graph!.valueInfo!.some((v) => v.name === 'y2')).toBe(false);
    expect(verifyGraph(importModel(out).graph)).toEqual([]);
  });

  it('replaces an initializer and renames a value: only the affected protos change', () => {
    const { original, decoded } = load();
    const model = importModel(decoded, { file: FILE });
    const [w, other] = model.graph.initializers.filter((v) => v.initializer!.dtype === 'f32');
    const oldName = other!.name;
    const fresh = Tensor.fromValues('f32', w!.initializer!.shape, new Float32Array(w!.initializer!.size).fill(0.25));
    w!.initializer = fresh;
    other!.name = 'renamed_weight';

    const exported = exportModel(model);
    const out = roundTrip(exported);
    const inits = out.graph!.initializer!;
    const origInits = original.graph!.initializer!;
    expect(inits.map((t) => t.name)).toEqual(origInits.map((t) => (t.name === oldName ? 'renamed_weight' : t.name)));
    const replaced = inits.find((t) => t.name === w!.name)!;
    expect(new Float32Array(replaced.rawData!.slice().buffer).every((x) => x === 0.25)).toBe(true);
    expect(replaced.dataType).toBe(DataType.FLOAT);
    const renamed = inits.find((t) => t.name === 'renamed_weight')!;
    expect(renamed.rawData).toEqual(origInits.find((t) => t.name === oldName)!.rawData);
    const readers = out.graph!.node!.filter((n) => (n.input ?? []).includes('renamed_weight'));
    expect(readers.length).toBeGreaterThan(0);
    expect(out.graph!.node!.some((n) => (n.input ?? []).includes(oldName))).toBe(false);
    // Other initializers are the very protos imported.
    const untouched = exported.graph!.initializer!.filter((t) => t.name !== w!.name && t.name !== 'renamed_weight');
    expect(untouched.every((t) => decoded.graph!.initializer!.includes(t))).toBe(true);
    expect(verifyGraph(importModel(out).graph)).toEqual([]);
  });
});
