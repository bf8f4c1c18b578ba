// Values, nodes and graphs. A value knows its producer and its uses; a node keeps any op (ONNX or
// attnopt's own) with its attributes exactly as given; a graph owns inputs, initializers, nodes in
// order, and outputs. Subgraphs are graph-valued attributes and may use values of enclosing graphs.

import { type Attr, attrGraphs } from './attributes.js';
import type { Tensor } from './tensor.js';
import { printName, printValueName } from './text/syntax.js';
import type { ValueType } from './types.js';

/** The ONNX default domain is written as the empty string. */
export const ONNX_DOMAIN = '';

export interface Use {
  readonly node: Node;
  readonly index: number;
}

export class Value {
  private readonly usesList: Use[] = [];
  /** Set when this value is a node output. */
  producer: Node | undefined = undefined;
  /** The output index on `producer`. */
  outputIndex = -1;
  /** The constant held by a graph initializer. */
  initializer: Tensor | undefined;
  /** Free-form facts attached by bridges and passes (never printed). */
  readonly annotations = new Map<string, unknown>();

  constructor(
    public name: string,
    public type?: ValueType,
    initializer?: Tensor,
  ) {
    this.initializer = initializer;
  }

  /** The node inputs that read this value, in no particular order. */
  uses(): readonly Use[] {
    return this.usesList;
  }

  /** @internal kept in sync by Node */
  addUse(use: Use): void {
    this.usesList.push(use);
  }

  /** @internal kept in sync by Node */
  removeUse(node: Node, index: number): void {
    const k = this.usesList.findIndex((u) => u.node === node && u.index === index);
    if (k >= 0) this.usesList.splice(k, 1);
  }

  /** Points every use of this value (and, if asked, graph outputs) at `other` instead. */
  replaceAllUsesWith(other: Value, graph?: Graph): void {
    for (const { node, index } of [...this.usesList]) node.setInput(index, other);
    if (graph) graph.outputs.forEach((v, k) => v === this && (graph.outputs[k] = other));
  }
}

export interface NodeInit {
  readonly domain?: string;
  readonly op: string;
  readonly name?: string;
  readonly inputs?: readonly (Value | undefined)[];
  readonly outputs?: readonly Value[];
  readonly attrs?: Iterable<readonly [string, Attr]> | Record<string, Attr>;
}

export class Node {
  readonly domain: string;
  readonly op: string;
  name: string;
  readonly outputs: Value[];
  readonly attrs: Map<string, Attr>;
  /** Free-form facts attached by bridges and passes (never printed). */
  readonly annotations = new Map<string, unknown>();
  /** The graph this node belongs to once added. */
  graph: Graph | undefined = undefined;
  private readonly inputList: (Value | undefined)[] = [];

  constructor(init: NodeInit) {
    this.domain = init.domain ?? ONNX_DOMAIN;
    this.op = init.op;
    this.name = init.name ?? '';
    const attrs = init.attrs ?? [];
    this.attrs = new Map(Symbol.iterator in attrs ? (attrs as Iterable<[string, Attr]>) : Object.entries(attrs));
    (init.inputs ?? []).forEach((v, k) => this.setInput(k, v));
    this.outputs = [...(init.outputs ?? [])];
    this.outputs.forEach((v, k) => {
      if (v.producer && v.producer !== this) {
        throw new Error(`value ${printValueName(v.name)} is already produced by ${v.producer.describe()}`);
      }
      v.producer = this;
      v.outputIndex = k;
    });
  }

  /** Inputs by position; `undefined` marks an omitted optional input (ONNX's empty name). */
  get inputs(): readonly (Value | undefined)[] {
    return this.inputList;
  }

  setInput(index: number, value: Value | undefined): void {
    this.inputList[index]?.removeUse(this, index);
    while (this.inputList.length <= index) this.inputList.push(undefined);
    this.inputList[index] = value;
    value?.addUse({ node: this, index });
  }

  /** Drops trailing inputs from `length` on. */
  truncateInputs(length: number): void {
    while (this.inputList.length > length) this.inputList.pop()?.removeUse(this, this.inputList.length);
  }

  /** Detaches this node from its inputs (before deleting it). */
  dropInputs(): void {
    this.truncateInputs(0);
  }

  /** `domain::op` or just `op` for the ONNX domain. */
  get qualifiedOp(): string {
    return this.domain === ONNX_DOMAIN ? printName(this.op) : `${printName(this.domain)}::${printName(this.op)}`;
  }

  /** How errors name this node: its name when it has one, else its op and first output. */
  describe(): string {
    const out = this.outputs[0] ? ` -> ${printValueName(this.outputs[0].name)}` : '';
    return this.name ? `node ${JSON.stringify(this.name)} (${this.qualifiedOp})` : `node ${this.qualifiedOp}${out}`;
  }

  /** Graphs held by this node's attributes. */
  subgraphs(): Graph[] {
    return [...this.attrs.values()].flatMap(attrGraphs);
  }
}

export class Graph {
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  /**
   * Constant values (weights). A graph input that has a default (ONNX lists initializers among the
   * inputs below IR version 4, and allows it later) is one Value in `inputs` whose `initializer` is set;
   * it is not repeated here, so every value is defined once.
   */
  readonly initializers: Value[] = [];
  readonly nodes: Node[] = [];
  /** Free-form facts attached by bridges and passes (never printed). */
  readonly annotations = new Map<string, unknown>();

  constructor(public name = 'main') {}

  addInput(value: Value): Value {
    this.inputs.push(value);
    return value;
  }

  addInitializer(value: Value): Value {
    if (!value.initializer) throw new Error(`initializer ${printValueName(value.name)} has no tensor`);
    this.initializers.push(value);
    return value;
  }

  /** Appends a node (or inserts it at `index`) and returns it. */
  addNode(node: Node, index = this.nodes.length): Node {
    if (node.graph) throw new Error(`${node.describe()} already belongs to graph "${node.graph.name}"`);
    node.graph = this;
    this.nodes.splice(index, 0, node);
    return node;
  }

  /** Builds and appends a node. */
  add(init: NodeInit): Node {
    return this.addNode(new Node(init));
  }

  /** Removes a node whose outputs are no longer used; detaches its inputs. */
  removeNode(node: Node): void {
    const k = this.nodes.indexOf(node);
    if (k < 0) throw new Error(`${node.describe()} is not in graph "${this.name}"`);
    for (const v of node.outputs) {
      if (v.uses().length > 0 || this.outputs.includes(v)) {
        throw new Error(`cannot remove ${node.describe()}: its output ${printValueName(v.name)} is still used`);
      }
    }
    node.dropInputs();
    node.graph = undefined;
    this.nodes.splice(k, 1);
  }

  /** Every value defined in this graph: inputs, initializers and node outputs. */
  *definedValues(): Iterable<Value> {
    yield* this.inputs;
    yield* this.initializers;
    for (const n of this.nodes) yield* n.outputs;
  }

  /** Nodes of this graph and of every nested subgraph, depth first. */
  *allNodes(): Iterable<Node> {
    for (const n of this.nodes) {
      yield n;
      for (const g of n.subgraphs()) yield* g.allNodes();
    }
  }
}

/**
 * Graph annotation: the opset of the default ONNX domain that the graph's nodes follow. Importers set it on every
 * graph (subgraphs included); some ops' defaults depend on it (Softmax's axis: 1 before opset 13, -1 from 13 on).
 */
export const DEFAULT_OPSET_ANNOTATION = 'onnx.defaultOpset';

/** The default-domain opset `graph` follows, when an importer recorded it. */
export function defaultOpsetOf(graph: Graph | undefined): number | undefined {
  const v = graph?.annotations.get(DEFAULT_OPSET_ANNOTATION);
  return typeof v === 'number' ? v : undefined;
}
