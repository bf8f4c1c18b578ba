// A NaN in K or V reaches the guarded output exactly where it reaches the model's own (baseline) attention. The key
// block summaries' ReduceMin / ReduceMax and V's range pass over a NaN in onnxruntime, so without a NaN carried into
// the certificate a row that drops the NaN key (or its value) passes it, and its output is a number where the
// model's is NaN. In onnxruntime, opset 21, against the float64 reference of the baseline, at n = 512, key 100 of
// head 1 given a NaN channel (in K, or in V), for the banded and block-gathered guarded forms on local inputs and the
// LSH forms (leaf and chunked) on clustered ones (without the NaN the certificate passes some rows of head 1 that
// drop keys, in each: checked):
//   - NaN wherever the reference is NaN;
//   - NaN where the reference is a number only where the unguarded form is NaN too, or on a row that fell back: the
//     banded form reads key 100 in the blocks of rows that mask it (rows 64..99 here), and the dense fallback rows
//     read every key; both mask by adding -inf (NaN + -inf = NaN, 0 · NaN = NaN), as an additive mask does in
//     onnxruntime. With a NaN key or value every row of its head that drops a key falls back (no bound);
//   - every other output within the budget plus float32 rounding.
// With a lengths input (kvLength 400), a NaN in a padding key or value (key 450) changes no row's fallback flag and
// no output: padding keys may hold anything (a KV cache's unwritten slots) and no row reads them. Every row, kept
// sparse or recomputed, stays within the budget of the reference, in every form (the guarded lowering zeroes
// padding keys and values before its parts read them: they mask padding after reading it).

import { type AttentionSpec, causal, dense, intersect, lshBuckets, sinks, slidingWindow, topkBlocks, union } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import { clusteredInputs, localInputs, type QKV } from './helpers/guarded-inputs.js';
import { buildBhsdSite, referenceBhsd, runBhsdSite, type Shape } from './helpers/bhsd-site.js';
import { type GuardChoices, guardedSiteParams } from './helpers/guarded-params.js';

const N = 512;
const D = 16;
const BUDGET = 1e-3;
const ROUNDING = 1e-4;
const SHAPE: Shape = { B: 1, H: 2, Hkv: 2 };

const params = (spec: AttentionSpec, baseline: AttentionSpec, budget?: number, choices?: GuardChoices) => guardedSiteParams(SHAPE.H, D, spec, budget, baseline, choices);

const local = (): QKV => localInputs(3, SHAPE.B, SHAPE.H, N, D);
const clustered = (): QKV => clusteredInputs(3, SHAPE.B, SHAPE.H, SHAPE.Hkv, N, D);

/** Name, spec, baseline, inputs, the guard's cheaper choices (default the box and the ball, log Z_S the log-sum-exp). */
const FORMS: [string, AttentionSpec, AttentionSpec, () => QKV, GuardChoices?][] = [
  ['banded: causal ∩ (window 64 ∪ sinks 2)', intersect(causal(), union(slidingWindow(63, 0), sinks(2))), causal(), local],
  ['banded, the box alone: causal ∩ (window 64 ∪ sinks 2)', intersect(causal(), union(slidingWindow(63, 0), sinks(2))), causal(), local, { summaries: 'box' }],
  ['banded, the box alone and the max logit: causal ∩ (window 64 ∪ sinks 2)', intersect(causal(), union(slidingWindow(63, 0), sinks(2))), causal(), local, { summaries: 'box', logZ: 'max-logit' }],
  ['block-gathered: top-k blocks (64, 2, quest) over a dense baseline', topkBlocks(64, 2, 'quest'), dense, local],
  ['block-gathered, the box alone: top-k blocks (64, 2, quest) over a dense baseline', topkBlocks(64, 2, 'quest'), dense, local, { summaries: 'box' }],
  ['block-gathered, the box alone and the max logit: top-k blocks (64, 2, quest) over a dense baseline', topkBlocks(64, 2, 'quest'), dense, local, { summaries: 'box', logZ: 'max-logit' }],
  ['LSH: 2 rounds of 8 buckets over a dense baseline', lshBuckets(2, 8, 5), dense, clustered],
  ['chunked LSH: 2 rounds of 8 buckets, chunks of 128, over a dense baseline', lshBuckets(2, 8, 5, 128), dense, clustered],
];

describe.each(FORMS)('guarded %s, a NaN in K or V', (_name, spec, baseline, inputs, choices) => {
  const model = buildBhsdSite(SHAPE, params(spec, baseline, BUDGET, choices), { flags: true });
  const unguarded = buildBhsdSite(SHAPE, params(spec, baseline));
  // rows 200 on drop keys in every form (the banded one drops key 100 there): some must pass their certificate
  it('without a NaN the certificate passes some rows of head 1 that drop keys', async () => {
    const { flags } = await runBhsdSite(model, SHAPE, inputs(), N, D);
    expect(flags!.subarray(N + 200, 2 * N).filter((f) => f === 0).length).toBeGreaterThan(0);
  }, 60_000);
  it.each(['k', 'v'] as const)('a NaN in %s: NaN exactly where the baseline has it', async (where) => {
    const x = inputs();
    x[where][(1 * N + 100) * D + 5] = Number.NaN;
    const { y, flags } = await runBhsdSite(model, SHAPE, x, N, D);
    const { y: yu } = await runBhsdSite(unguarded, SHAPE, x, N, D);
    const ref = referenceBhsd(params(baseline, baseline), SHAPE, x, N);
    let nan = 0;
    let worst = 0;
    const at = (t: number) => `coordinate ${t} (head ${Math.floor(t / (N * D))}, row ${Math.floor(t / D) % N})`;
    ref.forEach((r, t) => {
      if (Number.isNaN(r)) {
        expect(y[t], at(t)).toBeNaN();
        nan++;
      } else if (Number.isNaN(y[t]!) && flags![Math.floor(t / D)] !== 1) expect(yu[t], `${at(t)}: NaN, the reference ${r}, kept sparse`).toBeNaN();
      else if (!Number.isNaN(y[t]!)) worst = Math.max(worst, Math.abs(y[t]! - r));
    });
    expect(nan).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(BUDGET + ROUNDING);
  }, 60_000);
});

describe.each(FORMS)('guarded %s, a NaN in a padding key or value', (_name, spec, baseline, inputs, choices) => {
  const LENGTH = [400];
  const model = buildBhsdSite(SHAPE, params(spec, baseline, BUDGET, choices), { flags: true, kvLength: true });
  it.each(['k', 'v'] as const)('a NaN in padding %s: the same fallback flags, every row within the budget', async (where) => {
    const x = inputs();
    const clean = await runBhsdSite(model, SHAPE, x, N, D, LENGTH);
    x[where][(1 * N + 450) * D + 5] = Number.NaN;
    const { y, flags } = await runBhsdSite(model, SHAPE, x, N, D, LENGTH);
    expect(flags).toEqual(clean.flags);
    // the premise: rows of head 1 that fall back, and rows that drop keys and stay sparse
    const head1 = flags!.subarray(N + 200, 2 * N);
    expect(head1.filter((f) => f === 1).length, 'rows of head 1 falling back').toBeGreaterThan(0);
    expect(head1.filter((f) => f === 0).length, 'rows of head 1 kept sparse').toBeGreaterThan(0);
    const ref = referenceBhsd(params(baseline, baseline), SHAPE, x, N, LENGTH);
    let worst = 0;
    ref.forEach((r, t) => {
      expect(Number.isNaN(y[t]!), `coordinate ${t} (head ${Math.floor(t / (N * D))}, row ${Math.floor(t / D) % N}): NaN, the reference ${r}`).toBe(false);
      worst = Math.max(worst, Math.abs(y[t]! - r));
    });
    expect(worst).toBeLessThanOrEqual(BUDGET + ROUNDING);
  }, 60_000);
});
