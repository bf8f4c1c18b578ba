// Weight quantization of a whole model, as deployed models carry it: every MatMul by a float weight matrix
// (an initializer [K, N]) rewritten the way onnxruntime's quantize_dynamic writes it (DynamicQuantizeLinear of the
// activations, MatMulInteger by int8 weights, Cast, and the product of the two scales) or as its 4-bit
// MatMulNBits (blocks of 16 along K, zero point 8). The attention sites' own MatMuls (both operands computed)
// stay in float, as both quantizers leave them by default. For tests: the result runs in onnxruntime.

import { type Graph, intAttr, Node, type NodeInit, Tensor, tensorType, Value } from '@attnopt/ir';
import type { OnnxModel } from '@attnopt/onnx';

export type WeightQuantization = 'dynamic-int8' | 'nbits-4';

/** The MatMul nodes of `g` whose right operand is a float32 weight matrix. */
function weightMatMuls(g: Graph): { node: Node; w: Tensor }[] {
  return g.nodes.flatMap((node) => {
    const w = node.op === 'MatMul' && node.domain === '' ? node.inputs[1]?.initializer : undefined;
    return w && w.dtype === 'f32' && w.shape.length === 2 ? [{ node, w }] : [];
  });
}

const initializer = (g: Graph, name: string, t: Tensor): Value => g.addInitializer(new Value(name, tensorType(t.dtype, t.shape), t));

/** `model` with its weight MatMuls quantized as `how` says (the graph changed in place); the count rewritten. */
export function quantizeWeights(model: OnnxModel, how: WeightQuantization): { model: OnnxModel; rewritten: number } {
  const g = model.graph;
  const found = weightMatMuls(g);
  const quantizedActivations = new Map<Value, readonly Value[]>();
  found.forEach(({ node, w }, k) => {
    const a = node.inputs[0]!;
    const fresh = (suffix: string) => new Value(`q${k}_${suffix}`);
    // each new node goes just before the MatMul it replaces: it reads only the MatMul's input and earlier new nodes
    const insert = (init: NodeInit) => g.addNode(new Node(init), g.nodes.indexOf(node));
    const [K, N] = w.shape as [number, number];
    const values = w.toFloat64();
    // the product keeps its name and type (it may be a graph output, logits by a tied embedding say)
    const old = node.outputs[0]!;
    const y = new Value(old.name, old.type);
    old.name = `q${k}_float`;
    if (how === 'dynamic-int8') {
      let aq = quantizedActivations.get(a);
      if (!aq) {
        aq = [fresh('aq'), fresh('as'), fresh('az')];
        insert({ op: 'DynamicQuantizeLinear', inputs: [a], outputs: aq });
        quantizedActivations.set(a, aq);
      }
      const scale = Math.max(...values.map(Math.abs)) / 127 || 1;
      const wq = initializer(g, `q${k}_w`, Tensor.fromValues('i8', [K, N], values.map((x) => Math.round(x / scale))));
      const wz = initializer(g, `q${k}_wz`, Tensor.fromValues('i8', [], [0]));
      const ws = initializer(g, `q${k}_ws`, Tensor.fromValues('f32', [], [scale]));
      const [mm, mmf, s] = [fresh('mm'), fresh('mmf'), fresh('s')];
      insert({ op: 'MatMulInteger', inputs: [aq[0], wq, aq[2], wz], outputs: [mm] });
      insert({ op: 'Cast', inputs: [mm], outputs: [mmf], attrs: { to: intAttr(1) } });
      insert({ op: 'Mul', inputs: [aq[1], ws], outputs: [s] });
      insert({ op: 'Mul', inputs: [mmf, s], outputs: [y] });
    } else {
      const block = 16;
      const blocks = Math.ceil(K / block);
      const packed = new Uint8Array(N * blocks * (block / 2));
      const scales = new Float32Array(N * blocks);
      for (let n = 0; n < N; n++) {
        for (let b = 0; b < blocks; b++) {
          const col = (r: number) => (b * block + r < K ? values[(b * block + r) * N + n]! : 0);
          const scale = Math.max(...Array.from({ length: block }, (_, r) => Math.abs(col(r)))) / 7 || 1;
          scales[n * blocks + b] = scale;
          for (let r = 0; r < block; r++) {
            const q = Math.min(15, Math.max(0, Math.round(col(r) / scale) + 8));
            packed[(n * blocks + b) * (block / 2) + (r >> 1)]! |= r % 2 === 0 ? q : q << 4;
          }
        }
      }
      const wq = initializer(g, `q${k}_w`, Tensor.fromValues('u8', [N, blocks, block / 2], packed));
      const ws = initializer(g, `q${k}_ws`, Tensor.fromValues('f32', [N * blocks], scales));
      insert({ domain: 'com.microsoft', op: 'MatMulNBits', inputs: [a, wq, ws], outputs: [y], attrs: { K: intAttr(K), N: intAttr(N), bits: intAttr(4), block_size: intAttr(block) } });
    }
    old.replaceAllUsesWith(y, g);
    g.removeNode(node);
  });
  const imports = model.proto.opsetImport ?? [];
  const proto = how === 'nbits-4' && !imports.some((o) => o.domain === 'com.microsoft') ? { ...model.proto, opsetImport: [...imports, { domain: 'com.microsoft', version: 1n }] } : model.proto;
  return { model: { ...model, proto }, rewritten: found.length };
}
