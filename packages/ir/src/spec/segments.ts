// The key segments a guarded kernel summarizes: blocks of `block` keys, also split at the spec's row-independent
// keys (sinks, global tokens), so that a key every row keeps never widens the summary of keys some rows drop.

import type { MaskSpec } from './spec.js';

/** Sorted segment boundaries over [0, n): segment k is [bounds[k], bounds[k + 1]). */
export function keySegmentBounds(spec: MaskSpec, n: number, block: number): number[] {
  const cuts = new Set<number>([0, n]);
  for (let j = block; j < n; j += block) cuts.add(j);
  const visit = (s: MaskSpec): void => {
    if (s.kind === 'sinks') cuts.add(Math.min(s.count, n));
    else if (s.kind === 'global') {
      for (const t of s.tokens) for (const x of [t, t + 1]) if (x > 0 && x < n) cuts.add(x);
    } else if (s.kind === 'union' || s.kind === 'intersect') s.parts.forEach(visit);
    else if (s.kind === 'diff') {
      visit(s.base);
      visit(s.minus);
    }
  };
  visit(spec);
  return [...cuts].sort((a, b) => a - b);
}
