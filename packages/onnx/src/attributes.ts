// ONNX AttributeProto <-> IR Attr. INT -> bigint, FLOAT, STRING (UTF-8 text; other bytes stay opaque), TENSOR,
// GRAPH (imported in the node's lexical scope), their lists; sparse tensors, type protos and references to
// function attributes (ref_attr_name) stay 'opaque' holding the encoded AttributeProto.

import { type Attr, type Graph, type Tensor } from '@attnopt/ir';
import { decodeMessage } from './decode.js';
import { encodeMessage } from './encode.js';
import { attributeTensorProto, tensorFromProto, type TensorImport } from './tensors.js';
import { AttributeType, type AttributeProto, type GraphProto } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** The attribute type when the proto does not state one (models older than IR version 2): from the field set. */
function inferredType(a: AttributeProto): number {
  if (a.type !== undefined && a.type !== AttributeType.UNDEFINED) return a.type;
  if (a.f !== undefined) return AttributeType.FLOAT;
  if (a.i !== undefined) return AttributeType.INT;
  if (a.s !== undefined) return AttributeType.STRING;
  if (a.t !== undefined) return AttributeType.TENSOR;
  if (a.g !== undefined) return AttributeType.GRAPH;
  if (a.floats?.length) return AttributeType.FLOATS;
  if (a.ints?.length) return AttributeType.INTS;
  if (a.strings?.length) return AttributeType.STRINGS;
  if (a.tensors?.length) return AttributeType.TENSORS;
  if (a.graphs?.length) return AttributeType.GRAPHS;
  return AttributeType.UNDEFINED;
}

const KIND_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(AttributeType).map(([name, no]) => [no, name.toLowerCase()]),
);

function opaque(a: AttributeProto, kind: string): Attr {
  return { type: 'opaque', kind, bytes: encodeMessage(a, 'AttributeProto') };
}

function text(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export interface AttributeImport extends TensorImport {
  readonly importGraph: (g: GraphProto) => Graph;
}

/** The IR attribute of an AttributeProto. */
export function attrFromProto(a: AttributeProto, ctx: AttributeImport): Attr {
  if (a.refAttrName !== undefined) return opaque(a, 'ref');
  const type = inferredType(a);
  switch (type) {
    case AttributeType.INT:
      return { type: 'int', value: a.i ?? 0n };
    case AttributeType.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case AttributeType.STRING: {
      const s = text(a.s ?? new Uint8Array(0));
      return s === undefined ? opaque(a, 'string') : { type: 'string', value: s };
    }
    case AttributeType.TENSOR:
      if (a.t === undefined) return ctx.fail('a TENSOR attribute without a tensor');
      return { type: 'tensor', value: tensorFromProto(a.t, ctx) };
    case AttributeType.GRAPH:
      if (a.g === undefined) return ctx.fail('a GRAPH attribute without a graph');
      return { type: 'graph', value: ctx.importGraph(a.g) };
    case AttributeType.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case AttributeType.INTS:
      return { type: 'ints', value: [...(a.ints ?? [])] };
    case AttributeType.STRINGS: {
      const strings = (a.strings ?? []).map(text);
      return strings.every((s) => s !== undefined) ? { type: 'strings', value: strings as string[] } : opaque(a, 'strings');
    }
    case AttributeType.TENSORS:
      return { type: 'tensors', value: (a.tensors ?? []).map((t) => tensorFromProto(t, ctx)) };
    case AttributeType.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => ctx.importGraph(g)) };
    default:
      return opaque(a, KIND_NAMES[type] ?? `type ${type}`);
  }
}

export interface AttributeExport {
  readonly exportGraph: (g: Graph) => GraphProto;
  /** The text of a `spec` attribute (printSpec). */
  readonly specText: (attr: Extract<Attr, { type: 'spec' }>) => string;
}

const tensorProto = (t: Tensor) => attributeTensorProto(t);

/** A fresh AttributeProto for `attr` named `name`. */
export function attrToProto(name: string, attr: Attr, ctx: AttributeExport): AttributeProto {
  switch (attr.type) {
    case 'int':
      return { name, type: AttributeType.INT, i: attr.value };
    case 'float':
      return { name, type: AttributeType.FLOAT, f: attr.value };
    case 'string':
      return { name, type: AttributeType.STRING, s: utf8Encoder.encode(attr.value) };
    case 'spec':
      return { name, type: AttributeType.STRING, s: utf8Encoder.encode(ctx.specText(attr)) };
    case 'tensor':
      return { name, type: AttributeType.TENSOR, t: tensorProto(attr.value) };
    case 'graph':
      return { name, type: AttributeType.GRAPH, g: ctx.exportGraph(attr.value) };
    case 'ints':
      return { name, type: AttributeType.INTS, ints: BigInt64Array.from(attr.value) };
    case 'floats':
      return { name, type: AttributeType.FLOATS, floats: Float32Array.from(attr.value) };
    case 'strings':
      return { name, type: AttributeType.STRINGS, strings: attr.value.map((s) => utf8Encoder.encode(s)) };
    case 'tensors':
      return { name, type: AttributeType.TENSORS, tensors: attr.value.map(tensorProto) };
    case 'graphs':
      return { name, type: AttributeType.GRAPHS, graphs: attr.value.map(ctx.exportGraph) };
    case 'opaque': {
      const proto = decodeMessage<AttributeProto>(attr.bytes, 'AttributeProto');
      return proto.name === name ? proto : { ...proto, name };
    }
  }
}
