import { describe, expect, it } from 'vitest';
import { type KeepExpr, keepExpr, keepNodes } from './keep-expr.js';
import { keeps, type MaskDims, queryOffset } from './mask-query.js';
import {
  blockSparse,
  causal,
  dense,
  difference,
  dilatedWindow,
  empty,
  globalTokens,
  intersect,
  type MaskSpec,
  sinks,
  slidingWindow,
  union,
} from './spec.js';

/** The tree's meaning, read directly (tests only: the emitters write it out as code instead). */
function evaluate(e: KeepExpr, i: number, j: number, dims: MaskDims): number | boolean {
  const n = (x: KeepExpr) => evaluate(x, i, j, dims) as number;
  const b = (x: KeepExpr) => evaluate(x, i, j, dims) as boolean;
  switch (e.op) {
    case 'bool':
    case 'int':
      return e.value;
    case 'var':
      return { i, j, offBR: queryOffset('bottom-right', dims), past: queryOffset('past', dims) }[e.name];
    case 'add':
      return n(e.a) + n(e.b);
    case 'sub':
      return n(e.a) - n(e.b);
    case 'div':
      return Math.floor(n(e.a) / n(e.b));
    case 'mod':
      return n(e.a) % n(e.b);
    case 'lt':
      return n(e.a) < n(e.b);
    case 'le':
      return n(e.a) <= n(e.b);
    case 'ge':
      return n(e.a) >= n(e.b);
    case 'eq':
      return n(e.a) === n(e.b);
    case 'and':
      return e.parts.every(b);
    case 'or':
      return e.parts.some(b);
    case 'not':
      return !b(e.a);
    case 'in':
      return e.set.values.includes(n(e.x));
    case 'rowHas':
      return e.table.rows[n(e.row)]?.includes(n(e.col)) ?? false;
    case 'leaf':
      throw new Error('data-dependent leaf');
  }
}

const SPECS: MaskSpec[] = [
  dense,
  empty,
  causal('top-left'),
  causal('bottom-right'),
  causal('past'),
  slidingWindow(2, 1, 'bottom-right'),
  slidingWindow(-1, 3, 'past'),
  dilatedWindow(6, 2, 3, 'bottom-right'),
  sinks(3),
  globalTokens([0, 4, 9], 'past'),
  globalTokens([]),
  blockSparse(3, 2, [[0, 3], [], [1, 2, 4]]),
  union(sinks(2), slidingWindow(3, 0, 'past')),
  intersect(causal('past'), slidingWindow(2, 0, 'past')),
  difference(causal('bottom-right'), sinks(1)),
  difference(dense, globalTokens([2])),
  union(empty, causal()),
];

describe('keepExpr', () => {
  it('means what keeps() defines, for every (i, j) of several extents', () => {
    for (const spec of SPECS) {
      const e = keepExpr(spec);
      for (const dims of [{ nq: 7, nk: 11, past: 3 }, { nq: 11, nk: 5 }, { nq: 1, nk: 9, past: 8 }]) {
        for (let i = 0; i < dims.nq; i++) {
          for (let j = 0; j < dims.nk; j++) expect(evaluate(e, i, j, dims), `${JSON.stringify(spec)} (${i}, ${j})`).toBe(keeps(spec, i, j, dims));
        }
      }
    }
  });

  it('folds constants: a union with dense keeps everything, an empty token set keeps nothing', () => {
    expect(keepExpr(union(causal(), dense))).toEqual({ op: 'bool', value: true });
    expect(keepExpr(intersect(dense, sinks(2)))).toEqual(keepExpr(sinks(2)));
    expect(keepExpr(globalTokens([]))).toEqual({ op: 'bool', value: false });
    expect(keepExpr(difference(causal(), dense))).toEqual({ op: 'bool', value: false });
  });

  it("shares the window's query position between its two edges (one subtree, computed once)", () => {
    const nodes = keepNodes(keepExpr(slidingWindow(4, 0, 'bottom-right')));
    expect(nodes.filter((n) => n.op === 'add' && n.label === 'pos_bottom-right')).toHaveLength(1);
  });
});
