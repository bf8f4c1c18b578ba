// The memory contract of the guarded attention kernels (WebAssembly and JavaScript), shared by the
// generators and the host driver.
//
// A guarded kernel runs the sparse form, then per query row the dropped-mass certificate of BOUNDS.md (b'):
//   U_seg  = q · c + min( Σ_c |q_c| half_c,  ||q|| radius ) · scale  (+ softcap) + max bias
//            (c the box centre of the segment's keys, half its half-widths: q · c + |q| · half is Quest's
//            Σ_c max(q_c lo_c, q_c hi_c), and q · c + ||q|| radius the ball's; one dot product q · c for both)
//            The ball's term comes first (one product per channel); Quest's width is computed only where that
//            term exceeds l · epsilon / (4 nEntries R) (l the kept sum): both bound the segment's scores, the
//            ball's terms kept add at most a quarter of the budget, so a row whose certificate with both bounds
//            holds at three quarters of the budget holds.
//   B      = Σ over the row's dropped segments of count · e^(U_seg - rowmax)        (same max shift as Z_S)
//   m_hat  = B / (Z_S + B),  bound = m_hat · R  (R: the largest range of a V coordinate over the head's keys)
// and recomputes exactly, over every key the model's own mask allows, the rows whose bound exceeds epsilon and the
// rows that keep no key (Z_S = 0) while B > 0: their sparse output, 0, is no convex combination of V, so m_hat · R
// bounds nothing there (the error can reach max |v|).
//
// Item record (GUARD_ITEM_WORDS i32 words, one per (batch, head, query block)):
//   q, out, blocks, nBlocks, rows, cost      as the plain kernel's item (the sparse key-block list)
//   base, nBase                              the key-block list of the model's own mask (the fallback)
//   entries, nEntries                        the dropped segments of this query block (ENTRY_WORDS each)
//   cert                                     blockQ f32: m_hat per row (written by the kernel)
//   vRange                                   the address of the head's f32 R (the summaries may be built by
//                                            the workers after the items are written)
//   flagged, recomputed                      written by the kernel: rows whose bound exceeded epsilon, rows
//                                            recomputed exactly (whole strips of 4, or the whole block)
//   coarseCount, coarseBias                  f32: the sum of the entries' counts and their largest bias: with the
//                                            largest key norm over the entries' records (coarseNorm, which the
//                                            kernel takes itself), the Cauchy-Schwarz pre-check (below)
// Entry (ENTRY_WORDS words): segment record address (i32), count (f32: most dropped keys of the segment in one
// row), rowLo, rowHi (f32: rows of the block, relative, [lo, hi), for which the segment holds dropped keys),
// max bias (f32: over those rows and the segment's keys; 0 without bias).
// Segment record (segmentFloats(dPad) f32, offsets segmentOffsets(dPad)): center[dPad] (the box centre
// (lo + hi) / 2 per channel), half[dPad] (the half-width, rounded up so that center ± half covers [lo, hi]),
// radius (the largest ||k - center||, rounded up), largest key norm, 2 pad.
// Pre-check per strip of 4 rows: U = ||q|| · coarseNorm · scale + coarseBias bounds every dropped score
// (Cauchy-Schwarz, BOUNDS.md (b)); when B = coarseCount · e^(U - rowmax) already gives bound <= epsilon on
// every row of the strip, that m_hat is the certificate and the per-segment bounds are not read.
// Scratch: the plain kernel's scratch, then flags [blockQ] i32, lane offsets (0.5, 1.5, 2.5, 3.5), then the
// fallback list of one strip (nkBlocks entries of 3 i32).

import type { MaskSpec } from '@attnopt/ir';
import { fullKernelShape, type KernelShape, scratchBytes } from '../wasm/kernel-shape.js';

/** Generation option of the guarded kernels. */
export interface GuardOptions {
  /** Budget on the per-coordinate output error of every row: |y - dense| <= epsilon (plus float32 rounding). */
  readonly epsilon: number;
  /**
   * Keys per summary segment (default blockK: 64 keys with the default blocks, the IR guard's default block
   * size); segments also split at sink and global tokens. Smaller segments give tighter bounds (fewer fallbacks)
   * and cost more per row to read.
   */
  readonly block?: number;
  /** The keys the model's own mask allows, which a fallback row attends densely (default: dense). */
  readonly modelMask?: MaskSpec;
}

export const GUARD_ITEM_WORDS = 20;
export const GUARD_ITEM = {
  q: 0,
  out: 1,
  blocks: 2,
  nBlocks: 3,
  rows: 4,
  cost: 5,
  base: 6,
  nBase: 7,
  entries: 8,
  nEntries: 9,
  cert: 10,
  vRange: 11,
  flagged: 12,
  recomputed: 13,
  coarseCount: 14,
  coarseBias: 15,
} as const;
export const ENTRY_WORDS = 8;

/**
 * Summary item (SUMMARY_ITEM_WORDS i32 words), what `summarizeItems(item, scratch)` of the WebAssembly guarded
 * module builds on a worker before the attention items run (host.ts): the segment records s0 .. s1 - 1 of one
 * (batch, kv head), and its V range when v is not 0.
 */
export const SUMMARY_ITEM = { k: 0, starts: 1, s0: 2, s1: 3, out: 4, v: 5, valid: 6, vRange: 7 } as const;
export const SUMMARY_ITEM_WORDS = 8;

/**
 * B is multiplied by this before m_hat is formed: covers the float32 rounding of the bound's dot products,
 * of the fast exp2 (relative 4e-7) and of Z_S, so the certificate stays at or above the true dropped mass.
 */
export const CERTIFICATE_SLACK = 1 + 2 ** -10;
/** e^(U - rowmax) is clamped at 2^64 (m_hat is then 1 in float32 whatever Z_S): no overflow to inf or NaN. */
export const EXPONENT_CLAMP = 64;

/** f32 per segment record: center, half (dPad each), radius, largest key norm and 2 pad. */
export const segmentFloats = (dPad: number): number => 2 * dPad + 4;

/** f32 offsets of a segment record's fields. */
export const segmentOffsets = (dPad: number) => ({ center: 0, half: dPad, radius: 2 * dPad, norm: 2 * dPad + 1 }) as const;

/** The relative widening of a summary's half-widths, radius and norm: covers their float32 rounding. */
export const SUMMARY_WIDENING = 1 + 2 ** -20;

/** Byte offsets in the scratch of one thread of a guarded kernel. */
export function guardScratch(shape: KernelShape, nkBlocks: number): { flags: number; lanes: number; list: number; bytes: number } {
  const s = fullKernelShape(shape);
  const flags = scratchBytes(s);
  const lanes = flags + s.blockQ * 4;
  const list = lanes + 16;
  return { flags, lanes, list, bytes: list + nkBlocks * 12 };
}

/** The summaries a guarded kernel reads, for manifests. */
export const GUARD_SUMMARIES = ['key-minmax-per-channel', 'key-center-radius', 'max-bias', 'value-range'] as const;

export function checkGuard(g: GuardOptions): void {
  if (!(g.epsilon >= 0) || !Number.isFinite(g.epsilon)) throw new Error(`guard epsilon must be finite and >= 0, got ${g.epsilon}`);
  if (g.block !== undefined && (!Number.isSafeInteger(g.block) || g.block < 1)) throw new Error(`guard block must be a positive integer, got ${g.block}`);
}
