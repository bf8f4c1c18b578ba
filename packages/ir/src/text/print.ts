// The printer: graphs, types and attributes as the line-oriented text form that parse.ts reads back.

import type { Attr } from '../attributes.js';
import { ONNX_DOMAIN, type Graph, type Node, type Value } from '../graph.js';
import { type Dim, isSymbolName, type Shape, UNKNOWN_DIM } from '../shape.js';
import type { ValueType } from '../types.js';
import { formatFloat, toHex } from './numbers.js';
import { printSpec } from './spec-text.js';
import { printName, printOpName, printValueName, quote } from './syntax.js';
import { printTensor } from './tensor-text.js';

const INDENT = '  ';

export function printDim(dim: Dim): string {
  if (typeof dim === 'number') return String(dim);
  if (dim === UNKNOWN_DIM) return '?';
  return isSymbolName(dim) ? dim : quote(dim);
}

export function printShape(shape: Shape | undefined): string {
  return shape === undefined ? '[*]' : `[${shape.map(printDim).join(', ')}]`;
}

/** `f32[B, S, 512]`, `f32[*]`, `seq<...>`, `opt<...>`, `map<i64, f32[*]>`, `sparse<f32[2]>`, `?` when unknown. */
export function printType(type: ValueType | undefined): string {
  if (type === undefined) return '?';
  switch (type.kind) {
    case 'tensor':
      return `${type.dtype}${printShape(type.shape)}`;
    case 'sparse':
      return `sparse<${type.dtype}${printShape(type.shape)}>`;
    case 'sequence':
      return `seq<${printType(type.elem)}>`;
    case 'optional':
      return `opt<${printType(type.elem)}>`;
    case 'map':
      return `map<${type.key}, ${printType(type.value)}>`;
  }
}

/** `%name: type` (or just `%name` when the type is unknown). */
function printDef(v: Value): string {
  return v.type === undefined ? printValueName(v.name) : `${printValueName(v.name)}: ${printType(v.type)}`;
}

const listOf = (kind: string, items: readonly string[]) => (items.length ? `[${items.join(', ')}]` : `${kind}[]`);

/** One attribute value; nested graphs are printed at `indent`. */
export function printAttr(attr: Attr, indent = ''): string {
  switch (attr.type) {
    case 'int':
      return String(attr.value);
    case 'float':
      return formatFloat(attr.value);
    case 'string':
      return quote(attr.value);
    case 'tensor':
      return printTensor(attr.value);
    case 'graph':
      return printGraphAt(attr.value, indent);
    case 'ints':
      return listOf('ints', attr.value.map(String));
    case 'floats':
      return listOf('floats', attr.value.map((x) => formatFloat(x)));
    case 'strings':
      return listOf('strings', attr.value.map(quote));
    case 'tensors':
      return listOf('tensors', attr.value.map(printTensor));
    case 'graphs':
      return listOf('graphs', attr.value.map((g) => printGraphAt(g, indent)));
    case 'spec':
      return `spec<${printSpec(attr.value)}>`;
    case 'opaque':
      return `opaque<${quote(attr.kind)}> x${quote(toHex(attr.bytes))}`;
  }
}

function printNode(node: Node, indent: string): string {
  const outs = node.outputs.length ? node.outputs.map(printDef).join(', ') : '()';
  const op = node.domain === ONNX_DOMAIN ? printOpName(node.op) : `${printName(node.domain)}::${printOpName(node.op)}`;
  const ins = node.inputs.map((v) => (v === undefined ? '_' : printValueName(v.name))).join(', ');
  const attrs = [...node.attrs].map(([k, a]) => `${printName(k)} = ${printAttr(a, indent)}`);
  const attrText = attrs.length ? ` {${attrs.join(', ')}}` : '';
  const nameText = node.name ? ` name=${quote(node.name)}` : '';
  return `${outs} = ${op}(${ins})${attrText}${nameText}`;
}

/** A graph whose first line continues the current line and whose body is indented one step past `indent`. */
function printGraphAt(graph: Graph, indent: string): string {
  const inner = indent + INDENT;
  const lines = [
    ...graph.inputs.map((v) => `input ${printDef(v)}`),
    ...graph.initializers.map((v) => `init ${printDef(v)} = ${printTensor(v.initializer!)}`),
    ...graph.nodes.map((n) => printNode(n, inner)),
    ...(graph.outputs.length ? [`output ${graph.outputs.map((v) => printValueName(v.name)).join(', ')}`] : []),
  ];
  return `graph ${printName(graph.name)} {\n${lines.map((l) => inner + l + '\n').join('')}${indent}}`;
}

/** The text form of a graph; parseGraph reads it back to an equal graph. Annotations are not printed. */
export function printGraph(graph: Graph): string {
  return `${printGraphAt(graph, '')}\n`;
}
