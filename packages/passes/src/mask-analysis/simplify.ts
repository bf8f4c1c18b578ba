// Exact simplification of spec unions and intersections, true for every length (one alignment per rule):
//   union(..., a, ..., b, ...) , a ⊆ b                    ->  union(..., b, ...)
//   intersect(..., a, ..., b, ...) , a ⊆ b                ->  intersect(..., a, ...)
//   causal(A) ∩ window(l, r, A)                           ->  window(l, min(r, 0), A)    (empty when l + min(r, 0) < 0)
//   window(l, r<=0, A) ⊆ causal(A);  window(l1, r1, A) ⊆ window(l2, r2, A) when l1 <= l2, r1 <= r2;  sinks(a) ⊆ sinks(b), a <= b
// Only containments that hold for every (nq, nk, past) are used, so the result keeps exactly the same pairs.

import { type MaskSpec, slidingWindow, specEquals } from '@attnopt/ir';

/** a ⊆ b for every length (false when not known). */
export function specWithin(a: MaskSpec, b: MaskSpec): boolean {
  if (b.kind === 'dense' || a.kind === 'empty' || specEquals(a, b)) return true;
  if (a.kind === 'window' && b.kind === 'window') return a.align === b.align && a.left <= b.left && a.right <= b.right;
  if (a.kind === 'window' && b.kind === 'causal') return a.align === b.align && a.right <= 0;
  if (a.kind === 'sinks' && b.kind === 'sinks') return a.count <= b.count;
  if (b.kind === 'union') return b.parts.some((p) => specWithin(a, p));
  if (a.kind === 'intersect') return a.parts.some((p) => specWithin(p, b));
  return false;
}

/** Parts with every part contained in another dropped (`keepSmaller`: the contained ones are kept instead). */
function dropRedundant(parts: MaskSpec[], keepSmaller: boolean): MaskSpec[] {
  const out: MaskSpec[] = [];
  parts.forEach((p, k) => {
    const redundant = parts.some((q, m) => {
      if (m === k) return false;
      const inQ = keepSmaller ? specWithin(q, p) : specWithin(p, q);
      const equal = keepSmaller ? specWithin(p, q) : specWithin(q, p);
      return inQ && (!equal || m < k); // of two equal parts the first stays
    });
    if (!redundant) out.push(p);
  });
  return out;
}

/** The spec with the rules above applied bottom-up. */
export function simplifySpec(spec: MaskSpec): MaskSpec {
  switch (spec.kind) {
    case 'union': {
      const parts = spec.parts.map(simplifySpec).flatMap((p) => (p.kind === 'union' ? p.parts : [p])).filter((p) => p.kind !== 'empty');
      if (parts.some((p) => p.kind === 'dense')) return { kind: 'dense' };
      const kept = dropRedundant(parts, false);
      return kept.length === 0 ? { kind: 'empty' } : kept.length === 1 ? kept[0]! : { kind: 'union', parts: kept };
    }
    case 'intersect': {
      let parts = spec.parts.map(simplifySpec).flatMap((p) => (p.kind === 'intersect' ? p.parts : [p])).filter((p) => p.kind !== 'dense');
      if (parts.some((p) => p.kind === 'empty')) return { kind: 'empty' };
      // causal(A) ∩ window(l, r, A) -> window(l, min(r, 0), A)
      const c = parts.find((p) => p.kind === 'causal');
      if (c && c.kind === 'causal' && parts.some((p) => p.kind === 'window' && p.align === c.align)) {
        parts = parts.map((p) => (p.kind === 'window' && p.align === c.align && p.right > 0 ? slidingWindow(p.left, 0, p.align) : p));
        if (parts.some((p) => p.kind === 'window' && p.left + p.right < 0)) return { kind: 'empty' };
      }
      const kept = dropRedundant(parts, true);
      return kept.length === 0 ? { kind: 'dense' } : kept.length === 1 ? kept[0]! : { kind: 'intersect', parts: kept };
    }
    case 'diff': {
      const base = simplifySpec(spec.base);
      const minus = simplifySpec(spec.minus);
      if (minus.kind === 'empty') return base;
      if (specWithin(base, minus)) return { kind: 'empty' };
      return { kind: 'diff', base, minus };
    }
    default:
      return spec;
  }
}
