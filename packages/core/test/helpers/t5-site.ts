// A T5-like attention site as an exporter writes it: softmax(Q Kᵀ / sqrt(d) + bias(j - i)) V over q, k, v
// [1, seq, heads · headDim] (bidirectional), the bias T5's buckets (16 per direction, 8 exact, logarithmic up to a
// distance of 128) gathered from a [32, heads] table, computed from the position ranges by the model's own ops.
// The optimize test and the relative-bias bench (tools/bench/relative-bias.ts) build it.

import { Graph, intAttr, Tensor, tensorType, Value } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';

export interface T5SiteShape {
  readonly heads: number;
  readonly headDim: number;
  /** The table's value at (bucket, head). */
  readonly table: (bucket: number, head: number) => number;
}

/** The site's ONNX bytes (opset 17). */
export function t5Site({ heads: H, headDim: D, table }: T5SiteShape): Uint8Array {
  const W = H * D;
  const g = new Graph('t5_relative_bias');
  const [q, k, v] = ['q', 'k', 'v'].map((x) => g.addInput(new Value(x, tensorType('f32', [1, 'seq', W]))));
  const ints = (name: string, values: number[], scalar = false) =>
    g.addInitializer(new Value(name, tensorType('i64', scalar ? [] : [values.length]), Tensor.fromValues('i64', scalar ? [] : [values.length], values.map(BigInt))));
  const f32 = (name: string, x: number) => g.addInitializer(new Value(name, tensorType('f32', []), Tensor.fromValues('f32', [], [x])));
  let n = 0;
  const op = (opName: string, inputs: Value[], attrs: Record<string, unknown> = {}) => {
    const out = new Value(`${opName.toLowerCase()}_${n++}`);
    g.add({ op: opName, name: out.name, inputs, outputs: [out], attrs: attrs as never });
    return out;
  };
  const perm = (p: number[]) => ({ perm: { type: 'ints', value: p.map(BigInt) } });
  const cast = (x: Value, to: number) => op('Cast', [x], { to: intAttr(to) });
  const split = (x: Value, p: number[]) => op('Transpose', [op('Reshape', [x, ints(`shape_${x.name}`, [0, 0, H, D])])], perm(p));
  const seq = op('Gather', [op('Shape', [q!]), ints('one', [1], true)], { axis: intAttr(0) });
  const pos = op('Range', [ints('zero', [0], true), seq, ints('step', [1], true)]);
  const rp = op('Sub', [op('Unsqueeze', [pos, ints('axis0', [0])]), op('Unsqueeze', [pos, ints('axis1', [1])])]);
  const ret = op('Mul', [cast(op('Greater', [rp, ints('zero_i', [0], true)]), 7), ints('half', [16], true)]);
  const dist = op('Abs', [rp]);
  const ratio = op('Div', [op('Max', [cast(dist, 1), f32('one_f', 1)]), f32('exact_f', 8)]);
  const large = op('Add', [ints('exact', [8], true), cast(op('Mul', [op('Div', [op('Log', [ratio]), f32('log_max', Math.log(16))]), f32('span', 8)]), 7)]);
  const bucket = op('Add', [ret, op('Where', [op('Less', [dist, ints('exact2', [8], true)]), dist, op('Min', [large, ints('last', [15], true)])])]);
  const values = Array.from({ length: 32 * H }, (_, t) => table(Math.floor(t / H), t % H));
  const rel = op('Gather', [g.addInitializer(new Value('rel_table', tensorType('f32', [32, H]), Tensor.fromValues('f32', [32, H], values))), bucket], { axis: intAttr(0) });
  const bias = op('Unsqueeze', [op('Transpose', [rel], perm([2, 0, 1])), ints('axis_b', [0])]);
  const scores = op('Add', [op('Div', [op('MatMul', [split(q!, [0, 2, 1, 3]), split(k!, [0, 2, 3, 1])]), f32('sqrt_d', Math.sqrt(D))]), bias]);
  const y = new Value('y', tensorType('f32', [1, 'seq', W]));
  const merged = op('Transpose', [op('MatMul', [op('Softmax', [scores], { axis: intAttr(-1) }), split(v!, [0, 2, 1, 3])])], perm([0, 2, 1, 3]));
  g.add({ op: 'Reshape', name: 'merge', inputs: [merged, ints('merged_shape', [0, 0, W])], outputs: [y] });
  g.outputs.push(y);
  return exportOnnx(newOnnxModel(g, { opset: 17 }));
}
