// Arbitrary attention specs: every leaf of the algebra and nested union / intersection / difference.

import fc from 'fast-check';
// index leaves, then data-dependent leaves, combinators and low-rank forms
import { type Align, type AttentionSpec, type MaskSpec, dense, empty, causal, slidingWindow, dilatedWindow, sinks, globalTokens, blockSparse } from '@attnopt/ir';
import { topkBlocks, lshBuckets, union, intersect, difference, nystrom, linformer, performer } from '@attnopt/ir';

export interface SpecArbitraryOptions {
  /** Largest sequence length the indices in the spec are drawn for (default 64). */
  readonly maxLen?: number;
  /** Include data-dependent leaves (top-k blocks, LSH), which need Q and K to evaluate (default true). */
  readonly dataDependent?: boolean;
  /** Nesting depth of union / intersection / difference (default 2). */
  readonly maxDepth?: number;
  /**
   * Give LSH leaves a chunk size > 0 half of the time (default false). Chunked LSH is defined for
   * self-attention only (nq == nk, no past keys), so only problems of that shape may use it.
   */
  readonly lshChunks?: boolean;
}

export const alignArbitrary: fc.Arbitrary<Align> = fc.constantFrom('top-left', 'bottom-right', 'past');

/** One index-only leaf (no data needed to evaluate it). */
export function indexLeafArbitrary(maxLen = 64): fc.Arbitrary<MaskSpec> {
  const len = fc.integer({ min: 0, max: maxLen });
  const signed = fc.integer({ min: -4, max: maxLen });
  const block = fc.integer({ min: 1, max: Math.max(1, Math.ceil(maxLen / 2)) });
  return fc.oneof(
    fc.constant(dense),
    fc.constant(empty),
    alignArbitrary.map((a) => causal(a)),
    fc.tuple(signed, signed, alignArbitrary).map(([l, r, a]) => slidingWindow(l, r, a)),
    fc
      .tuple(len, len, fc.integer({ min: 1, max: 8 }), alignArbitrary)
      .map(([l, r, d, a]) => dilatedWindow(l, r, d, a)),
    len.map((n) => sinks(n)),
    fc
      .tuple(fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, maxLen - 1) }), { maxLength: 6 }), alignArbitrary)
      .map(([tokens, a]) => globalTokens(tokens, a)),
    fc.tuple(block, block).chain(([bq, bk]) =>
      fc
        .array(fc.uniqueArray(fc.integer({ min: 0, max: Math.ceil(maxLen / bk) }), { maxLength: 4 }), {
          maxLength: Math.ceil(maxLen / bq) + 1,
        })
        .map((rows) => blockSparse(bq, bk, rows)),
    ),
  );
}

/** One data-dependent leaf (top-k blocks, ranked over every key block or causally; LSH buckets, chunked only when `lshChunks`). */
export function dataLeafArbitrary(maxLen = 64, lshChunks = false): fc.Arbitrary<MaskSpec> {
  const chunk = lshChunks ? fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Math.max(1, maxLen) })) : fc.constant(0);
  return fc.oneof(
    fc
      .tuple(
        fc.integer({ min: 1, max: Math.max(1, Math.ceil(maxLen / 2)) }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom('quest' as const, 'mean' as const),
        fc.constantFrom(undefined, 'top-left' as const, 'bottom-right' as const, 'past' as const),
      )
      .map(([b, k, s, ranked]) => topkBlocks(b, k, s, ranked)),
    fc
      .tuple(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }).map((b) => 2 * b),
        fc.integer({ min: 0, max: 1000 }),
        chunk,
      )
      .map(([h, b, seed, c]) => lshBuckets(h, b, seed, c)),
  );
}

/** A mask spec: leaves combined by union, intersection and difference up to `maxDepth`. */
export function maskSpecArbitrary(options: SpecArbitraryOptions = {}): fc.Arbitrary<MaskSpec> {
  const { maxLen = 64, dataDependent = true, maxDepth = 2, lshChunks = false } = options;
  const leaf = dataDependent
    ? fc.oneof({ arbitrary: indexLeafArbitrary(maxLen), weight: 4 }, { arbitrary: dataLeafArbitrary(maxLen, lshChunks), weight: 1 })
    : indexLeafArbitrary(maxLen);
  const { spec } = fc.letrec<{ spec: MaskSpec }>((tie) => ({
    spec: fc.oneof(
      { depthSize: 'small', maxDepth, withCrossShrink: true },
      leaf,
      fc.array(tie('spec'), { minLength: 1, maxLength: 3 }).map((parts) => union(...parts)),
      fc.array(tie('spec'), { minLength: 1, maxLength: 3 }).map((parts) => intersect(...parts)),
      fc.tuple(tie('spec'), tie('spec')).map(([a, b]) => difference(a, b)),
    ),
  }));
  return spec;
}

/** A low-rank form. */
export function lowRankSpecArbitrary(maxLen = 64): fc.Arbitrary<AttentionSpec> {
  const seed = fc.integer({ min: 0, max: 1000 });
  return fc.oneof(
    fc.integer({ min: 1, max: maxLen }).map((m) => nystrom(m)),
    fc.tuple(fc.integer({ min: 1, max: maxLen }), seed).map(([r, s]) => linformer(r, s)),
    fc.tuple(fc.integer({ min: 1, max: 4 * maxLen }), seed, fc.boolean()).map(([m, s, o]) => performer(m, s, o)),
  );
}

/** Any attention spec: a mask spec or a low-rank form. */
export function attentionSpecArbitrary(options: SpecArbitraryOptions = {}): fc.Arbitrary<AttentionSpec> {
  return fc.oneof({ arbitrary: maskSpecArbitrary(options), weight: 4 }, { arbitrary: lowRankSpecArbitrary(options.maxLen), weight: 1 });
}
