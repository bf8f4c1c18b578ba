// Arbitrary IR graphs: well-formed ones (every value kind, attribute kind, scoping and Attention layout)
// and malformed ones carrying the defect a verifier must report.

import fc from 'fast-check';
import {
  ALL_DTYPES,
  type AttentionLayout,
  type Attr,
  attentionNode,
  type Dim,
  type DType,
  Graph,
  Node,
  type Shape,
  Tensor,
  tensorType,
  Value,
  type ValueType,
  storageBytes,
  type VerifyRule,
} from '@attnopt/ir';
import { attentionSpecArbitrary } from './spec.js';

export interface GraphArbitraryOptions {
  /** Fewest top-level nodes (default 0). */
  readonly minNodes?: number;
  /** Most top-level nodes (default 6). */
  readonly maxNodes?: number;
  /** Nesting depth of subgraph attributes (default 2). */
  readonly maxDepth?: number;
}

/** The defects malformedGraphArbitrary plants; each is the `rule` of the VerifyIssue that reports it. */
export type GraphDefect = VerifyRule;

export const GRAPH_DEFECTS: readonly GraphDefect[] = [
  'dangling',
  'use-before-def',
  'cycle',
  'defined-twice',
  'undefined-output',
  'bookkeeping',
  'attention',
  'shape',
];

export interface MalformedGraph {
  readonly graph: Graph;
  readonly defect: GraphDefect;
  /** How the verifier names the mutated node (`node.describe()`), or `graph "name"` for graph outputs. */
  readonly node: string;
}

const NAME_BASES = ['x', 'v_', '/encoder/layer.0/MatMul_output_', 'onnx::Add_', 'a b ', 'q"', 'ünï', '', 'tab\t', 'layer.'];
const DIMS: readonly Dim[] = [0, 1, 2, 3, 4, 'B', 'S', 'batch_size + 1', '?', 'seq len', 'ß', 'inf'];
const DOMAINS = ['', 'com.microsoft', 'ai.onnx.ml', 'custom.x', 'my domain'];
const OPS = ['Foo', 'Bar', 'FusedThing', 'weird op', 'Identity', 'Loop'];
const ATTR_NAMES = ['axis', 'then_branch', 'a b', 'perm', 'x.y', 'é'];
const TENSOR_DTYPES: readonly DType[] = ['f32', 'f64', 'f16', 'bf16', 'i8', 'u8', 'i16', 'u32', 'i64', 'u64', 'bool', 'f8e4m3fn', 'i4', 'u4', 'string'];
const VALUE_DTYPES: ReadonlySet<DType> = new Set(['f32', 'f64', 'f16', 'bf16', 'i8', 'u8', 'i16', 'u32', 'bool']);
const LAYOUTS: readonly AttentionLayout[] = ['bsd', 'bhsd', 'bshd', 'packed-qkv'];

/** Draws the pieces of a graph from one fast-check generator. */
class GraphBuilder {
  private counter = 0;

  constructor(
    private readonly g: fc.GeneratorValue,
    private readonly maxDepth: number,
  ) {}

  int(min: number, max: number): number {
    return this.g(fc.integer, { min, max });
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }

  chance(percent: number): boolean {
    return this.int(0, 99) < percent;
  }

  name(): string {
    return `${this.pick(NAME_BASES)}${this.counter++}`;
  }

  shape(): Shape {
    return Array.from({ length: this.int(0, 3) }, () => this.pick(DIMS));
  }

  type(): ValueType | undefined {
    const r = this.int(0, 99);
    const dtype = this.pick(ALL_DTYPES);
    if (r < 60) return tensorType(dtype, this.shape());
    if (r < 70) return undefined;
    if (r < 78) return tensorType(dtype);
    if (r < 84) return { kind: 'sparse', dtype, shape: this.shape() };
    if (r < 90) return { kind: 'sequence', elem: tensorType(dtype, this.shape()) };
    if (r < 95) return { kind: 'optional', elem: { kind: 'sequence', elem: tensorType(dtype) } };
    return { kind: 'map', key: this.pick(['i64', 'string'] as const), value: tensorType(dtype) };
  }

  tensor(): Tensor {
    const dtype = this.pick(TENSOR_DTYPES);
    const shape = Array.from({ length: this.int(0, 2) }, () => this.int(0, 3));
    const n = shape.reduce((a, b) => a * b, 1);
    if (dtype === 'string') return Tensor.fromStrings(shape, this.g(fc.array, fc.string({ unit: 'binary' }), { minLength: n, maxLength: n }));
    if (!VALUE_DTYPES.has(dtype) && dtype !== 'i64' && dtype !== 'u64' || this.chance(20)) {
      const bytes = storageBytes(dtype, n);
      return Tensor.fromBytes(dtype, shape, this.g(fc.uint8Array, { minLength: bytes, maxLength: bytes }));
    }
    if (dtype === 'i64' || dtype === 'u64') {
      const [min, max] = dtype === 'i64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      return Tensor.fromValues(dtype, shape, this.g(fc.array, fc.bigInt({ min, max }), { minLength: n, maxLength: n }));
    }
    const values = this.g(fc.array, fc.double(), { minLength: n, maxLength: n });
    const isInt = !['f32', 'f64', 'f16', 'bf16'].includes(dtype);
    // integer dtypes: values in [0, 100), inside the range of every one of them (unsigned included)
    const toInt = (x: number) => (Number.isFinite(x) ? Math.abs(Math.trunc(x) % 100) : 0);
    return Tensor.fromValues(dtype, shape, isInt ? values.map(toInt) : values);
  }

  attr(scope: readonly Value[], depth: number): Attr {
    const kinds = ['int', 'float', 'string', 'tensor', 'ints', 'floats', 'strings', 'tensors', 'spec', 'opaque'];
    const kind = this.pick(depth < this.maxDepth ? [...kinds, 'graph', 'graphs'] : kinds);
    const list = <T>(item: () => T): T[] => Array.from({ length: this.int(0, 3) }, item);
    const int = () => this.g(fc.bigInt, { min: -(2n ** 63n), max: 2n ** 63n - 1n });
    const float = () => this.g(fc.double);
    const str = () => this.g(fc.string, { unit: 'binary' });
    switch (kind) {
      case 'int': return { type: 'int', value: int() };
      case 'float': return { type: 'float', value: float() };
      case 'string': return { type: 'string', value: str() };
      case 'tensor': return { type: 'tensor', value: this.tensor() };
      case 'ints': return { type: 'ints', value: list(int) };
      case 'floats': return { type: 'floats', value: list(float) };
      case 'strings': return { type: 'strings', value: list(str) };
      case 'tensors': return { type: 'tensors', value: list(() => this.tensor()) };
      case 'spec': return { type: 'spec', value: this.g(attentionSpecArbitrary, { maxLen: 16 }) };
      case 'graph': return { type: 'graph', value: this.subgraph(scope, depth + 1) };
      case 'graphs': return { type: 'graphs', value: list(() => this.subgraph(scope, depth + 1)) };
      default: return { type: 'opaque', kind: str(), bytes: this.g(fc.uint8Array, { maxLength: 4 }) };
    }
  }

  /** A generic node reading values of `scope` (some inputs omitted), appended to `graph`. */
  genericNode(graph: Graph, scope: Value[], depth: number): Node {
    const inputs = Array.from({ length: this.int(0, 3) }, () => (scope.length && !this.chance(20) ? this.pick(scope) : undefined));
    const outputs = Array.from({ length: this.int(0, 3) }, () => new Value(this.name(), this.type()));
    const attrs = new Map<string, Attr>();
    for (let k = this.int(0, 3); k > 0; k--) attrs.set(`${this.pick(ATTR_NAMES)}${k}`, this.attr(scope, depth));
    const node = graph.add({
      domain: this.pick(DOMAINS),
      op: this.pick(OPS),
      inputs,
      outputs,
      attrs,
      ...(this.chance(30) ? { name: this.name() } : {}),
    });
    scope.push(...outputs);
    return node;
  }

  /** An Attention node with fresh Q/K/V (and maybe bias) graph inputs whose shapes fit its parameters. */
  attention(graph: Graph, scope: Value[], broken = false): Node {
    const kvNumHeads = this.int(1, 2);
    const numHeads = kvNumHeads * this.int(1, 3);
    const layout = this.pick(LAYOUTS);
    const headDim = this.pick([2, 4, 8]);
    const vHeadDim = layout === 'packed-qkv' ? headDim : this.pick([headDim, 4]);
    const b = this.pick<Dim>([2, 'B', '?']);
    const sq = this.pick<Dim>([5, 'S', '?']);
    const sk = layout === 'packed-qkv' ? sq : this.pick<Dim>([7, 'S', 'T']);
    const shapes: Record<AttentionLayout, (h: number, s: Dim, d: number) => Dim[]> = {
      bsd: (h, s, d) => [b, s, h * d],
      bhsd: (h, s, d) => [b, h, s, d],
      bshd: (h, s, d) => [b, s, h, d],
      'packed-qkv': (h, s, d) => [b, s, h * d],
    };
    const shape = shapes[layout];
    const input = (dims: Dim[]) => {
      const v = graph.addInput(new Value(this.name(), tensorType(this.pick(['f32', 'f16'] as const), dims)));
      scope.push(v);
      return v;
    };
    const qDims = layout === 'packed-qkv' ? shape(numHeads + 2 * kvNumHeads, sq, headDim) : shape(numHeads, sq, headDim);
    if (broken) qDims[qDims.length - 1] = (qDims[qDims.length - 1] as number) + 1;
    const q = input(qDims);
    const k = layout === 'packed-qkv' ? undefined : input(shape(kvNumHeads, sk, headDim));
    const v = layout === 'packed-qkv' ? undefined : input(shape(kvNumHeads, sk, vHeadDim));
    const bias = this.chance(30) ? input([b, 1, sq, sk]) : undefined;
    const y = new Value(this.name(), this.chance(80) ? tensorType('f32', shape(numHeads, sq, vHeadDim)) : undefined);
    const node = attentionNode(
      {
        numHeads,
        kvNumHeads,
        headDim,
        vHeadDim,
        scale: this.g(fc.double, { min: -4, max: 4, noNaN: true }),
        softcap: this.pick([0, 0.5, 30]),
        layout,
        spec: this.g(attentionSpecArbitrary, { maxLen: 16 }),
      },
      { q, ...(k ? { k } : {}), ...(v ? { v } : {}), ...(bias ? { bias } : {}) },
      { y },
      this.chance(50) ? this.name() : '',
    );
    graph.addNode(node);
    scope.push(y);
    return node;
  }

  /** A subgraph whose nodes may read `outer` (values of enclosing graphs defined before its node). */
  subgraph(outer: readonly Value[], depth: number): Graph {
    const graph = new Graph(this.name());
    const scope = [...outer];
    for (let k = this.int(0, 2); k > 0; k--) scope.push(graph.addInput(new Value(this.name(), this.type())));
    for (let k = this.int(0, 3); k > 0; k--) this.genericNode(graph, scope, depth);
    if (scope.length === 0) scope.push(graph.addInput(new Value(this.name(), this.type())));
    for (let k = this.int(1, 2); k > 0; k--) graph.outputs.push(this.pick(scope));
    return graph;
  }

  graph(minNodes: number, maxNodes: number): Graph {
    const graph = new Graph(this.pick(['main', 'my model', 'g']));
    const scope: Value[] = [];
    for (let k = this.int(1, 4); k > 0; k--) scope.push(graph.addInput(new Value(this.name(), this.type())));
    for (let k = this.int(0, 3); k > 0; k--) {
      const t = this.tensor();
      scope.push(graph.addInitializer(new Value(this.name(), this.chance(70) ? tensorType(t.dtype, t.shape) : undefined, t)));
    }
    for (let k = this.int(minNodes, maxNodes); k > 0; k--) {
      if (this.chance(25)) this.attention(graph, scope);
      else this.genericNode(graph, scope, 0);
    }
    for (let k = this.int(1, 3); k > 0; k--) graph.outputs.push(this.pick(scope));
    return graph;
  }

  /** Every graph in `graph`, itself first. */
  graphs(graph: Graph): Graph[] {
    return [graph, ...[...graph.allNodes()].flatMap((n) => n.subgraphs())];
  }

  /** Plants `defect` in `graph` and says which node the verifier must name. */
  mutate(graph: Graph, defect: GraphDefect): MalformedGraph {
    const target = this.pick(this.graphs(graph));
    const fresh = (init: ConstructorParameters<typeof Node>[0]) => new Node({ ...init, name: this.name() });
    const done = (node: Node | string): MalformedGraph => ({
      graph,
      defect,
      node: typeof node === 'string' ? node : node.describe(),
    });
    switch (defect) {
      case 'dangling': {
        const node = target.nodes.length ? this.pick(target.nodes) : target.add({ op: 'Foo', name: this.name() });
        node.setInput(this.int(0, node.inputs.length), new Value(this.name()));
        return done(node);
      }
      case 'use-before-def': {
        const p = new Value(this.name());
        const producer = fresh({ op: 'Produce', outputs: [p] });
        const consumer = fresh({ op: 'Consume', inputs: [p], outputs: [new Value(this.name())] });
        target.addNode(consumer);
        target.addNode(producer);
        return done(consumer);
      }
      case 'cycle': {
        const withOutputs = target.nodes.filter((n) => n.outputs.length > 0);
        if (withOutputs.length && this.chance(50)) {
          const node = this.pick(withOutputs);
          node.setInput(node.inputs.length, this.pick(node.outputs));
          return done(node);
        }
        const x = new Value(this.name());
        const y = new Value(this.name());
        const a = fresh({ op: 'A', inputs: [y], outputs: [x] });
        target.addNode(a);
        target.addNode(fresh({ op: 'B', inputs: [x], outputs: [y] }));
        return done(a);
      }
      case 'defined-twice': {
        const home = [...target.definedValues()].length ? target : graph;
        const existing = this.pick([...home.definedValues()]);
        return done(home.addNode(fresh({ op: 'Dup', outputs: [new Value(existing.name)] })));
      }
      case 'undefined-output':
        target.outputs.push(new Value(this.name()));
        return done(`graph "${target.name}"`);
      case 'bookkeeping': {
        const readers = target.nodes.filter((n) => n.inputs.some((v) => v !== undefined));
        const node = readers.length ? this.pick(readers) : graph.add({ op: 'Use', inputs: [graph.inputs[0]!], name: this.name() });
        const k = node.inputs.findIndex((v) => v !== undefined);
        node.inputs[k]!.removeUse(node, k);
        return done(node);
      }
      case 'attention':
        return done(this.attention(graph, [], true));
      case 'shape': {
        const op = this.pick(['MatMul', 'Add', 'Transpose', 'Softmax']);
        const a = graph.addInput(new Value(this.name(), tensorType('f32', [2, 3])));
        const b = graph.addInput(new Value(this.name(), tensorType('f32', [4, 5])));
        const attrs: Record<string, Attr> =
          op === 'Transpose' ? { perm: { type: 'ints', value: [0n, 1n, 2n] } } : op === 'Softmax' ? { axis: { type: 'int', value: 2n } } : {};
        return done(graph.add({ op, inputs: op === 'MatMul' || op === 'Add' ? [a, b] : [a], outputs: [new Value(this.name())], attrs, name: this.name() }));
      }
    }
  }
}

/** Well-formed random graphs: verifyGraph finds no issue in any of them. */
export function graphArbitrary(options: GraphArbitraryOptions = {}): fc.Arbitrary<Graph> {
  const { minNodes = 0, maxNodes = 6, maxDepth = 2 } = options;
  return fc.gen().map((g) => new GraphBuilder(g, maxDepth).graph(minNodes, maxNodes));
}

/** A well-formed graph with one planted defect, the kind of defect, and the node it concerns. */
export function malformedGraphArbitrary(options: GraphArbitraryOptions = {}): fc.Arbitrary<MalformedGraph> {
  const { minNodes = 0, maxNodes = 4, maxDepth = 2 } = options;
  return fc.gen().map((g) => {
    const b = new GraphBuilder(g, maxDepth);
    const graph = b.graph(minNodes, maxNodes);
    return b.mutate(graph, b.pick(GRAPH_DEFECTS));
  });
}
