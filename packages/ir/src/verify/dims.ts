// Comparing dims that may be symbolic: static sizes must agree, a symbol binds to what it meets, and a
// symbol met twice must meet the same thing.

import { type Dim, type Shape, UNKNOWN_DIM } from '../shape.js';
import { printDim, printShape } from '../text/print.js';

export const showDim = (d: Dim): string => printDim(d);
export const showShape = (s: Shape): string => printShape(s);

/** Union-find over symbols: `unify` says whether two dims can be the same size given what was seen. */
export class DimUnifier {
  private readonly bound = new Map<string, Dim>();

  resolve(d: Dim): Dim {
    let cur = d;
    while (typeof cur === 'string' && this.bound.has(cur)) cur = this.bound.get(cur)!;
    return cur;
  }

  unify(a: Dim, b: Dim): boolean {
    const x = this.resolve(a);
    const y = this.resolve(b);
    if (x === UNKNOWN_DIM || y === UNKNOWN_DIM || x === y) return true;
    if (typeof x === 'number' && typeof y === 'number') return false;
    if (typeof x === 'string') this.bound.set(x, y);
    else this.bound.set(y as string, x);
    return true;
  }
}

/** The first axis (counted from the right) where static sizes other than 1 disagree, or undefined. */
export function broadcastConflict(shapes: readonly Shape[]): string | undefined {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  for (let k = 1; k <= rank; k++) {
    const sizes = new Set<number>();
    for (const s of shapes) {
      const d = s[s.length - k];
      if (typeof d === 'number' && d !== 1) sizes.add(d);
    }
    if (sizes.size > 1) return `axis ${-k} has sizes ${[...sizes].join(' and ')}`;
  }
  return undefined;
}
