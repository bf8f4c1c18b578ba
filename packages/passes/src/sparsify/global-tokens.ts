// Global-token candidates chosen from the calibration data (Longformer, BigBird: a few keys every query keeps):
//   window  ->  window ∪ global(tokens)
// For each window candidate and each head, the column mass outside the band: c_j = Σ_i p_ij over the sampled
// calibration rows i whose baseline keeps j and whose band does not. The heavy hitters, columns holding at least
// 1/MAX_GLOBAL_TOKENS of a head's out-of-band mass, become the window's global tokens (the union over heads, the
// heaviest first, at most MAX_GLOBAL_TOKENS). A head whose out-of-band mass is spread (local or diffuse attention)
// has no heavy hitter, so such a site gets no global-token candidate.
//
// Tokens read off the calibration data hold nothing on another input by themselves (a separator that moves): these
// candidates are for the guarded tier only. The guard bounds, per row at run time, the mass the form drops and
// recomputes the rows over the budget, whatever the tokens are. The chooser never accepts them statistically: the
// held-out rows are the rows the tokens were read from.
//
// A global token also makes its own query row dense (the IR's global leaf): the cost model prices those rows.

import { type AttentionParams, type AttentionSpec, globalTokens, type MaskSpec, rowKeys, softmaxInPlace, union, type Window } from '@attnopt/ir';
import { type CalibrationSample, headData, sampleBatch } from './calibration.js';
import { scoreRow } from './evaluate.js';

/**
 * The most global tokens a candidate takes, and so the heavy-hitter share 1/16 (at most 16 columns of a head can
 * each hold 1/16 of its mass). Each token adds one key to every row and one dense row (nk scores) per head: 16
 * dense rows cost nk/6 rows' worth of the narrowest banded form (at least 96 keys per row: a 64-query block
 * and a 32-key window), so the tokens stay a small part of the form's cost whatever the model.
 */
export const MAX_GLOBAL_TOKENS = 16;

/** Calibration rows read per head and sample: every ⌊nq / 256⌋-th (as the candidates' error is sampled). */
const ROWS_PER_HEAD = 256;

/** Per head: the column mass outside each window's band (summed over the sampled rows), one array per window. */
function outOfBandMass(params: AttentionParams, samples: readonly CalibrationSample[], baseline: MaskSpec, windows: readonly Window[]): Float64Array[][] {
  const perHead: Float64Array[][] = [];
  for (const sample of samples) {
    for (let b = 0; b < sampleBatch(sample); b++) {
      for (let h = 0; h < params.numHeads; h++) {
        const head = headData(params, sample, b, h);
        const { nq, nk } = head;
        const dims = { nq, nk, past: head.past ?? 0 };
        const mass = (perHead[h] ??= windows.map(() => new Float64Array(nk)));
        if (mass[0]!.length !== nk) throw new Error(`sparsify: global tokens: calibration samples of head ${h} have ${mass[0]!.length} and ${nk} keys`);
        const p = new Float64Array(nk);
        const bias = head.biasRow ? new Float64Array(nk) : undefined;
        const stride = Math.max(1, Math.floor(nq / ROWS_PER_HEAD));
        for (let i = 0; i < nq; i += stride) {
          const base = rowKeys(baseline, i, dims);
          softmaxInPlace(scoreRow(head, i, base, p, bias));
          windows.forEach((w, k) => {
            // p is 0 off the baseline: the row's whole mass, less the band's
            const col = mass[k]!;
            const band = rowKeys(w, i, dims);
            let from = 0;
            for (let t = 0; t <= band.length; t += 2) {
              const to = t < band.length ? band[t]! : nk;
              for (let j = from; j < to; j++) col[j]! += p[j]!;
              from = t < band.length ? band[t + 1]! : nk;
            }
          });
        }
      }
    }
  }
  return perHead;
}

/** The heavy hitters of each head's column mass (share >= 1/MAX_GLOBAL_TOKENS), heaviest first, at most MAX_GLOBAL_TOKENS. */
export function heavyColumns(perHead: readonly Float64Array[]): number[] {
  const share = new Map<number, number>();
  for (const col of perHead) {
    const total = col.reduce((a, x) => a + x, 0);
    if (!(total > 0)) continue;
    col.forEach((c, j) => {
      const s = c / total;
      if (s >= 1 / MAX_GLOBAL_TOKENS) share.set(j, Math.max(share.get(j) ?? 0, s));
    });
  }
  return [...share.entries()]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, MAX_GLOBAL_TOKENS)
    .map(([j]) => j);
}

/**
 * window ∪ global(tokens) for each of `windows` whose out-of-band mass has heavy hitters on the calibration
 * samples (see the top of this file); the tokens take the window's alignment. Not restricted to the baseline.
 */
export function globalTokenCandidates(params: AttentionParams, samples: readonly CalibrationSample[], baseline: MaskSpec, windows: readonly Window[]): AttentionSpec[] {
  if (windows.length === 0 || samples.length === 0) return [];
  const perHead = outOfBandMass(params, samples, baseline, windows);
  const out: AttentionSpec[] = [];
  windows.forEach((w, k) => {
    const tokens = heavyColumns(perHead.map((cols) => cols[k]!));
    if (tokens.length > 0) out.push(union(w, globalTokens(tokens, w.align)));
  });
  return out;
}

/** The global tokens of a candidate (its global leaves' tokens, ascending), or [] when it has none. */
export function globalTokensOf(spec: AttentionSpec): number[] {
  const found = new Set<number>();
  const walk = (s: AttentionSpec) => {
    if (s.kind === 'global') for (const t of s.tokens) found.add(t);
    if (s.kind === 'union' || s.kind === 'intersect') s.parts.forEach(walk);
    if (s.kind === 'diff') {
      walk(s.base);
      walk(s.minus);
    }
  };
  walk(spec);
  return [...found].sort((a, b) => a - b);
}
