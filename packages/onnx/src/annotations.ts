// What the ONNX bridge keeps on IR annotations so that export gives back what came in: the original protos
// and the state the IR objects had when imported. A proto is reused only while that state is unchanged.

import type { Attr, Graph, Node, Tensor, Value, ValueType } from '@attnopt/ir';
import type { ExternalDataResolver } from './external-data.js';
import type { AttributeProto, FunctionProto, GraphProto, NodeProto, OperatorSetIdProto, SparseTensorProto, ValueInfoProto } from './types.js';

/** A ValueInfoProto and the IR value it describes (undefined: it names nothing in scope; kept as is). */
export interface ValueInfoEntry {
  readonly proto: ValueInfoProto;
  readonly value: Value | undefined;
}

/** An attribute as imported: its proto is reused while the node still holds this very Attr. */
export interface AttributeEntry {
  readonly attr: Attr;
  readonly proto: AttributeProto;
}

/** What a graph came from. */
export interface GraphOrigin {
  readonly proto: GraphProto;
  readonly inputs: readonly ValueInfoEntry[];
  readonly outputs: readonly ValueInfoEntry[];
  readonly valueInfo: readonly ValueInfoEntry[];
  /** The dense initializer values in file order (inputs with a default value included). */
  readonly initializerOrder: readonly Value[];
}

/** What a sparse initializer came from: kept while the value holds `tensor` (a placeholder without bytes). */
export interface SparseOrigin {
  readonly proto: SparseTensorProto;
  readonly tensor: Tensor;
}

export const ANNOTATION = {
  /** Graph: GraphOrigin. */
  graph: 'onnx.graph',
  /** Node: the NodeProto it came from. */
  node: 'onnx.node',
  /** Node: Map<string, AttributeEntry>. */
  attributes: 'onnx.attributes',
  /** Value: its type right after import (export rebuilds a ValueInfoProto only when the type changed). */
  type: 'onnx.type',
  /** Value: on the placeholder made for an omitted ('') node output; holds the placeholder's name. */
  omitted: 'onnx.omitted',
  /** Value: SparseOrigin of a sparse initializer. */
  sparse: 'onnx.sparseInitializer',
  /** Graph (the main graph of a model that defines any): LocalFunctions. */
  functions: 'onnx.functions',
} as const;

/** The model-local functions (ModelProto.functions) and what their bodies are read with. */
export interface LocalFunctions {
  readonly functions: readonly FunctionProto[];
  readonly opsetImport: readonly OperatorSetIdProto[];
  readonly file: string | undefined;
  readonly externalData: ExternalDataResolver | undefined;
}

export const graphOrigin = (g: Graph): GraphOrigin | undefined => g.annotations.get(ANNOTATION.graph) as GraphOrigin | undefined;
export const nodeOrigin = (n: Node): NodeProto | undefined => n.annotations.get(ANNOTATION.node) as NodeProto | undefined;
export const attributeOrigins = (n: Node): ReadonlyMap<string, AttributeEntry> | undefined =>
  n.annotations.get(ANNOTATION.attributes) as ReadonlyMap<string, AttributeEntry> | undefined;
export const sparseOrigin = (v: Value): SparseOrigin | undefined => v.annotations.get(ANNOTATION.sparse) as SparseOrigin | undefined;

/** Whether the value's type is still the one it was imported with. */
export function typeUnchanged(value: Value): boolean {
  return value.annotations.has(ANNOTATION.type) && (value.annotations.get(ANNOTATION.type) as ValueType | undefined) === value.type;
}

/** Whether `value` stands for an omitted ('') output and nothing reads it: export writes ''. */
export function isOmitted(value: Value, graphOutputs: ReadonlySet<Value>): boolean {
  return value.annotations.get(ANNOTATION.omitted) === value.name && value.uses().length === 0 && !graphOutputs.has(value);
}
