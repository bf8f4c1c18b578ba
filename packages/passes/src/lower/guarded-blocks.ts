// Attention(Q, K, V, spec=blocks | topkBlocks, guard over dense) -> block-gathered attention + per-row certificate,
// rows over the budget recomputed densely and scattered back.
// Attention(Q, K, V, spec=causal ∩ (blocks | topkBlocks), guard over the same causal) -> the same, the causal mask
// applied inside the gathered blocks and the certificate counting only causally visible keys.
// Guarded block-gathered lowering (BOUNDS.md (b')): the block-gathered sparse form (blocks.ts), a per-row
// certificate of the mass it drops and the rows whose certificate exceeds the budget recomputed over the baseline
// (guarded-certificate.ts, shared with the banded form). The summaries are taken at the spec's key block size, so
// each key block is wholly chosen or wholly not:
//
//   chosen blocks     chosen[r, c] = some valid slot of query block r holds key block c
//                     (Equal of the slots [B,H,nQB,m,1] with Range(nKB), ReduceMax over the slots) [B,H,nQB,nKB]
//   dropped keys      dropped[i, c] = (1 - chosen[i / bq, c]) · |[c bk, (c + 1) bk) ∩ [0, upper(i))|, upper(i) =
//                     T, capped by kvLength[b] with a lengths input (padding keys are no baseline keys) and by
//                     i + offset + 1 on a causal baseline (future keys are no baseline keys): exact counts, so
//                     a dropped block that straddles the causal boundary counts only its visible keys [B,H,S,nKB]
//   score bound U     from the whole block's summaries (guarded-certificate.ts): on a block that straddles the
//                     causal boundary they include future keys, so U may be larger than the visible keys need
//                     (safe: only looser)
//   key bias          U + the largest bias over the block's visible keys [0, upper(i)) (guarded-key-bias.ts, one
//                     interval per block: a prefix maximum, exact; padding keys of kvLength may count: looser)
//   log Z_S           the largest kept score and its probability per row from the gathered softmax; a row that
//                     keeps no key (query blocks past a layout, or a causal row whose chosen blocks all lie in its
//                     future) gets NaN there and falls back when it drops a key
// Top-k under a causal mask keeps the IR's semantics (topk.ts): a leaf with `causal` (what sparsify writes) ranks
// only the blocks the query block can see; one without ranks every key block, future ones included, and may so
// spend some of its k on blocks it cannot see. The certificate holds either way (it counts what the row drops,
// whatever was chosen); the second only falls back more often, and the chooser sees that in its predicted rate.

import { type AttentionSpec, blockGathered, printSpec, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { type BlockGatherInputs, blockGatherParts } from './blocks.js';
import { type GuardedSite, guardedCertificate, guardedScoreBound, guardOps } from './guarded-certificate.js';
import { droppedKeyBiasMax } from './guarded-key-bias.js';

export type GuardedBlocksInputs = BlockGatherInputs & GuardedSite;

/** Whether `spec` is a block-gathered form (blocks or topkBlocks at the top, or one of them cut by a causal mask). */
export function isBlockGathered(spec: AttentionSpec): boolean {
  return blockGathered(spec) !== undefined;
}

/**
 * The key block size of a guard over `spec`: the spec's key block for a block-gathered form (its summaries must
 * cover whole kept or dropped blocks), else `fallback`. The chooser writes it into the guard; guardedBlocksBlocker
 * refuses any other.
 */
export function guardBlockSize(spec: AttentionSpec, fallback: number): number {
  const leaf = blockGathered(spec)?.leaf;
  if (leaf?.kind === 'blocks') return leaf.blockK;
  if (leaf?.kind === 'topkBlocks') return leaf.block;
  return fallback;
}

/** A causal alignment on a guarded site (no past keys there, so `past` counts from 0: top-left). */
const guardedAlign = (align: string) => (align === 'past' ? 'top-left' : align);

/**
 * Why a block-gathered `spec` has no guarded form over `baseline`, or undefined when it has: blocks / topkBlocks
 * alone over a dense baseline, or cut by the baseline's own causal mask (causal ∩ blocks | topkBlocks over that
 * causal baseline, as sparsify writes it on a causal site).
 */
export function guardableBlocksSpec(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  const g = blockGathered(spec);
  if (g === undefined) return `${printSpec(spec)} is no block-gathered form`;
  if (g.causal === undefined) {
    return baseline.kind === 'dense' ? undefined : `not lowered guarded yet: ${g.leaf.kind} over the baseline ${printSpec(baseline)} (a block-gathered form over a causal baseline must be cut by that causal mask: causal ∩ ${g.leaf.kind})`;
  }
  if (baseline.kind !== 'causal' || guardedAlign(baseline.align) !== guardedAlign(g.causal.align)) {
    return `not lowered guarded yet: causal(${g.causal.align}) ∩ ${g.leaf.kind} over the baseline ${printSpec(baseline)} (the causal cut must be the baseline's own)`;
  }
  return undefined;
}

/** Why the guarded block-gathered form does not apply to a site with these params (its spec block-gathered), or undefined. */
export function guardedBlocksBlocker(spec: AttentionSpec, guard: { readonly blockSize: number; readonly baseline: AttentionSpec }): string | undefined {
  const why = guardableBlocksSpec(spec, guard.baseline);
  if (why !== undefined) return why;
  const kb = guardBlockSize(spec, guard.blockSize);
  if (guard.blockSize !== kb) return `the guard's summary block ${guard.blockSize} differs from the ${spec.kind} key block ${kb} (the guarded form summarizes whole key blocks)`;
  return undefined;
}

/** The guarded block-gathered output [B, H, S, Dv]. Call only where guardedBlocksBlocker allows. */
export function guardedBlocksAttention(b: NodeBuilder, x: GuardedBlocksInputs): Value {
  const spec = x.spec;
  const bq = spec.kind === 'blocks' ? spec.blockQ : spec.block;
  const bk = guardBlockSize(spec, x.params.guard!.blockSize);
  const { axis, i64, f32, toF32, reduce } = guardOps(b, x);
  const parts = blockGatherParts(b, x);
  const bound = guardedScoreBound(b, x, bk);
  const { S, T, nKB, padT, zero } = bound;

  // chosen[r, c] as float32 [B, H, nQB, nKB]
  const blockIndex = b.op('Range', [i64(0, 'guard_blk_r0'), nKB, i64(1, 'guard_blk_r1')], 'guard_blk_block_index');
  const hits = b.op('Equal', [b.unsqueeze(parts.chosen, [4], 'guard_blk_slots', 4), blockIndex], 'guard_blk_slot_hits'); // [B, H, nQB, m, nKB]
  const validHits = parts.slotValid ? b.op('And', [hits, b.unsqueeze(parts.slotValid, [2], 'guard_blk_valid_slots', 2)], 'guard_blk_valid_hits') : hits;
  const chosen = reduce('ReduceMax', b.cast(validHits, 'f32', 'guard_blk_hits_f'), [3], 'guard_blk_chosen');
  // per row: its query block's unchosen blocks [B, H, S, nKB]
  const rowIndex = b.op('Range', [i64(0, 'guard_blk_r2'), S, i64(1, 'guard_blk_r3')], 'guard_blk_rows');
  const rowBlock = b.op('Div', [rowIndex, i64(bq, 'guard_blk_bq')], 'guard_blk_row_block');
  const unchosen = b.op('Gather', [b.op('Sub', [f32(1, 'guard_blk_one'), chosen], 'guard_blk_unchosen_blocks'), rowBlock], 'guard_blk_unchosen', axis(2));
  // baseline keys per row and block: |[c bk, (c + 1) bk) ∩ [0, upper(i))|, upper(i) = T capped by the causal limit
  // i + offset + 1 ([S, 1]) and by kvLength ([B, 1, 1, 1]): [1, nKB], [S, nKB] or [B, 1, S, nKB]
  const float = (t: Value, what: string) => b.cast(t, 'f32', what);
  const Tf = float(T, 'guard_blk_nk_f');
  const causalUpper = x.causalOffset
    ? b.op(
        'Min',
        [Tf, b.op('Add', [b.reshape(float(rowIndex, 'guard_blk_rows_f'), [-1, 1], 'guard_blk_row_col'), b.op('Add', [float(x.causalOffset, 'guard_blk_offset_f'), f32(1, 'guard_blk_one2')], 'guard_blk_offset1')], 'guard_blk_causal_limit')],
        'guard_blk_causal_upper',
      )
    : Tf;
  const upper = x.kvLength ? b.op('Min', [causalUpper, b.reshape(float(x.kvLength, 'guard_blk_kv_length_f'), [-1, 1, 1, 1], 'guard_blk_kv_length_4d')], 'guard_blk_upper') : causalUpper;
  const blockLo = b.reshape(b.op('Mul', [float(blockIndex, 'guard_blk_block_index_f'), f32(bk, 'guard_blk_bk')], 'guard_blk_block_lo_1d'), [1, -1], 'guard_blk_block_lo');
  const blockEnd = b.op('Add', [blockLo, f32(bk, 'guard_blk_bk2')], 'guard_blk_block_end');
  const blockHi = b.op('Min', [blockEnd, upper], 'guard_blk_block_hi');
  const keys = b.op('Max', [b.op('Sub', [blockHi, blockLo], 'guard_blk_block_keys_diff'), zero], 'guard_blk_block_keys');
  const dropped = b.op('Mul', [unchosen, keys], 'guard_blk_dropped');

  // with a key bias: U + its largest value over each block's visible keys [c bk, min((c + 1) bk, causal upper))
  const bounded = x.keyBias
    ? b.op(
        'Add',
        [
          bound.u,
          droppedKeyBiasMax(b, {
            keyBias: toF32(x.keyBias, 'guard_key_bias_f32'),
            blockSize: bk,
            padT,
            keys: Tf,
            parts: [{ lo: blockLo, hi: b.op('Min', [blockEnd, causalUpper], 'guard_blk_bias_hi') }],
          }),
        ],
        'guard_biased_bound',
      )
    : bound.u;

  // the largest kept logit and its probability per row ([B, H, nQB, bq] -> [B, H, S])
  const rowsOf = (t: Value, what: string) =>
    b.op('Slice', [b.reshape(t, [0, 0, -1], `${what}_padded`), b.ints(`${what}_start`, [0]), b.reshape(S, [1], `${what}_end`), b.ints(`${what}_axis`, [2])], what);
  const kept = b.op('Where', [parts.keep, toF32(parts.scores, 'guard_blk_scores_f32'), f32(-Infinity, 'guard_blk_minus_inf')], 'guard_blk_kept_scores');
  const maxLogit = rowsOf(reduce('ReduceMax', kept, [4], 'guard_max_logit_blocks'), 'guard_max_logit');
  // its probability only for the log-sum-exp (guard.logZ 'max-logit': the largest kept logit alone bounds log Z_S)
  const maxProb = x.params.guard?.logZ === 'max-logit' ? undefined : rowsOf(reduce('ReduceMax', toF32(parts.probs, 'guard_probs_f32'), [4], 'guard_max_prob_blocks'), 'guard_max_prob');
  return guardedCertificate(b, x, { y: parts.y, bound, bounded, dropped, maxLogit, ...(maxProb ? { maxProb } : {}) });
}
