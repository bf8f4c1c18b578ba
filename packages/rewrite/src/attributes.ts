// Reading a node's attributes as numbers: undefined when absent or of another type.

import type { Node } from '@attnopt/ir';

/** An `int` attribute as a number. */
export function attrInt(node: Node, name: string): number | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'int' ? Number(a.value) : undefined;
}

/** A `float` attribute (an `int` one is read as its value). */
export function attrFloat(node: Node, name: string): number | undefined {
  const a = node.attrs.get(name);
  if (a?.type === 'float') return a.value;
  return a?.type === 'int' ? Number(a.value) : undefined;
}

/** An `ints` attribute as numbers. */
export function attrInts(node: Node, name: string): number[] | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'ints' ? a.value.map(Number) : undefined;
}

/** The attribute names present on `node` that are not in `known`. */
export function unknownAttrs(node: Node, known: readonly string[]): string[] {
  return [...node.attrs.keys()].filter((k) => !known.includes(k));
}
