// Attention(Q, K, V, spec=blocks | topkBlocks, guard over dense) -> block-gathered attention + per-row certificate,
// rows over the budget recomputed densely and scattered back.
// Guarded block-gathered lowering (BOUNDS.md (b')) of blocks(bq, bk, rows) and topkBlocks(block, k) over a dense
// baseline: the block-gathered sparse form (blocks.ts), a per-row certificate of the mass it drops and the rows
// whose certificate exceeds the budget recomputed densely (guarded-certificate.ts, shared with the banded form).
// The summaries are taken at the spec's key block size, so each key block is wholly kept or wholly dropped:
//
//   chosen blocks     chosen[r, c] = some valid slot of query block r holds key block c
//                     (Equal of the slots [B,H,nQB,m,1] with Range(nKB), ReduceMax over the slots) [B,H,nQB,nKB]
//   dropped keys      dropped[i, c] = (1 - chosen[i / bq, c]) · |[c bk, (c + 1) bk) ∩ [0, upper)|, upper = T,
//                     or min(T, kvLength[b]) with a lengths input (padding keys are no baseline keys) [B,H,S,nKB]
//   log Z_S           the largest kept score and its probability per row from the gathered softmax; a row that
//                     keeps no key (query blocks past a layout) gets NaN there and falls back when it drops a key
// The causal baseline is not taken: its kept set would be chosen ∩ causal, which the block-gathered form does not
// mask (a causal site's top-k candidate, causal ∩ topkBlocks, lowers dense).

import type { AttentionSpec, Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { type BlockGatherInputs, blockGatherParts } from './blocks.js';
import { type GuardedSite, guardedCertificate, guardedScoreBound, guardOps } from './guarded-certificate.js';

export type GuardedBlocksInputs = BlockGatherInputs & GuardedSite;

/** Whether `spec` is a block-gathered form (blocks or topkBlocks at the top). */
export function isBlockGathered(spec: AttentionSpec): spec is Extract<AttentionSpec, { kind: 'blocks' | 'topkBlocks' }> {
  return spec.kind === 'blocks' || spec.kind === 'topkBlocks';
}

/**
 * The key block size of a guard over `spec`: the spec's key block for a block-gathered form (its summaries must
 * cover whole kept or dropped blocks), else `fallback`. The chooser writes it into the guard; guardedBlocksBlocker
 * refuses any other.
 */
export function guardBlockSize(spec: AttentionSpec, fallback: number): number {
  if (spec.kind === 'blocks') return spec.blockK;
  if (spec.kind === 'topkBlocks') return spec.block;
  return fallback;
}

/** Why a block-gathered `spec` has no guarded form over `baseline`, or undefined when it has. */
export function guardableBlocksSpec(spec: AttentionSpec, baseline: AttentionSpec): string | undefined {
  if (baseline.kind !== 'dense') return `not lowered guarded yet: ${spec.kind} over the baseline ${baseline.kind} (the guarded block-gathered form takes a dense baseline)`;
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
  const { S, T, nKB, zero } = bound;

  // chosen[r, c] as float32 [B, H, nQB, nKB]
  const blockIndex = b.op('Range', [i64(0, 'guard_blk_r0'), nKB, i64(1, 'guard_blk_r1')], 'guard_blk_block_index');
  const hits = b.op('Equal', [b.unsqueeze(parts.chosen, [4], 'guard_blk_slots', 4), blockIndex], 'guard_blk_slot_hits'); // [B, H, nQB, m, nKB]
  const validHits = parts.slotValid ? b.op('And', [hits, b.unsqueeze(parts.slotValid, [2], 'guard_blk_valid_slots', 2)], 'guard_blk_valid_hits') : hits;
  const chosen = reduce('ReduceMax', b.cast(validHits, 'f32', 'guard_blk_hits_f'), [3], 'guard_blk_chosen');
  // per row: its query block's unchosen blocks [B, H, S, nKB]
  const rowBlock = b.op('Div', [b.op('Range', [i64(0, 'guard_blk_r2'), S, i64(1, 'guard_blk_r3')], 'guard_blk_rows'), i64(bq, 'guard_blk_bq')], 'guard_blk_row_block');
  const unchosen = b.op('Gather', [b.op('Sub', [f32(1, 'guard_blk_one'), chosen], 'guard_blk_unchosen_blocks'), rowBlock], 'guard_blk_unchosen', axis(2));
  // baseline keys per block: |[c bk, (c + 1) bk) ∩ [0, upper)|, per batch with kvLength [B, 1, 1, nKB]
  const float = (t: Value, what: string) => b.cast(t, 'f32', what);
  const Tf = float(T, 'guard_blk_nk_f');
  const upper = x.kvLength ? b.op('Min', [Tf, b.reshape(float(x.kvLength, 'guard_blk_kv_length_f'), [-1, 1, 1, 1], 'guard_blk_kv_length_4d')], 'guard_blk_upper') : Tf;
  const blockLo = b.op('Mul', [float(blockIndex, 'guard_blk_block_index_f'), f32(bk, 'guard_blk_bk')], 'guard_blk_block_lo');
  const blockHi = b.op('Min', [b.op('Add', [blockLo, f32(bk, 'guard_blk_bk2')], 'guard_blk_block_end'), upper], 'guard_blk_block_hi');
  const keys = b.op('Max', [b.op('Sub', [blockHi, blockLo], 'guard_blk_block_keys_diff'), zero], 'guard_blk_block_keys');
  const dropped = b.op('Mul', [unchosen, keys], 'guard_blk_dropped');

  // the largest kept logit and its probability per row ([B, H, nQB, bq] -> [B, H, S])
  const rowsOf = (t: Value, what: string) =>
    b.op('Slice', [b.reshape(t, [0, 0, -1], `${what}_padded`), b.ints(`${what}_start`, [0]), b.reshape(S, [1], `${what}_end`), b.ints(`${what}_axis`, [2])], what);
  const kept = b.op('Where', [parts.keep, toF32(parts.scores, 'guard_blk_scores_f32'), f32(-Infinity, 'guard_blk_minus_inf')], 'guard_blk_kept_scores');
  const maxLogit = rowsOf(reduce('ReduceMax', kept, [4], 'guard_max_logit_blocks'), 'guard_max_logit');
  const maxProb = rowsOf(reduce('ReduceMax', toF32(parts.probs, 'guard_probs_f32'), [4], 'guard_max_prob_blocks'), 'guard_max_prob');
  return guardedCertificate(b, x, { y: parts.y, bound, bounded: bound.u, dropped, maxLogit, maxProb });
}
