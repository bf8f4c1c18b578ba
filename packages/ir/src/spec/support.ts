// Which keys a spec can keep per query (its key support), and how its attention is lowered to standard ONNX
// ops: one rule, used by the lowering (@attnopt/passes loweringPlan) and the cost model (@attnopt/cost), so
// the two cannot disagree.
//
//   keySupport(spec)                -> a finite band [p + lo, p + hi] plus fixed extra keys, or unbounded
//   loweringChoice(spec, facts)     -> 'banded' | 'blocks' | 'low-rank' | 'dense', and why

import { type Align, type AttentionSpec, type Blocks, type Causal, dense, isDataDependent, isLowRank, type Lsh, type MaskSpec, type TopKBlocks } from './spec.js';

/**
 * A superset of the keys a spec keeps, in index terms: for a query at position p = i + offset(align)
 * that is not in `globalQueries`, the kept keys lie in [p + lo, p + hi] ∪ extra. An empty band has lo > hi.
 */
export interface KeySupport {
  readonly lo: number;
  readonly hi: number;
  readonly extra: readonly number[];
  readonly globalQueries: readonly number[];
  /** The alignments of the leaves that use a query position (window, causal, dilated, global). */
  readonly aligns: readonly Align[];
}

const EMPTY_BAND = { lo: Infinity, hi: -Infinity };
const sortedUnion = (...xs: (readonly number[])[]): number[] => [...new Set(xs.flat())].sort((a, b) => a - b);
const sortedIntersection = (xs: (readonly number[])[]): number[] =>
  xs.slice(1).reduce<number[]>((acc, x) => acc.filter((t) => x.includes(t)), [...(xs[0] ?? [])]);

/** The KeySupport of an index spec; undefined for data-dependent or block layouts (not banded). */
export function keySupport(spec: MaskSpec): KeySupport | undefined {
  const leaf = (lo: number, hi: number, extra: readonly number[] = [], globalQueries: readonly number[] = [], aligns: Align[] = []): KeySupport => ({
    lo,
    hi,
    extra,
    globalQueries,
    aligns,
  });
  switch (spec.kind) {
    case 'dense':
      return leaf(-Infinity, Infinity);
    case 'empty':
      return leaf(EMPTY_BAND.lo, EMPTY_BAND.hi);
    case 'causal':
      return leaf(-Infinity, 0, [], [], [spec.align]);
    case 'window':
    case 'dilated':
      return spec.left + spec.right < 0 ? leaf(EMPTY_BAND.lo, EMPTY_BAND.hi) : leaf(-spec.left, spec.right, [], [], [spec.align]);
    case 'sinks':
      return leaf(EMPTY_BAND.lo, EMPTY_BAND.hi, Array.from({ length: spec.count }, (_, k) => k));
    case 'global':
      return leaf(EMPTY_BAND.lo, EMPTY_BAND.hi, spec.tokens, spec.tokens, spec.tokens.length ? [spec.align] : []);
    case 'union':
    case 'intersect':
    case 'diff': {
      const parts = (spec.kind === 'diff' ? [spec.base] : spec.parts).map(keySupport);
      if (parts.some((p) => p === undefined)) return undefined;
      const ps = parts as KeySupport[];
      const aligns = [...new Set(ps.flatMap((p) => p.aligns))];
      if (spec.kind === 'intersect') {
        // ∩ (Bi ∪ Ei) ⊆ (∩ Bi) ∪ (∪ Ei) over the parts bounding every query (no global queries); when each
        // part has some, a query outside all of them is bounded by one part: the hull
        const bounding = ps.filter((p) => p.globalQueries.length === 0);
        if (bounding.length > 0) {
          const lo = Math.max(...bounding.map((p) => p.lo));
          const hi = Math.min(...bounding.map((p) => p.hi));
          // or, over every part, the bands' intersection for the queries no part has as global (those stay
          // global): causal ∩ (window ∪ global tokens) is the window plus the tokens, not causal
          const loAll = Math.max(...ps.map((p) => p.lo));
          const hiAll = Math.min(...ps.map((p) => p.hi));
          if (hiAll - loAll < hi - lo) {
            return { lo: loAll, hi: hiAll, extra: sortedUnion(...ps.map((p) => p.extra)), globalQueries: sortedUnion(...ps.map((p) => p.globalQueries)), aligns };
          }
          return { lo, hi, extra: sortedUnion(...bounding.map((p) => p.extra)), globalQueries: [], aligns };
        }
        return {
          lo: Math.min(...ps.map((p) => p.lo)),
          hi: Math.max(...ps.map((p) => p.hi)),
          extra: sortedUnion(...ps.map((p) => p.extra)),
          globalQueries: sortedIntersection(ps.map((p) => p.globalQueries)),
          aligns,
        };
      }
      const banded = ps.filter((p) => p.lo <= p.hi);
      return {
        lo: banded.length ? Math.min(...banded.map((p) => p.lo)) : EMPTY_BAND.lo,
        hi: banded.length ? Math.max(...banded.map((p) => p.hi)) : EMPTY_BAND.hi,
        extra: sortedUnion(...ps.map((p) => p.extra)),
        globalQueries: sortedUnion(...ps.map((p) => p.globalQueries)),
        aligns,
      };
    }
    default:
      return undefined;
  }
}

/** Keys per gathered granule of the banded lowering: the largest of 8, 4, 2, 1 dividing the block size. */
export function bandGranule(blockSize: number): number {
  return [8, 4, 2].find((g) => blockSize % g === 0) ?? 1;
}

/**
 * Keys the banded form scores per query at block size b: the extra rows (an empty-row key and the extra
 * keys, in whole granules) plus the band's b + hi - lo keys rounded up to a granule.
 */
function bandedWidth(s: KeySupport, b: number): number {
  const g = bandGranule(b);
  const band = s.lo <= s.hi ? Math.ceil((b + s.hi - s.lo) / g) * g : 0;
  return Math.ceil((s.extra.length + 1) / g) * g + band;
}

/**
 * Block sizes the banded lowering chooses from, and the weight of gathering a block's K and V windows
 * (W · d values per b queries) against scoring W keys per query (MatMuls, bias, Softmax): per query the
 * form costs about W · (1 + BAND_GATHER_WEIGHT · d / b). The weight is the ratio of the two per key on
 * onnxruntime-cpu (4 d MatMul FLOPs at ~50 GFLOP/s plus ~20 bytes of elementwise traffic per score, against
 * 4 · 4 d / b bytes of window copies per key at ~10 GB/s), and its choice was checked against onnxruntime
 * times at block sizes 32 to 256 (tools/bench/banded-profile.ts: block 64 fastest for window 256 ∪ sinks 4).
 */
export const BAND_BLOCK_SIZES = [16, 32, 64, 128, 256] as const;
export const BAND_GATHER_WEIGHT = 0.22;

/** The query block size of the banded lowering: the candidate with the least estimated cost per query. */
export function bandBlockSize(s: KeySupport, headDim = 64): number {
  const cost = (b: number) => bandedWidth(s, b) * (1 + (BAND_GATHER_WEIGHT * headDim) / b);
  return BAND_BLOCK_SIZES.reduce((best, b) => (cost(b) < cost(best) ? b : best));
}

/**
 * Keys per query the banded form scores (band, extra keys and the empty-row key in whole granules; global
 * rows not counted), or undefined when the support has no finite band (banded does not apply).
 */
export function bandedKeysPerQuery(s: KeySupport, blockSize = bandBlockSize(s)): number | undefined {
  if (s.lo <= s.hi && !(Number.isFinite(s.lo) && Number.isFinite(s.hi))) return undefined;
  return bandedWidth(s, blockSize);
}

/** The lowest default-domain opset of the banded and block-gathered forms (Min / Max on int64). */
export const BANDED_OPSET = 13;

/** What a site's node says beyond its spec (all optional: absent means "not present" / symbolic). */
export interface LoweringFacts {
  /** The present key count when the model fixes it; undefined: symbolic (one model for every length). */
  readonly keys?: number;
  /** A float or boolean bias input (n x n). */
  readonly bias?: boolean;
  /** A float bias constant along the query axis ([.., 1, nk]): the banded form gathers it per key. */
  readonly keyBias?: boolean;
  /** A scores output (n x n). */
  readonly scoresOutput?: boolean;
  /** A kvLength input without past K/V (the past alignment then differs per batch). */
  readonly kvLengthWithoutPast?: boolean;
  /** The default-domain opset (default 21). */
  readonly opset?: number;
  /** The banded query block size (default bandBlockSize). */
  readonly blockSize?: number;
  /** Force the banded form where it applies, ignoring the size test (tests); or dense. */
  readonly strategy?: 'auto' | 'dense' | 'banded';
}

export type LoweringChoice =
  | { readonly strategy: 'banded'; readonly why: string; readonly support: KeySupport; readonly blockSize: number; readonly keysPerQuery: number }
  | { readonly strategy: 'blocks' | 'low-rank' | 'lsh' | 'dense'; readonly why: string; readonly support?: undefined; readonly blockSize?: undefined };

/**
 * A spec whose kept keys lie inside one chunked LSH leaf's (chunk > 0): the leaf itself, an intersection of
 * it with index terms, or such a spec minus index terms. `rest` is the spec with the leaf read as dense: on
 * the leaf's candidate pairs (own and previous chunk per round) the spec keeps exactly what `rest` keeps.
 */
export function lshBound(spec: MaskSpec): { readonly leaf: Lsh; readonly rest: MaskSpec } | undefined {
  switch (spec.kind) {
    case 'lsh':
      return spec.chunk > 0 ? { leaf: spec, rest: dense } : undefined;
    case 'intersect': {
      const data = spec.parts.filter(isDataDependent);
      if (data.length !== 1) return undefined;
      const inner = lshBound(data[0]!);
      return inner && { leaf: inner.leaf, rest: { kind: 'intersect', parts: spec.parts.map((p) => (p === data[0] ? inner.rest : p)) } };
    }
    case 'diff': {
      if (isDataDependent(spec.minus)) return undefined;
      const inner = lshBound(spec.base);
      return inner && { leaf: inner.leaf, rest: { kind: 'diff', base: inner.rest, minus: spec.minus } };
    }
    default:
      return undefined;
  }
}

/** A block-gathered form: a block layout or top-k blocks leaf, and the causal mask it is cut by, if any. */
export interface BlockGathered {
  readonly leaf: Blocks | TopKBlocks;
  readonly causal?: Causal;
}

/**
 * The block-gathered form of `spec`: blocks / topkBlocks alone, or intersected with a causal mask (what sparsify
 * writes on a causal site: causal ∩ topkBlocks; the same causal mask repeated counts once); undefined for anything
 * else.
 */
export function blockGathered(spec: AttentionSpec): BlockGathered | undefined {
  if (spec.kind === 'blocks' || spec.kind === 'topkBlocks') return { leaf: spec };
  if (spec.kind !== 'intersect') return undefined;
  // nested intersections flattened (a candidate already cut, restricted to the causal baseline once more)
  const flat = (s: MaskSpec): MaskSpec[] => (s.kind === 'intersect' ? s.parts.flatMap(flat) : [s]);
  const parts = flat(spec);
  const leaves = parts.filter((p): p is Blocks | TopKBlocks => p.kind === 'blocks' || p.kind === 'topkBlocks');
  const cuts = parts.filter((p): p is Causal => p.kind === 'causal');
  if (leaves.length !== 1 || cuts.length === 0 || leaves.length + cuts.length !== parts.length) return undefined;
  return cuts.every((c) => c.align === cuts[0]!.align) ? { leaf: leaves[0]!, causal: cuts[0]! } : undefined;
}

/**
 * How a site with `spec` is lowered (the 'auto' rule):
 * - blocks / topkBlocks, alone or cut by a causal mask: block-gathered (each query block reads its chosen key
 *   blocks, the causal mask applied inside them);
 * - linformer / performer / nystrom: MatMuls (low rank; Nystrom's pseudo-inverse by Newton–Schulz steps);
 * - lsh: sorted and chunked when the spec lies inside one chunked LSH leaf (lshBound), with no n x n input or
 *   output: each query scores 2 · chunk keys per round;
 * - banded when the kept keys lie in a finite band around the query (window, causal ∩ window,
 *   sinks ∪ window, global tokens with a band), one alignment, no n x n input or output, and the keys read
 *   per query (block + band width + extra keys) are at most half the present keys or the key count is
 *   symbolic (the banded form is exact at any length);
 * - dense otherwise (n x n scores, the spec as a keep-mask).
 */
export function loweringChoice(spec: AttentionSpec, facts: LoweringFacts = {}): LoweringChoice {
  const opset = facts.opset ?? 21;
  const dense = (why: string): LoweringChoice => ({ strategy: 'dense', why });
  const gathered = blockGathered(spec);
  if (gathered !== undefined) return { strategy: 'blocks', why: `block-gathered: ${gathered.causal ? `causal ∩ ${gathered.leaf.kind}` : gathered.leaf.kind}` };
  if (isLowRank(spec)) return { strategy: 'low-rank', why: `${spec.kind} as MatMuls` };
  if (facts.strategy === 'dense') return dense('dense lowering asked for');
  const lsh = lshBound(spec);
  if (lsh !== undefined) {
    if (facts.bias || facts.keyBias) return dense('lsh with a bias input: dense lowering with the bucket mask');
    if (facts.scoresOutput) return dense('lsh with a scores output (n x n): dense lowering with the bucket mask');
    if (opset < BANDED_OPSET) return dense(`opset ${opset} < ${BANDED_OPSET}`);
    return { strategy: 'lsh', why: `lsh sorted by bucket: ${lsh.leaf.hashes} round(s) of ${2 * lsh.leaf.chunk} keys per query` };
  }
  const support = keySupport(spec);
  if (support === undefined) return dense('the spec is not a band of index terms');
  const blockSize = facts.blockSize ?? bandBlockSize(support);
  const perQuery = bandedKeysPerQuery(support, blockSize);
  if (perQuery === undefined) return dense('the kept keys are not bounded by a band');
  if (facts.bias && !facts.keyBias) return dense('a bias input is n x n: dense lowering');
  if (facts.scoresOutput) return dense('the scores output is n x n: dense lowering');
  if (opset < BANDED_OPSET) return dense(`opset ${opset} < ${BANDED_OPSET}`);
  if (support.aligns.length > 1) return dense(`mixed alignments ${support.aligns.join(', ')}`);
  if (support.aligns.includes('past') && facts.kvLengthWithoutPast) return dense('past alignment from kvLength differs per batch');
  const banded: LoweringChoice = { strategy: 'banded', why: `banded: ${perQuery} keys per query, block ${blockSize}`, support, blockSize, keysPerQuery: perQuery };
  if (facts.strategy === 'banded') return banded;
  if (facts.keys !== undefined && facts.keys < 2 * perQuery) return dense(`dense: ${facts.keys} keys, banded would read ${perQuery} per query`);
  return banded;
}

/** One past the largest absolute position the spec tests (sinks count, global tokens); 0 without any. */
export function absoluteReach(spec: MaskSpec): number {
  switch (spec.kind) {
    case 'sinks':
      return spec.count;
    case 'global':
      return spec.tokens.length ? Math.max(...spec.tokens) + 1 : 0;
    case 'union':
    case 'intersect':
      return Math.max(0, ...spec.parts.map(absoluteReach));
    case 'diff':
      return Math.max(absoluteReach(spec.base), absoluteReach(spec.minus));
    default:
      return 0;
  }
}
