// Shapes with symbolic dimensions: a dimension is a size, a named symbol ("batch", "S"), or unknown.

/** One dimension: a non-negative integer, a symbol name, or `'?'` for an unknown size. */
export type Dim = number | string;

/** A shape of known rank. A value whose rank is unknown has no shape at all (`undefined`). */
export type Shape = readonly Dim[];

export const UNKNOWN_DIM = '?';

const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether `name` can stand as a symbolic dimension in the text form without quoting. */
export function isSymbolName(name: string): boolean {
  return SYMBOL.test(name);
}

export function isStaticDim(dim: Dim): dim is number {
  return typeof dim === 'number';
}

export function isStaticShape(shape: Shape): shape is readonly number[] {
  return shape.every(isStaticDim);
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function dimsEqual(a: Dim, b: Dim): boolean {
  return a === b;
}

/**
 * Whether two dims can describe the same runtime size: equal sizes, equal symbols, or either one
 * unknown or symbolic (a symbol may bind to any size).
 */
export function dimsCompatible(a: Dim, b: Dim): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  return true;
}

export function shapesEqual(a: Shape | undefined, b: Shape | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((d, i) => dimsEqual(d, b[i]!));
}

/** A dim as messages and the text form spell it: a size, `?`, a bare symbol, or a JSON-quoted one. */
export function dimToString(dim: Dim): string {
  if (typeof dim === 'number' || dim === UNKNOWN_DIM || isSymbolName(dim)) return String(dim);
  return JSON.stringify(dim);
}

export function shapeToString(shape: Shape | undefined): string {
  if (shape === undefined) return '[*]';
  return `[${shape.map(dimToString).join(', ')}]`;
}

export function checkDim(dim: Dim): void {
  if (typeof dim === 'number') {
    if (!Number.isSafeInteger(dim) || dim < 0) throw new Error(`invalid dimension ${dim}: must be an integer >= 0`);
  } else if (dim !== UNKNOWN_DIM && dim.length === 0) {
    throw new Error('invalid dimension: empty symbol name');
  }
}
