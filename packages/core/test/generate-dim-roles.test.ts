// Generated inputs size a symbolic dim by what it is to the attention when its name says nothing. Exporters name
// dims as they please (PyTorch's dynamo exporter `s0`, tf2onnx `unk__12`, `input_ids_dynamic_axes_1` where
// dynamic_axes gives no names); a GPT-2-small export with a batch dim named `b` was calibrated on a batch of
// --seq-len rows (1024 at --seq-len 1024: killed for memory). Every whole-model fixture, its dims renamed to
// names no rule reads (d0, d1, ...), must get inputs of the shapes its own names give: read from the Softmax
// scores of the graph as exported, and from the lifted sites of the recognized graph.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Graph, parseGraph } from '@attnopt/ir';
import { decodeModel, encodeModel, importOnnx } from '@attnopt/onnx';
import { describe, expect, it, test } from 'vitest';
import { generateInputs, recognize } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WHOLE = path.resolve(here, '../../../tools/fixtures/whole-models');
const models = Object.keys(JSON.parse(fs.readFileSync(path.join(WHOLE, 'expected.json'), 'utf8')) as Record<string, unknown>);

type Dim = { dimParam?: string };
type Typed = { type?: { tensorType?: { shape?: { dim?: Dim[] } } } };

/** The model's bytes with every named dim of its inputs, outputs and value infos renamed d0, d1, ... (consistently). */
function opaqueDims(bytes: Uint8Array): Uint8Array {
  const proto = decodeModel(bytes);
  const names = new Map<string, string>();
  const g = proto.graph!;
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])] as Typed[]) {
    for (const d of v.type?.tensorType?.shape?.dim ?? []) {
      if (!d.dimParam) continue;
      if (!names.has(d.dimParam)) names.set(d.dimParam, `d${names.size}`);
      d.dimParam = names.get(d.dimParam)!;
    }
  }
  return encodeModel(proto);
}

const shapes = (g: Graph, seqLen: number) =>
  Object.fromEntries(Object.entries(generateInputs(g, { seqLen, seed: 3 })[0]!).map(([name, t]) => [name, t.shape]));

describe('generated inputs of whole models whose dims have opaque names', () => {
  it.each(models)('%s: the shapes its own dim names give', (name) => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(WHOLE, `${name}.onnx`)));
    const named = importOnnx(bytes).graph;
    const want = shapes(named, 11);
    // the shapes differ from the default (every unknown dim the sequence length) wherever a batch dim is symbolic
    expect(Object.values(want).some((s) => s[0] === 1), `${name}: some input has a batch of 1`).toBe(true);
    const opaque = opaqueDims(bytes);
    expect(shapes(importOnnx(opaque).graph, 11), `${name}: the graph as exported (Softmax scores)`).toEqual(want);
    const recognized = importOnnx(opaque).graph;
    recognize(recognized);
    expect(shapes(recognized, 11), `${name}: the recognized graph (lifted sites)`).toEqual(want);
  });
});

test('a cross-attention memory is a sequence of its own, beside a site whose queries are no input dim', () => {
  // self-attention over every other frame of x (queries ceil(d1 / 2): no input dim), cross-attention from y to mem
  const g = parseGraph(`graph g {
  input %x: f32[d0, d1, 8]
  input %y: f32[d0, d2, 8]
  input %mem: f32[d0, d3, 8]
  init %zero: i64[1] = tensor<i64[1]> [0]
  init %big: i64[1] = tensor<i64[1]> [1000000]
  init %one: i64[1] = tensor<i64[1]> [1]
  init %two: i64[1] = tensor<i64[1]> [2]
  %xs = Slice(%x, %zero, %big, %one, %two)
  %xt = Transpose(%xs) {perm = [0, 2, 1]}
  %s1 = MatMul(%xs, %xt)
  %p1 = Softmax(%s1) {axis = -1}
  %o1 = MatMul(%p1, %xs)
  %mt = Transpose(%mem) {perm = [0, 2, 1]}
  %s2 = MatMul(%y, %mt)
  %p2 = Softmax(%s2) {axis = -1}
  %o2 = MatMul(%p2, %mem)
  output %o1, %o2
}`);
  const got = Object.fromEntries(Object.entries(generateInputs(g, { seqLen: 5 })[0]!).map(([name, t]) => [name, t.shape]));
  expect(got).toEqual({ x: [1, 5, 8], y: [1, 5, 8], mem: [1, 5, 8] });
});
