// The spec's keep predicate as generated JavaScript: one expression over (i, j) per spec tree, index leaves
// inlined as comparisons, data-dependent leaves (top-k blocks, LSH) as calls to host-resolved key sets.
// Kernels evaluate it only on the Partial key blocks of classifyBlockRow; Full blocks need no mask work.
//
//   causal ∪ sinks(4)  ->  (j <= i + oTL) || (j < 4)

import { type DataDependentSpec, intervals, type LeafResolver, type MaskDims, type MaskSpec, queryOffset } from '@attnopt/ir';

/** The predicate of `spec` as JavaScript source over i, j, the offsets oTL/oBR/oPast and tables T, leaves L. */
export function maskPredicateSource(spec: MaskSpec, tables: unknown[] = [], leaves: DataDependentSpec[] = []): string {
  const off = (align: string) => (align === 'top-left' ? 'oTL' : align === 'bottom-right' ? 'oBR' : 'oPast');
  const rec = (s: MaskSpec): string => {
    switch (s.kind) {
      case 'dense':
        return 'true';
      case 'empty':
        return 'false';
      case 'causal':
        return `(j <= i + ${off(s.align)})`;
      case 'window':
        return `(j >= i + ${off(s.align)} - ${s.left} && j <= i + ${off(s.align)} + ${s.right})`;
      case 'dilated':
        return `(j >= i + ${off(s.align)} - ${s.left} && j <= i + ${off(s.align)} + ${s.right} && (i + ${off(s.align)} - j) % ${s.dilation} === 0)`;
      case 'sinks':
        return `(j < ${s.count})`;
      case 'global': {
        tables.push(new Set(s.tokens));
        const t = `T[${tables.length - 1}]`;
        return `(${t}.has(j) || ${t}.has(i + ${off(s.align)}))`;
      }
      case 'blocks': {
        tables.push(s.rows.map((r) => new Set(r)));
        const t = `T[${tables.length - 1}]`;
        return `(${t}[Math.floor(i / ${s.blockQ})] !== undefined && ${t}[Math.floor(i / ${s.blockQ})].has(Math.floor(j / ${s.blockK})))`;
      }
      case 'topkBlocks':
      case 'lsh':
        leaves.push(s);
        return `L[${leaves.length - 1}](i, j)`;
      case 'union':
        return `(${s.parts.map(rec).join(' || ')})`;
      case 'intersect':
        return `(${s.parts.map(rec).join(' && ')})`;
      case 'diff':
        return `(${rec(s.base)} && !${rec(s.minus)})`;
    }
  };
  return rec(spec);
}

export type KeepPredicate = (i: number, j: number) => boolean;

/** The generated predicate of `spec` for one call's dims (data-dependent leaves answered by `resolve`). */
export function compileMaskPredicate(spec: MaskSpec, dims: MaskDims, resolve?: LeafResolver): KeepPredicate {
  const tables: unknown[] = [];
  const leaves: DataDependentSpec[] = [];
  const src = maskPredicateSource(spec, tables, leaves);
  const L = leaves.map((leaf) => {
    if (!resolve) throw new Error(`spec ${leaf.kind} is data-dependent: pass a resolver for its key sets`);
    let row = -1;
    let set = intervals.EMPTY_SET;
    return (i: number, j: number) => {
      if (i !== row) {
        row = i;
        set = resolve(leaf, i, dims);
      }
      return intervals.contains(set, j);
    };
  });
  const make = new Function('T', 'L', 'oTL', 'oBR', 'oPast', `return (i, j) => ${src};`) as (
    ...args: unknown[]
  ) => KeepPredicate;
  return make(tables, L, queryOffset('top-left', dims), queryOffset('bottom-right', dims), queryOffset('past', dims));
}
