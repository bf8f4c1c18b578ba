// Typed reads of a node's attributes with ONNX defaults; a wrong type names the attribute.

import type { Attr, Node, Tensor } from '@attnopt/ir';

function get<T extends Attr['type']>(node: Node, name: string, type: T): Extract<Attr, { type: T }> | undefined {
  const a = node.attrs.get(name);
  if (a === undefined) return undefined;
  if (a.type !== type) throw new Error(`attribute ${name} must be ${type}, got ${a.type}`);
  return a as Extract<Attr, { type: T }>;
}

export function attrInt(node: Node, name: string, fallback: number): number;
export function attrInt(node: Node, name: string): number | undefined;
export function attrInt(node: Node, name: string, fallback?: number): number | undefined {
  const a = get(node, name, 'int');
  return a === undefined ? fallback : Number(a.value);
}

export function attrInts(node: Node, name: string): number[] | undefined {
  return get(node, name, 'ints')?.value.map(Number);
}

export function attrFloat(node: Node, name: string, fallback: number): number {
  return get(node, name, 'float')?.value ?? fallback;
}

export function attrString(node: Node, name: string, fallback: string): string {
  return get(node, name, 'string')?.value ?? fallback;
}

export function attrTensor(node: Node, name: string): Tensor | undefined {
  return get(node, name, 'tensor')?.value;
}
