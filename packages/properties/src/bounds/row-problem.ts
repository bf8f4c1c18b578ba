// One-row attention problems for the bounds properties (BOUNDS.md (a), (b)): one query row of a small head,
// scores s_j = scale q . k_j + b_j with a controlled scale, values, and a kept set S drawn from a spec through
// the IR's rowKeys (top-k and LSH leaves resolved from Q and K by the reference's dataLeafResolver).
// Data comes from a seed (SplitMix64), so a failure shrinks the sizes, the scale and the spec.

import fc from 'fast-check';
import { type AttentionParams, type MaskSpec, rowKeys } from '@attnopt/ir';
import { dataLeafResolver, referenceAttention, type Tensor64 } from '@attnopt/reference';
import { seededValues } from '../arbitraries/attention-inputs.js';
import { dataLeafArbitrary, indexLeafArbitrary, maskSpecArbitrary } from '../arbitraries/spec.js';

/** One query row `row` of an nq x n head; every array is float64, row-major. */
export interface RowProblem {
  readonly nq: number;
  readonly n: number;
  readonly d: number;
  readonly dv: number;
  readonly row: number;
  readonly scale: number;
  /** Q, nq x d (the spec's data-dependent leaves read every row); the query is row `row`. */
  readonly queries: Float64Array;
  readonly q: Float64Array;
  readonly keys: Float64Array;
  readonly values: Float64Array;
  /** Additive bias per key (shared by every row), -inf = masked by the model. */
  readonly bias: Float64Array;
  readonly spec: MaskSpec;
  /** S: 1 where the spec keeps key j for this row. */
  readonly kept: Uint8Array;
  /** s_j = scale q . k_j + b_j. */
  readonly scores: Float64Array;
}

export interface RowProblemOptions {
  /** Largest key (and query) count (default 64). */
  readonly maxLen?: number;
  /** Largest head size (default 16). */
  readonly maxDim?: number;
  /** The kept-set spec (default: leaves of every kind, data-dependent ones included, and small combinations). */
  readonly spec?: fc.Arbitrary<MaskSpec>;
}

/** Kept-set specs: window, global, sinks, block-sparse, top-k blocks, LSH buckets, and their combinations. */
export function keptSetSpecArbitrary(maxLen = 64): fc.Arbitrary<MaskSpec> {
  return fc.oneof(
    { arbitrary: indexLeafArbitrary(maxLen), weight: 3 },
    { arbitrary: dataLeafArbitrary(maxLen), weight: 2 },
    { arbitrary: maskSpecArbitrary({ maxLen, maxDepth: 1 }), weight: 1 },
  );
}

/** The keys spec S keeps for one row, from the IR's rowKeys with the reference's resolvers. */
export function keptKeys(spec: MaskSpec, p: Pick<RowProblem, 'nq' | 'n' | 'd' | 'row' | 'scale' | 'queries' | 'keys'>): Uint8Array {
  const resolve = dataLeafResolver({ q: p.queries, k: p.keys, nq: p.nq, nk: p.n, d: p.d, scale: p.scale });
  const set = rowKeys(spec, p.row, { nq: p.nq, nk: p.n }, resolve);
  const kept = new Uint8Array(p.n);
  for (let r = 0; r < set.length; r += 2) kept.fill(1, set[r]!, set[r + 1]!);
  return kept;
}

export function rowProblemArbitrary(options: RowProblemOptions = {}): fc.Arbitrary<RowProblem> {
  const { maxLen = 64, maxDim = 16 } = options;
  return fc
    .record({
      n: fc.integer({ min: 1, max: maxLen }),
      nq: fc.integer({ min: 1, max: maxLen }),
      rowFrac: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      d: fc.integer({ min: 1, max: maxDim }),
      dv: fc.integer({ min: 1, max: 4 }),
      // logit spread: scale * |q| |k| reaches about scale * d; 0 gives uniform attention
      scale: fc.oneof(fc.constant(0), fc.double({ min: -1, max: 4, noNaN: true })),
      valueRange: fc.constantFrom(1, 4, 1000),
      biasKind: fc.constantFrom('none', 'masked', 'finite', 'all-masked'),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      spec: options.spec ?? keptSetSpecArbitrary(maxLen),
    })
    .map((r) => {
      const row = Math.floor(r.rowFrac * r.nq);
      const queries = seededValues(r.seed * 4, r.nq * r.d, 1);
      const keys = seededValues(r.seed * 4 + 1, r.n * r.d, 1);
      const values = seededValues(r.seed * 4 + 2, r.n * r.dv, r.valueRange);
      const raw = seededValues(r.seed * 4 + 3, r.n, 1);
      const bias = raw.map((x) =>
        r.biasKind === 'all-masked' ? -Infinity : r.biasKind === 'masked' ? (x < -0.4 ? -Infinity : 0) : r.biasKind === 'finite' ? 3 * x : 0,
      );
      const q = queries.slice(row * r.d, (row + 1) * r.d);
      const scores = new Float64Array(r.n);
      for (let j = 0; j < r.n; j++) {
        let dot = 0;
        for (let c = 0; c < r.d; c++) dot += q[c]! * keys[j * r.d + c]!;
        scores[j] = r.scale * dot + bias[j]!;
      }
      const base = { nq: r.nq, n: r.n, d: r.d, dv: r.dv, row, scale: r.scale, queries, q, keys, values, bias, spec: r.spec, scores };
      return { ...base, kept: keptKeys(r.spec, base) };
    });
}

/** The AttentionParams of a row problem under `spec` (one batch, one head, bhsd, no softcap). */
export function rowParams(p: RowProblem, spec: MaskSpec): AttentionParams {
  return { numHeads: 1, kvNumHeads: 1, headDim: p.d, vHeadDim: p.dv, scale: p.scale, softcap: 0, layout: 'bhsd', spec };
}

/** Row `row` of referenceAttention on this problem under `spec` (bias shared by every row): the code under test. */
export function referenceRow(p: RowProblem, spec: MaskSpec): Float64Array {
  const t = (shape: number[], data: Float64Array): Tensor64 => ({ shape, data });
  const out = referenceAttention(rowParams(p, spec), {
    q: t([1, 1, p.nq, p.d], p.queries),
    k: t([1, 1, p.n, p.d], p.keys),
    v: t([1, 1, p.n, p.dv], p.values),
    bias: t([p.n], p.bias),
  });
  return out.y.data.slice(p.row * p.dv, (p.row + 1) * p.dv);
}
