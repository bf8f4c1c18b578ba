// The attention spec: which keys each query sees, as a small algebra of index predicates.
// A spec never materializes an n x n mask; every question about it is answered from its terms.

/**
 * Where query row i sits among the keys, i.e. the offset added to i before comparing it with key j:
 * - `top-left`: 0 (query i lines up with key i);
 * - `bottom-right`: nk - nq (the last query lines up with the last key: decoding, chunked prefill);
 * - `past`: the number of cached keys that precede this call's keys (ONNX `Attention` with past_key).
 */
export type Align = 'top-left' | 'bottom-right' | 'past';

/** How `topkBlocks` scores a key block against a query block before keeping the k best. */
export type BlockScore = 'quest' | 'mean';

export interface Dense { readonly kind: 'dense' }
export interface Empty { readonly kind: 'empty' }
/** j <= i + offset. */
export interface Causal { readonly kind: 'causal'; readonly align: Align }
/** i + offset - left <= j <= i + offset + right. */
export interface Window { readonly kind: 'window'; readonly left: number; readonly right: number; readonly align: Align }
/** Window keys whose distance from i + offset is a multiple of `dilation`. */
export interface Dilated {
  readonly kind: 'dilated';
  readonly left: number;
  readonly right: number;
  readonly dilation: number;
  readonly align: Align;
}
/** The first `count` keys (attention sinks). */
export interface Sinks { readonly kind: 'sinks'; readonly count: number }
/**
 * Global tokens (Longformer), given as sequence positions: every query sees the keys at these positions,
 * and the query at position i + offset sees every key when that position is a global token.
 */
export interface Global { readonly kind: 'global'; readonly tokens: readonly number[]; readonly align: Align }
/** Block-sparse: query block r sees key blocks rows[r]; query blocks past the layout see nothing. */
export interface Blocks {
  readonly kind: 'blocks';
  readonly blockQ: number;
  readonly blockK: number;
  readonly rows: readonly (readonly number[])[];
}
/**
 * Data-dependent: each query block keeps the k key blocks of highest score (Quest, MoBA). With `causal`, only the
 * key blocks some query of the block can see under causal(causal) are ranked (the others score -inf), so a causal
 * site spends its k on blocks it can attend.
 */
export interface TopKBlocks {
  readonly kind: 'topkBlocks';
  readonly block: number;
  readonly k: number;
  readonly score: BlockScore;
  readonly causal?: Align;
}
/**
 * Data-dependent: angular LSH buckets (Reformer), `hashes` rounds of `buckets` buckets drawn from `seed`.
 * chunk = 0: query i sees the keys that share its bucket in some round. chunk > 0 (self-attention,
 * nq = nk): per round, queries and keys are each sorted by (bucket, index) and cut into chunks of
 * `chunk`; a query sees the keys of its own chunk and of the chunk before it.
 */
export interface Lsh {
  readonly kind: 'lsh';
  readonly hashes: number;
  readonly buckets: number;
  readonly chunk: number;
  readonly seed: number;
}
export interface Union { readonly kind: 'union'; readonly parts: readonly MaskSpec[] }
export interface Intersect { readonly kind: 'intersect'; readonly parts: readonly MaskSpec[] }
export interface Diff { readonly kind: 'diff'; readonly base: MaskSpec; readonly minus: MaskSpec }

/** Nystrom approximation (Nystromformer) with segment-mean landmarks. */
export interface Nystrom { readonly kind: 'nystrom'; readonly landmarks: number }
/** Linformer-style projection of keys and values to `rank` rows by seeded Gaussian matrices. */
export interface Linformer { readonly kind: 'linformer'; readonly rank: number; readonly seed: number }
/** Performer FAVOR+ positive random features. */
export interface Performer {
  readonly kind: 'performer';
  readonly features: number;
  readonly orthogonal: boolean;
  readonly seed: number;
}

/** A spec that selects a set of keys per query. */
export type MaskSpec =
  | Dense
  | Empty
  | Causal
  | Window
  | Dilated
  | Sinks
  | Global
  | Blocks
  | TopKBlocks
  | Lsh
  | Union
  | Intersect
  | Diff;

/** A spec that replaces the softmax over keys by a low-rank approximation: not a key set. */
export type LowRankSpec = Nystrom | Linformer | Performer;

export type AttentionSpec = MaskSpec | LowRankSpec;

/** Leaves whose key sets depend on the data (Q, K), not on indices alone. */
export type DataDependentSpec = TopKBlocks | Lsh;

export const dense: Dense = { kind: 'dense' };
export const empty: Empty = { kind: 'empty' };
export const causal = (align: Align = 'top-left'): Causal => ({ kind: 'causal', align });
export const slidingWindow = (left: number, right = 0, align: Align = 'top-left'): Window => ({
  kind: 'window',
  left,
  right,
  align,
});
export const dilatedWindow = (left: number, right: number, dilation: number, align: Align = 'top-left'): Dilated => ({
  kind: 'dilated',
  left,
  right,
  dilation,
  align,
});
export const sinks = (count: number): Sinks => ({ kind: 'sinks', count });
export const globalTokens = (tokens: readonly number[], align: Align = 'top-left'): Global => ({
  kind: 'global',
  tokens: [...new Set(tokens)].sort((a, b) => a - b),
  align,
});
export const blockSparse = (blockQ: number, blockK: number, rows: readonly (readonly number[])[]): Blocks => ({
  kind: 'blocks',
  blockQ,
  blockK,
  rows: rows.map((r) => [...new Set(r)].sort((a, b) => a - b)),
});
export const topkBlocks = (block: number, k: number, score: BlockScore = 'quest', causal?: Align): TopKBlocks => ({
  kind: 'topkBlocks',
  block,
  k,
  score,
  ...(causal === undefined ? {} : { causal }),
});
export const lshBuckets = (hashes: number, buckets: number, seed: number, chunk = 0): Lsh => ({
  kind: 'lsh',
  hashes,
  buckets,
  chunk,
  seed,
});
export const union = (...parts: MaskSpec[]): Union => ({ kind: 'union', parts });
export const intersect = (...parts: MaskSpec[]): Intersect => ({ kind: 'intersect', parts });
export const difference = (base: MaskSpec, minus: MaskSpec): Diff => ({ kind: 'diff', base, minus });
export const nystrom = (landmarks: number): Nystrom => ({ kind: 'nystrom', landmarks });
export const linformer = (rank: number, seed: number): Linformer => ({ kind: 'linformer', rank, seed });
export const performer = (features: number, seed: number, orthogonal = true): Performer => ({
  kind: 'performer',
  features,
  orthogonal,
  seed,
});

export function isLowRank(spec: AttentionSpec): spec is LowRankSpec {
  return spec.kind === 'nystrom' || spec.kind === 'linformer' || spec.kind === 'performer';
}

export function isDataDependent(spec: AttentionSpec): boolean {
  switch (spec.kind) {
    case 'topkBlocks':
    case 'lsh':
      return true;
    case 'union':
    case 'intersect':
      return spec.parts.some(isDataDependent);
    case 'diff':
      return isDataDependent(spec.base) || isDataDependent(spec.minus);
    default:
      return false;
  }
}

/** Structural equality of two specs (same terms in the same order). */
export function specEquals(a: AttentionSpec, b: AttentionSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const isInt = (x: number) => Number.isSafeInteger(x);

/** Throws an Error naming the offending term when a spec is malformed. Returns the spec. */
export function validateSpec<S extends AttentionSpec>(spec: S): S {
  const fail = (msg: string): never => {
    throw new Error(`invalid attention spec ${spec.kind}: ${msg}`);
  };
  const positive = (name: string, x: number) => {
    if (!isInt(x) || x < 1) fail(`${name} must be an integer >= 1, got ${x}`);
  };
  const nonNegative = (name: string, x: number) => {
    if (!isInt(x) || x < 0) fail(`${name} must be an integer >= 0, got ${x}`);
  };
  const mask = (part: AttentionSpec) => {
    if (isLowRank(part)) fail(`${part.kind} is a low-rank form, not a key set: it cannot be combined`);
    validateSpec(part);
  };
  switch (spec.kind) {
    case 'dense':
    case 'empty':
    case 'causal':
      break;
    case 'window':
      if (!isInt(spec.left) || !isInt(spec.right)) fail('left and right must be integers');
      break;
    case 'dilated':
      if (!isInt(spec.left) || !isInt(spec.right)) fail('left and right must be integers');
      positive('dilation', spec.dilation);
      break;
    case 'sinks':
      nonNegative('count', spec.count);
      break;
    case 'global':
      spec.tokens.forEach((t, idx) => {
        nonNegative('token', t);
        if (idx > 0 && t <= spec.tokens[idx - 1]!) fail('tokens must be sorted and unique');
      });
      break;
    case 'blocks':
      positive('blockQ', spec.blockQ);
      positive('blockK', spec.blockK);
      for (const row of spec.rows) {
        row.forEach((c, idx) => {
          nonNegative('key block', c);
          if (idx > 0 && c <= row[idx - 1]!) fail('each row of key blocks must be sorted and unique');
        });
      }
      break;
    case 'topkBlocks':
      positive('block', spec.block);
      positive('k', spec.k);
      if (spec.score !== 'quest' && spec.score !== 'mean') fail(`unknown score ${String(spec.score)}`);
      break;
    case 'lsh':
      positive('hashes', spec.hashes);
      positive('buckets', spec.buckets);
      if (spec.buckets % 2 !== 0) fail(`buckets must be even (argmax over [xR; -xR]), got ${spec.buckets}`);
      nonNegative('chunk', spec.chunk);
      nonNegative('seed', spec.seed);
      break;
    case 'union':
    case 'intersect':
      if (spec.parts.length === 0) fail('needs at least one part');
      spec.parts.forEach(mask);
      break;
    case 'diff':
      mask(spec.base);
      mask(spec.minus);
      break;
    case 'nystrom':
      positive('landmarks', spec.landmarks);
      break;
    case 'linformer':
      positive('rank', spec.rank);
      nonNegative('seed', spec.seed);
      break;
    case 'performer':
      positive('features', spec.features);
      nonNegative('seed', spec.seed);
      break;
    default:
      fail('unknown kind');
  }
  return spec;
}
