// Building the nodes a rewrite inserts (preludes, lowerings): fresh value names derived from the rewritten
// node's name, constants, and layout ops in forms that every opset from 11 reads the same way.

import { type Attr, type DType, type Graph, intsAttr, Node, type NodeInit, onnxDataType, Tensor, tensorAttr, Value } from '@attnopt/ir';

/** A readable base for new value names: the node's name, else its first output's, else its op. */
export function baseName(node: Node): string {
  return node.name || node.outputs[0]?.name || node.op;
}

/** Builds nodes whose values are named `<base>/<what>`, unique in the graph. */
export class NodeBuilder {
  readonly nodes: Node[] = [];
  private readonly taken: Set<string>;

  constructor(
    graph: Graph,
    private readonly base: string,
  ) {
    this.taken = new Set([...graph.definedValues()].map((v) => v.name));
  }

  fresh(what: string, type?: Value['type']): Value {
    let name = `${this.base}/${what}`;
    for (let k = 1; this.taken.has(name); k++) name = `${this.base}/${what}_${k}`;
    this.taken.add(name);
    return new Value(name, type);
  }

  /** One node with `count` fresh outputs; returns the outputs. */
  node(init: Omit<NodeInit, 'outputs' | 'name'>, what: string, count = 1, types: (Value['type'] | undefined)[] = []): Value[] {
    const outs = Array.from({ length: count }, (_, k) => this.fresh(count === 1 ? what : `${what}${k}`, types[k]));
    const n = new Node({ ...init, name: outs[0]!.name, outputs: outs });
    this.nodes.push(n);
    return outs;
  }

  op(op: string, inputs: (Value | undefined)[], what: string, attrs: Record<string, Attr> = {}, type?: Value['type']): Value {
    return this.node({ op, inputs, attrs }, what, 1, [type])[0]!;
  }

  constant(what: string, tensor: Tensor): Value {
    return this.node({ op: 'Constant', attrs: { value: tensorAttr(tensor) } }, what, 1, [
      { kind: 'tensor', dtype: tensor.dtype, shape: tensor.shape },
    ])[0]!;
  }

  ints(what: string, values: readonly number[], scalar = false): Value {
    return this.constant(what, Tensor.fromValues('i64', scalar ? [] : [values.length], values.map((x) => BigInt(x))));
  }

  scalar(what: string, dtype: DType, x: number): Value {
    return this.constant(what, Tensor.fromValues(dtype, [], dtype === 'i64' ? [BigInt(x)] : [x]));
  }

  /** The size of `x` along `axis`, read at run time: an i64 scalar (Gather of its Shape). */
  dim(x: Value, axis: number, what: string): Value {
    return this.op('Gather', [this.op('Shape', [x], `${what}_shape`), this.scalar(`${what}_axis`, 'i64', axis)], what, { axis: { type: 'int', value: 0n } });
  }

  // Split, Squeeze and Unsqueeze changed form at opset 13 (attributes -> inputs) and the graph does not know
  // its opset, so the helpers below use forms every opset from 11 reads the same way.

  /** The parts of `x` along `axis` with the given sizes, as Slices (Split(x) without its opset-13 change). */
  split(x: Value, axis: number, sizes: readonly number[], what: string): Value[] {
    const axes = this.ints(`${what}_axis`, [axis]);
    let at = 0;
    return sizes.map((size, k) => {
      const part = this.op('Slice', [x, this.ints(`${what}${k}_start`, [at]), this.ints(`${what}${k}_end`, [at + size]), axes], `${what}${k}`);
      at += size;
      return part;
    });
  }

  reshape(x: Value, shape: readonly number[], what: string): Value {
    return this.op('Reshape', [x, this.ints(`${what}_shape`, shape)], what);
  }

  transpose(x: Value, perm: readonly number[], what: string): Value {
    return this.op('Transpose', [x], what, { perm: intsAttr(perm) });
  }

  /**
   * Unsqueeze(x, axes) for `x` of the given rank: Expand to `axes.length` leading 1s, then Transpose them into
   * place (exact for every shape, empty dims included).
   */
  unsqueeze(x: Value, axes: readonly number[], what: string, rank: number): Value {
    const r = rank + axes.length;
    const at = axes.map((a) => (a < 0 ? a + r : a)).sort((p, q) => p - q);
    const expanded = this.op('Expand', [x, this.ints(`${what}_ones`, Array(r).fill(1))], `${what}_expand`);
    const perm: number[] = [];
    let next = axes.length; // x's dims follow the new leading ones
    let lead = 0;
    for (let k = 0; k < r; k++) perm.push(at.includes(k) ? lead++ : next++);
    return perm.every((p, k) => p === k) ? expanded : this.transpose(expanded, perm, what);
  }

  /** Squeeze(x, [axis]) of a size-1 axis: Gather index 0 along it. */
  squeeze(x: Value, axis: number, what: string): Value {
    return this.op('Gather', [x, this.scalar(`${what}_index`, 'i64', 0)], what, { axis: { type: 'int', value: BigInt(axis) } });
  }

  cast(x: Value, to: DType, what: string): Value {
    return this.op('Cast', [x], what, { to: { type: 'int', value: BigInt(onnxDataType(to)) } });
  }
}
