// The cost of one attention site on one target: FLOPs, softmax work, bytes moved, peak memory and a
// roofline time. Counting uses the spec's row and block queries (O(nq · runs) and O((nq/b)·(nk/b))):
// nothing here allocates per n x n.

import {
  type AttentionParams,
  blockGathered,
  hasRuntimeHeadDim,
  isLowRank,
  type LeafResolver,
  type LoweringChoice,
  loweringChoice,
  lshBound,
  type MaskSpec,
  RUNTIME_HEAD_DIM_REASON,
  validateAttentionParams,
} from '@attnopt/ir';
import { lowRankOps, selectionOps } from './approximate.js';
import { type OpCost, type OpWork, timeOp, work } from './ops.js';
import { type TargetProfile } from './profile.js';
import { type CallDims, type Extent, extentOf } from './shape.js';
import { bandedOps, bandedShape, blockGatherOps, blockGatherShape, lshChunkedOps, lshChunkedShape, NYSTROM_LOWERED_STEPS, nystromOps } from './lowered.js';
import { layoutIn, layoutOut, presentOps, unfusedMaskedOps } from './unfused.js';
import { type BlockCounts, blockCounts, pairsKept } from './work.js';

export interface CostOptions {
  /** Resolves data-dependent leaves (top-k blocks, LSH) exactly; without it they count at their expected size. */
  readonly resolve?: LeafResolver;
  /**
   * Resolve those leaves on every rowStride-th query row only, each standing for itself and the rows up to the next:
   * an estimate of the kept pairs in O(nq / rowStride) resolutions. Default 1 (every row).
   */
  readonly rowStride?: number;
  /** onnxruntime's graph optimization level (`all` folds Kᵀ and the scale into the QKᵀ MatMul). Default 'all'. */
  readonly graphOptimization?: 'all' | 'disabled';
  /**
   * An additive float bias or boolean keep-mask input of [batch, 1, nq, nk]; or 'relative', a relative-position
   * bias the banded form reads on its offsets (n x n elsewhere). Default 'none'.
   */
  readonly bias?: 'none' | 'float' | 'bool' | 'relative';
  /** Per-batch valid key lengths (kvLength input). Default false. */
  readonly kvLength?: boolean;
  /**
   * The model fixes the key count (static shapes): the lowering then picks dense where the banded form would
   * read more than half the keys. Default false: a symbolic sequence length (banded wherever it applies).
   */
  readonly staticKeys?: boolean;
  /** Bytes per element of Q, K, V and the scores (4: fp32). */
  readonly elementBytes?: number;
}

export interface AttentionCost {
  readonly target: string;
  readonly execution: TargetProfile['execution'];
  /** (query, key) pairs the spec keeps, per batch and head (exact for index specs). */
  readonly keptPairs: number;
  /**
   * Pairs the target computes scores for, per batch and head: unfused, nq · nk (dense form), padded queries ·
   * (band + extra keys) (banded) or padded queries · chosen keys (block-gathered); fused, the kept tiles' area.
   */
  readonly computedPairs: number;
  /** Matrix-multiply FLOPs over the batch and heads (QKᵀ, PV, projections, hashing). */
  readonly flops: number;
  /** Softmax FLOPs (about 5 per computed score). */
  readonly softmaxFlops: number;
  /** Bytes read and written by all kernels. */
  readonly bytes: number;
  /** Bytes of the largest single intermediate tensor (unfused dense: batch · heads · nq · nk · 4). */
  readonly largestIntermediate: number;
  /** Inputs, outputs and the largest set of intermediates alive at once (bytes). */
  readonly peakMemory: number;
  /** Predicted seconds: Σ over kernels of their roofline time + the profile's per-run overhead. */
  readonly time: number;
  /** Kernels in execution order. */
  readonly ops: readonly OpCost[];
  /** Block classes on the target's tile grid (fused-blocked targets, key-set specs). */
  readonly blocks?: BlockCounts;
  /** What the estimate assumes, in words. */
  readonly notes: readonly string[];
}

/** The cost of attention with `params` for a call of `dims` on `target`. */
export function attentionCost(params: AttentionParams, dims: CallDims, target: TargetProfile, options: CostOptions = {}): AttentionCost {
  const p = validateAttentionParams(params);
  const x = extentOf(p, dims, options.elementBytes ?? 4);
  const notes: string[] = [];
  const inputBytes = x.E * x.B * (x.H * x.nq * x.d + x.Hkv * x.nk * (x.d + x.dv));
  const outputBytes = x.E * x.B * x.H * x.nq * x.dv;
  let ops: OpWork[];
  let keptPairs: number;
  let computedPairs: number;
  let largest: number;
  let live: number;
  let blocks: BlockCounts | undefined;

  if (isLowRank(p.spec)) {
    const loweredNystrom = target.execution === 'unfused' && p.spec.kind === 'nystrom';
    ops = [...layoutIn(p, x), ...(loweredNystrom && p.spec.kind === 'nystrom' ? nystromOps(p.spec.landmarks, x) : lowRankOps(p.spec, x)), ...layoutOut(p, x)];
    keptPairs = x.nq * x.nk; // every key contributes, through the rank-r approximation
    computedPairs = 0;
    largest = Math.max(0, ...ops.filter((o) => o.op === 'MatMul' || o.op === 'Softmax').map((o) => o.bytes / 3));
    live = 2 * largest;
    if (loweredNystrom) notes.push(`unfused, nystrom as MatMuls: float64 m x m pseudo-inverse by ${NYSTROM_LOWERED_STEPS} Newton–Schulz steps`);
  } else {
    const spec: MaskSpec = p.spec;
    const maskDims = { nq: x.nq, nk: x.nk, past: x.past };
    keptPairs = pairsKept(spec, maskDims, options.resolve, options.rowStride);
    const selection = selectionOps(spec, x);
    if (selection.length > 0 && options.resolve === undefined) notes.push(`${spec.kind} is data-dependent: counted at its expected size`);
    if (target.execution === 'unfused') {
      const relative = options.bias === 'relative';
      // a relative bias is an n x n float bias to every form but the banded one
      const o = { graphOptimization: options.graphOptimization ?? 'all', bias: relative ? 'float' : (options.bias ?? 'none'), kvLength: options.kvLength ?? false } as const;
      // the lowering's own rule decides the form (banded, block-gathered, dense): the model follows it
      const chosen = loweringChoice(spec, {
        ...(options.staticKeys ? { keys: x.nk } : {}),
        bias: o.bias !== 'none',
        keyBias: relative,
        kvLengthWithoutPast: o.kvLength && x.past === 0,
      });
      // the banded, LSH and block forms reshape by the head size: a site that reads it at run time lowers dense
      const choice: LoweringChoice =
        hasRuntimeHeadDim(p) && chosen.strategy !== 'dense' ? { strategy: 'dense', why: `dense: the ${RUNTIME_HEAD_DIM_REASON}` } : chosen;
      if (choice.strategy === 'banded') {
        const sh = bandedShape(choice.support, choice.blockSize, x.nq, x.nk);
        const bandedO = { ...o, bias: 'none' } as const;
        // a relative bias: read on the [b, W] offsets of a block (per block with extra keys) and added to the scores
        const relativeOps = relative ? [work('Add', 'relative bias', { bytes: 3 * x.E * x.B * x.H * sh.paddedQueries * (sh.band + sh.extra) })] : [];
        ops = [...presentOps(p, x, o.kvLength), ...bandedOps(p, spec, choice.support, choice.blockSize, x, bandedO), ...relativeOps, ...layoutOut(p, x)];
        computedPairs = sh.scores;
        const blockScores = x.E * x.B * x.H * sh.paddedQueries * (sh.band + sh.extra);
        largest = Math.max(blockScores, x.E * x.B * x.H * sh.globalRows * x.nk);
        // an elementwise op over the scores holds its input and output, the band's keep-mask and gathered values
        live = 2 * largest + sh.paddedQueries * sh.band + x.E * x.B * x.H * sh.blocks * sh.band * x.dv;
        notes.push(`unfused, ${choice.why}: ${sh.band + sh.extra} scores per query (block ${sh.blockSize}), not ${x.nk}`);
      } else if (choice.strategy === 'lsh' && x.nq === x.nk) {
        const bound = lshBound(spec)!;
        const sh = lshChunkedShape(bound.leaf, x.nq);
        ops = [...presentOps(p, x, o.kvLength), ...lshChunkedOps(p, bound.leaf, bound.rest, x, o), ...layoutOut(p, x)];
        computedPairs = sh.scores;
        const BH = x.B * x.H;
        // the scores, and with several rounds the rounds x candidates chunk test (booleans)
        largest = Math.max(x.E * BH * sh.scores, sh.rounds > 1 ? BH * sh.scores * sh.rounds : 0);
        live = 2 * x.E * BH * sh.scores + (sh.rounds > 1 ? BH * sh.scores * sh.rounds : 0) + x.E * BH * sh.rounds * sh.padded * 2 * (x.d + x.dv);
        notes.push(`unfused, ${choice.why}: ${sh.keysPerQuery} scores per query, not ${x.nk}`);
      } else if (choice.strategy === 'blocks' && blockGathered(spec) !== undefined && o.bias === 'none') {
        const gathered = blockGathered(spec)!;
        const sh = blockGatherShape(gathered.leaf, x.nq, x.nk);
        // a causal cut: the gathered keys' index against each query's limit (Greater, Not, And over the scores)
        const cut = gathered.causal ? [work('Greater', 'causal cut', { bytes: 2 * x.B * x.H * sh.scores }), work('And', 'keep & causal', { bytes: 3 * x.B * x.H * sh.scores })] : [];
        ops = [...presentOps(p, x, o.kvLength), ...blockGatherOps(p, gathered.leaf, x, o), ...cut, ...layoutOut(p, x)];
        computedPairs = sh.scores;
        largest = x.E * x.B * x.H * sh.scores;
        live = 2 * largest + x.E * x.B * x.H * sh.queryBlocks * sh.m * sh.bk * x.dv;
        notes.push(`unfused, block-gathered: ${sh.m} blocks of ${sh.bk} keys per query block of ${sh.bq}`);
      } else {
        ops = [...selection, ...unfusedMaskedOps(p, spec, x, o)];
        computedPairs = x.nq * x.nk;
        const scores = x.E * x.B * x.H * x.nq * x.nk;
        largest = scores;
        // an elementwise op over the scores holds its input and its output, plus the nq x nk keep-mask
        live = 2 * scores + (spec.kind === 'dense' ? 0 : x.nq * x.nk);
        notes.push(`unfused, ${choice.why}: the lowered graph materializes nq x nk scores per head and builds the keep-mask densely`);
      }
    } else {
      const tile = target.tile!;
      blocks = blockCounts(spec, tile.blockQ, tile.blockK, maskDims, options.resolve);
      computedPairs = blocks.area;
      const S = x.B * x.H * blocks.area;
      // K and V tiles load once per query block row and kv head: the heads of a GQA group share them
      const kvLoads = x.E * x.B * x.Hkv * blocks.keyLoads * (x.d + x.dv);
      ops = [
        ...selection,
        work('FusedAttention', `flash-style, ${tile.blockQ}x${tile.blockK} tiles, empty tiles skipped`, {
          flops: 2 * S * (x.d + x.dv),
          softmaxFlops: 5 * S,
          softmaxElements: S,
          bytes: x.E * x.B * x.H * x.nq * (x.d + x.dv) + kvLoads,
        }),
      ];
      largest = x.E * tile.blockQ * tile.blockK; // one score tile
      live = largest;
    }
  }
  const timed = ops.map((o) => timeOp(target, o));
  const sum = (f: (o: OpCost) => number) => timed.reduce((a, o) => a + f(o), 0);
  return {
    target: target.name,
    execution: target.execution,
    keptPairs,
    computedPairs,
    flops: sum((o) => o.flops),
    softmaxFlops: sum((o) => o.softmaxFlops),
    bytes: sum((o) => o.bytes),
    largestIntermediate: largest,
    peakMemory: inputBytes + outputBytes + live,
    time: sum((o) => o.seconds) + target.runOverheadSeconds,
    ops: timed,
    ...(blocks ? { blocks } : {}),
    notes,
  };
}

export type { CallDims, Extent };
