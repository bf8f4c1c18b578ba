// Positions a graph computes itself, from the lengths of its inputs: arange(past, past + seq) gathered from a
// position table (GPT-2, Marian), a table sliced [past : past + seq] (Whisper's positions, GPT-2's causal
// buffer), or new keys written into a static cache by ONNX's TensorScatter (from the write index, which the
// generator sets to the cached length). Generated inputs must keep each such range within its table: past it,
// onnxruntime fails on an index out of range, or the slice comes back short and a later op fails on its shape. The ends are the shape engine's
// expressions of the input dims (`past_sequence_length + sequence_length`), evaluated at the sizes the generator
// picks, so it can leave fewer cached tokens (or none) where the table is short.

import { type Graph, type Node, ONNX_DOMAIN } from '@attnopt/ir';
import { attrInt } from '@attnopt/rewrite';
import { evaluateDim, type Expr, staticInts, symbolicShape, symbolicValue } from '@attnopt/passes';
import { gatherBound } from './tables.js';

export interface PositionLimit {
  /** The Range or Slice that computes the positions. */
  readonly node: Node;
  /** Its end (exclusive), an expression of the input dims; a write starts at the write index, the cached length. */
  readonly end: Expr;
  /** The rows of the table the positions index: `end` may be at most this. */
  readonly rows: number;
  /** How the positions read the table: gathered (a Range), sliced, or written (TensorScatter, linear mode). */
  readonly kind: 'gathered' | 'sliced' | 'written';
}

const isCircular = (n: Node) => {
  const mode = n.attrs.get('mode');
  return mode?.type === 'string' && mode.value === 'circular';
};

/** Every position range of `graph` whose end depends on the input dims, with the rows of the table it reads. */
export function positionLimits(graph: Graph): PositionLimit[] {
  const out: PositionLimit[] = [];
  for (const n of graph.nodes) {
    if (n.domain !== ONNX_DOMAIN) continue;
    if (n.op === 'Range') {
      const limit = symbolicValue(n.inputs[1])?.[0];
      const delta = symbolicValue(n.inputs[2])?.[0]?.constant;
      if (limit === undefined || limit.constant !== undefined || limit.hasFresh || delta !== 1) continue;
      const rows = gatherBound(n.outputs[0]!);
      if (rows !== undefined) out.push({ node: n, end: limit, rows, kind: 'gathered' });
    } else if (n.op === 'Slice') {
      // a table: any value with a fixed size along the sliced axis (an initializer, a Constant, a computed table)
      const shape = symbolicShape(n.inputs[0])?.map((d) => d.constant);
      const ends = symbolicValue(n.inputs[2]);
      const axes = n.inputs[3] !== undefined ? staticInts(n.inputs[3]) : ends?.map((_, k) => k);
      const steps = n.inputs[4] !== undefined ? staticInts(n.inputs[4]) : undefined;
      if (!shape || !ends || !axes || axes.length !== ends.length || (steps !== undefined && steps.some((s) => s !== 1))) continue;
      ends.forEach((end, k) => {
        const axis = axes[k]! < 0 ? axes[k]! + shape.length : axes[k]!;
        const rows = shape[axis];
        if (end.constant === undefined && !end.hasFresh && typeof rows === 'number') out.push({ node: n, end, rows, kind: 'sliced' });
      });
    } else if (n.op === 'TensorScatter' && !isCircular(n)) {
      // the update's tokens land at the write index (the cached length) and after it, within the cache's axis
      const axis = attrInt(n, 'axis') ?? -2;
      const cache = symbolicShape(n.inputs[0]);
      const update = symbolicShape(n.inputs[1]);
      const at = (s: readonly Expr[]) => s[axis < 0 ? axis + s.length : axis];
      const rows = cache && at(cache)?.constant;
      const end = update && at(update);
      if (rows !== undefined && end !== undefined && end.constant === undefined && !end.hasFresh) out.push({ node: n, end, rows, kind: 'written' });
    }
  }
  return out;
}

/**
 * The end of `limit` at the sizes `size` gives each dim name (a write after `cached` tokens), or undefined where it
 * reads no named dim.
 */
export function evaluatedEnd(limit: PositionLimit, size: (dim: string) => number, cached: number): number | undefined {
  const binding = new Map<string, number>();
  for (const atom of limit.end.atoms().values()) if (atom.kind === 'symbol') binding.set(atom.name, size(atom.name));
  const end = evaluateDim(limit.end, binding);
  return end !== undefined && limit.kind === 'written' ? end + cached : end;
}

/** The limits that sizes `size` (a size for each dim name) and `cached` tokens break: the end past the table's rows. */
export function brokenLimits(limits: readonly PositionLimit[], size: (dim: string) => number, cached: number): PositionLimit[] {
  return limits.filter((l) => {
    const end = evaluatedEnd(l, size, cached);
    return end !== undefined && end > l.rows;
  });
}
