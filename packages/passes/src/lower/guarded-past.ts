// Guarded forms on a site with past keys (a KV cache input): the present keys are past ⊕ new (attention.ts
// concatenates them), T = P + S, and query i sits at position P + i under the `past` alignment (P = the past keys'
// length, read at run time) and the `bottom-right` one (T - S = P) alike; `top-left` puts it at i. The guarded banded
// form takes such a site as it is (guarded.ts): the band and the causal limit at P + i, the key block summaries, the
// dropped counts and V's range over all T keys, the fallback rows dense over past ⊕ new with the baseline's mask at
// the same offset (withPastBaseline; a window baseline, as GroupQueryAttention's local_window_size gives, alike).
// The guarded block-gathered form takes it too: its causal cut and dropped
// counts at the offset attention.ts gives it, its fallback rows as the banded form's. LSH does not take past keys yet.

import { type AttentionParams, type AttentionSpec, blockGathered, causal, isDataDependent, isLowRank, keySupport, type MaskSpec, slidingWindow, type Value } from '@attnopt/ir';

/** Where a spec alignment puts query i on a site with past keys: after the cache, or at i. */
const offsetWithPast = (align: string): 'after the cache' | 'at its index' => (align === 'top-left' ? 'at its index' : 'after the cache');

/**
 * Why the guarded form of `spec` over `baseline` does not take a past keys input, or undefined: banded forms
 * (windows, sinks, global tokens) and block-gathered ones (blocks, top-k blocks, alone or cut by the causal
 * baseline), every term of the spec placing the query where the causal baseline does (`past` and `bottom-right`
 * both at P + i, `top-left` at i). `baseline` undefined: the spec is the site's own.
 */
export function guardedPastKeysBlocker(spec: AttentionSpec, baseline: AttentionSpec | undefined): string | undefined {
  const gathered = blockGathered(spec);
  if (gathered === undefined && (isLowRank(spec) || isDataDependent(spec))) {
    return `not lowered guarded yet: ${isLowRank(spec) ? spec.kind : 'a data-dependent form'} with a past keys input (the guarded banded and block-gathered forms take one: windows, sinks, global tokens, blocks, top-k blocks)`;
  }
  const own = gathered ? (gathered.causal ? [gathered.causal.align] : []) : (keySupport(spec as MaskSpec)?.aligns ?? []);
  const aligns = [...own, ...(baseline?.kind === 'causal' || baseline?.kind === 'window' ? [baseline.align] : [])];
  const where = new Set(aligns.map(offsetWithPast));
  if (where.size > 1) return `not lowered guarded yet: with past keys the spec's alignments (${[...new Set(aligns)].join(', ')}) put the query at different positions`;
  return undefined;
}

/**
 * causal(past) -> causal(bottom-right) in the guard of a site with past keys, and a window(past) baseline (a KV
 * cache's sliding window: GroupQueryAttention's local_window_size) -> the same window bottom-right: the same mask
 * there (T - S = P), and the one the fallback rows' mask (guarded-certificate.ts) computes from T - S without P.
 * Other sites as they are.
 */
export function withPastBaseline<X extends { readonly params: AttentionParams; readonly past?: Value }>(x: X): X {
  const guard = x.params.guard;
  const base = guard?.baseline;
  if (x.past === undefined || guard === undefined || (base?.kind !== 'causal' && base?.kind !== 'window') || base.align !== 'past') return x;
  const baseline = base.kind === 'causal' ? causal('bottom-right') : slidingWindow(base.left, base.right, 'bottom-right');
  return { ...x, params: { ...x.params, guard: { ...guard, baseline } } };
}
