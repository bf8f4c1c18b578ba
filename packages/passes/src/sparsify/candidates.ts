// The candidate forms sparsify tries at a site, each restricted to the site's own (baseline) spec:
// windows of several widths, with and without attention sinks; top-k key blocks (Quest; ranked causally on a
// causal site); LSH buckets
// (Reformer); low-rank forms (Nystrom, Linformer, Performer), which carry no certificate (BOUNDS.md (c)).
// Windows with global tokens read off the calibration data are global-tokens.ts's (the chooser adds them).

import { type Align, type AttentionSpec, intersect, isLowRank, linformer, lshBuckets, type MaskSpec, nystrom, performer, sinks, slidingWindow, topkBlocks, union, type Window } from '@attnopt/ir';

export const DEFAULT_WINDOWS: readonly number[] = [32, 64, 128, 256, 512, 1024];
export const DEFAULT_SINKS: readonly number[] = [4, 16];
export const DEFAULT_TOPK_BLOCK = 64;
export const DEFAULT_TOPK: readonly number[] = [2, 4, 8, 16];
/** Nystrom landmark counts tried (each measured, uncertified, like the Linformer / Performer ranks). */
export const DEFAULT_LANDMARKS: readonly number[] = [32, 64];

/**
 * The alignment of a causal spec, or of a backward window (a proven sliding window: keys [p - left, p]), where every
 * query sees only keys at or before its own aligned position p; else undefined.
 */
function causalAlign(spec: AttentionSpec): Align | undefined {
  return spec.kind === 'causal' || (spec.kind === 'window' && spec.right === 0) ? spec.align : undefined;
}

/** The keys a backward window baseline reaches behind the query (a window no wider saves nothing), else Infinity. */
const baselineLeft = (spec: AttentionSpec): number => (spec.kind === 'window' ? spec.left : Infinity);

/**
 * The default windows for a site of nk keys: a causal site gets backward windows aligned as its causal mask is
 * (bottom-right, past: the query's position counts from the end of the keys), so the window ends exactly where
 * the mask does; a site whose own mask is a backward window gets the narrower ones, aligned as it is; any other
 * site centred ones.
 */
export function defaultWindows(baseline: MaskSpec, nk: number): Window[] {
  const align = causalAlign(baseline);
  return DEFAULT_WINDOWS.filter((w) => w < nk && w - 1 < baselineLeft(baseline)).map((w) => (align !== undefined ? slidingWindow(w - 1, 0, align) : slidingWindow(w / 2, w / 2)));
}

/** The default candidates for a site of nk keys (each a form of its own, not yet restricted to the baseline). */
export function defaultCandidates(baseline: MaskSpec, nk: number, seed: number): AttentionSpec[] {
  const out: AttentionSpec[] = [];
  for (const win of defaultWindows(baseline, nk)) {
    out.push(win);
    for (const s of DEFAULT_SINKS) out.push(union(win, sinks(s)));
  }
  // on a causal site the blocks are ranked among those the query block can see (its k are never spent on the future)
  const ranked = causalAlign(baseline);
  for (const k of DEFAULT_TOPK.filter((k) => k * DEFAULT_TOPK_BLOCK < nk)) out.push(topkBlocks(DEFAULT_TOPK_BLOCK, k, 'quest', ranked));
  out.push(lshBuckets(2, 8, seed), lshBuckets(4, 16, seed + 1));
  for (const m of DEFAULT_LANDMARKS.filter((m) => m < nk)) out.push(nystrom(m));
  out.push(linformer(256, seed), performer(256, seed));
  return out;
}

/**
 * The candidate restricted to the baseline: intersect(baseline, candidate), written without the
 * intersection where the candidate already implies the baseline (dense baseline; a backward window on a
 * causal site). Low-rank forms replace the softmax and are returned as they are.
 */
export function restrictToBaseline(baseline: MaskSpec, candidate: AttentionSpec): AttentionSpec {
  if (isLowRank(candidate) || baseline.kind === 'dense') return candidate;
  const align = causalAlign(baseline);
  if (align !== undefined && candidate.kind === 'window' && candidate.align === align && candidate.right <= 0 && candidate.left <= baselineLeft(baseline)) return candidate;
  return intersect(baseline, candidate);
}
