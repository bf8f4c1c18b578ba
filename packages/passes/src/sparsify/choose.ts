// chooseSiteSpec: per site, the cheapest candidate form (by the cost model on the target) within the budget;
// the site's own spec when nothing qualifies or nothing is cheaper. Three tiers (BOUNDS.md (b')):
// - guarded (the default for mask-shaped forms that have a guarded lowering): the rewritten site bounds, per row
//   and at run time, the mass it drops and recomputes densely every row over the budget, so the error holds on
//   every input. It qualifies when its predicted cost (sparse + the calibration rows' fallback rate x dense) is
//   below the site's own; a diffuse site, whose rows would all fall back, stays dense.
// - statistical (only with allowUncertified): the bound or error measured on the calibration data alone, for
//   mask-shaped forms without a guard and low-rank forms (Nystrom, Linformer, Performer). The calibration rows are
//   split (fixed seed) into fit rows, whose max must be within the budget, and held-out rows, whose conformal
//   quantile (bounds' conformalQuantile, level 1 - alpha) must be too: the distribution-free statement recorded as
//   `confidence`, P(error of a new exchangeable row <= quantile) >= 1 - alpha.
// - exact: the site's own spec. When heads
// want different forms and head groups are cheaper by the cost model than one spec for every head, the decision
// lists the groups (head-groups.ts) and the pass splits the site. Pure: plain data in, a SiteDecision out;
// deterministic for the same inputs and seed.

import { attentionCost, attnoptCpuProfile, type AttentionCost, type CallDims, type CostOptions, expectedPairs, guardCertificateCost, guardCertificateOps, type TargetProfile } from '@attnopt/cost';
import {
  type AttentionParams,
  type AttentionSpec,
  isDataDependent,
  isLowRank,
  type LeafResolver,
  loweringChoice,
  type MaskSpec,
  printSpec,
  specEquals,
} from '@attnopt/ir';
import { type AttentionGuard, SplitMix64 } from '@attnopt/ir';
import { type ConformalConfidence, conformalQuantile } from '@attnopt/bounds';
import { guardableSpec } from '../lower/guarded.js';
import { DECODE_ROUTE_BRANCH_SECONDS, DECODE_ROUTE_NODES, decodeRouteThreshold } from '../lower/decode-route.js';
import { guardBlockSize, isBlockGathered } from '../lower/guarded-blocks.js';
import { guardedLshChoiceBlocker, isLshForm } from '../lower/guarded-lsh.js';
import { type HeadData, headData, sampleBatch, type SiteCalibration } from './calibration.js';
import type { EmittedNodes } from './emitted-nodes.js';
import { defaultCandidates, defaultWindows, restrictToBaseline } from './candidates.js';
import { globalTokenCandidates, globalTokensOf } from './global-tokens.js';
import { type CandidateStats, DEFAULT_GUARD_BLOCK, emptyStats, evaluateHead, fallbackRowRate, mergedStats, recomputedRowRate, rowStrideFor } from './evaluate.js';
import { groupsText, type HeadGroup, headsText, planHeadGroups, splitCopySeconds } from './head-groups.js';
import { baselineOutput, emptyLowRankStats, type EvaluableLowRank, evaluateLowRankHead } from './lowrank.js';
import { keptFields } from './kept.js';
import { headResolver } from './resolve.js';

/** Why a statistical form is not taken when the tier is off, in the words of the CLI and the API. */
const STATISTICAL_OFF = 'the statistical tier is off (--allow-statistical with --calibration data; API: allowStatistical)';

/** What a site's rewrite promises: the same function, a bound on every input checked at run time, or on the calibration data only. */
export type Guarantee = 'exact' | 'guarded' | 'statistical';

export interface SparsifyOptions {
  /** Max absolute error of the site's output allowed (default 1e-2). */
  readonly budget?: number;
  /** Accept mask-shaped forms as guarded forms (run-time certificate, rows over the budget recomputed). Default true. */
  readonly guarded?: boolean;
  /** Why this site's inputs rule out a guarded form (the pass reads it from the node), or undefined. */
  readonly guardBlocked?: string;
  /** Why this site's inputs rule out the guarded form of one candidate (past keys: banded forms only), or undefined. */
  readonly guardFormBlocked?: (form: AttentionSpec) => string | undefined;
  /** Why this site's inputs rule out block-gathered forms (blocks, top-k blocks; the pass reads it from the node), or undefined. */
  readonly blockGatherBlocked?: string;
  /** Why this site's inputs rule out low-rank forms (a bias, kvLength, softcap; the pass reads it from the node), or undefined. */
  readonly lowRankBlocked?: string;
  /**
   * Counts the ONNX nodes the site's lowering emits for a form (the pass lowers a scratch copy of the site): on
   * onnxruntime each costs the profile's per-node overhead. Without it, the cost model's kernel list counts.
   */
  readonly emittedNodes?: EmittedNodes;
  /** Key block size of the guard's summaries (default 64; a block-gathered form's guard takes its own key block). */
  readonly guardBlockSize?: number;
  /**
   * The site's inputs every form's lowering reads (the pass reads them from the node, siteCostInputs): an n x n bias
   * input (float, or a boolean keep-mask: every form lowers dense with it) and a lengths input (kvLength: every
   * lowered form copies the keys and values over the padding, padding.ts). Priced in each form's cost; default none.
   */
  readonly siteInputs?: Pick<CostOptions, 'bias' | 'kvLength'>;
  /**
   * Decode steps (one query over the calibration's keys) a site that takes cached keys serves per call of the
   * calibration's shape: every form, and the site as written, is priced as that call plus this many steps, so that
   * a model that generates token by token is not sped up at its prompt and slowed on every token. Default 0: the
   * calibration's shape alone decides. Sites without cached keys ignore it.
   */
  readonly decodeSteps?: number;
  /**
   * The target whose cost model ranks the forms (default attnopt-cpu, fused, empty tiles skipped). On
   * onnxruntime-cpu the model costs the form the lowering emits (the IR's loweringChoice): windows and
   * sinks ∪ window banded (n · (block + w) scores), top-level block layouts block-gathered, the rest dense.
   */
  readonly target?: TargetProfile;
  /** Seed of the data-dependent and random forms (LSH rotations, Linformer / Performer draws). Default 0. */
  readonly seed?: number;
  /** The candidate forms (unrestricted; each is intersected with the site's spec). Default: defaultCandidates. */
  readonly candidates?: readonly AttentionSpec[];
  /**
   * With the default candidates, also windows ∪ global tokens read off the calibration data (global-tokens.ts),
   * guarded only (default true; off without the guarded tier).
   */
  readonly globalTokens?: boolean;
  /** Evaluate and record every head apart (default true); needed for head groups. */
  readonly perHead?: boolean;
  /**
   * Split the site into head groups, each with its own spec, when that is cheaper by the cost model than one
   * spec for every head (default true; needs perHead). Off: one spec that satisfies every head.
   */
  readonly headGroups?: boolean;
  /**
   * Statistical tier: accept forms on what the calibration data alone shows (mask-shaped forms without a guard on
   * their measured dropped-mass bound, low-rank forms on their measured max-abs error; BOUNDS.md (c), (d)).
   * Default false: they are measured and recorded, never accepted.
   */
  readonly allowUncertified?: boolean;
  /** Use at most this many calibration samples (default all). */
  readonly maxSamples?: number;
  /** Miscoverage of the statistical tier's conformal quantile (default 0.05: the quantile covers 95% of new rows). */
  readonly alpha?: number;
}

/**
 * The largest predicted fallback rate a guarded form may have. The cost model prices the banded form, the
 * summaries and the gathered dense rows apart and misses their overheads: on the trained byte LM (4 sites, n = 1024,
 * onnxruntime, one thread) a guarded window(left=511) with half its rows falling back was predicted 0.83x of dense
 * per site and ran 1.4x slower than dense for the whole model. Above this rate the site stays dense.
 */
export const MAX_GUARDED_FALLBACK = 0.25;

/** The fraction of calibration rows held out of the fit for the statistical tier's conformal quantile. */
export const HELD_OUT_FRACTION = 0.5;

/** Which of a head's nq rows are held out (1), from a generator seeded by the site seed, sample, batch and head. */
function heldOutRows(nq: number, seed: number, sample: number, batch: number, head: number): Uint8Array {
  const rng = new SplitMix64(BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(((sample * 65_537 + batch) * 4_099 + head) >>> 0));
  return Uint8Array.from({ length: nq }, () => (rng.nextFloat() < HELD_OUT_FRACTION ? 1 : 0));
}

/** One form tried at a site. Bounds and errors are max-abs over the output, over every head and sample. */
export interface TriedForm {
  /** The form as printSpec writes it (restricted to the site's spec). */
  readonly spec: string;
  /** Whether the form can carry a guarantee beyond the calibration data (mask-shaped) or not (low-rank). */
  readonly certified: boolean;
  /** Max-abs error bound on the calibration data (BOUNDS.md (a) with the dropped mass measured); null: not evaluated or low-rank. */
  readonly bound: number | null;
  /** The tier the form would take: guarded when its guarded form applies and pays, else statistical. */
  readonly guarantee: Guarantee | null;
  /** Fraction of calibration rows whose run-time certificate exceeds the budget (they would be recomputed); null: not evaluated. */
  readonly fallbackRate: number | null;
  /** Why the guarded form does not apply, when it does not. */
  readonly guardReason?: string;
  /** Max |o - o_S| measured on the calibration data; null: not evaluated. */
  readonly measuredError: number | null;
  /** Rows the error was measured on (rows of over-budget forms are sampled) out of `rows`. */
  readonly measuredRows: number;
  readonly rows: number;
  /** Largest dropped mass of a row. */
  readonly maxDroppedMass: number | null;
  readonly flops: number;
  readonly time: number;
  readonly accepted: boolean;
  readonly reason: string;
}

export interface HeadDetail {
  readonly head: number;
  /** The cheapest qualifying form for this head alone (printSpec), or the site's spec. */
  readonly best: string;
  readonly bound: number;
}

/** What one spec for every head would have given, recorded when head groups were chosen instead. */
export interface UniformChoice {
  readonly chosen: string;
  readonly bound: number;
  readonly flops: number;
  readonly time: number;
}

export type { HeadGroup } from './head-groups.js';

export interface SiteDecision {
  readonly id: string;
  readonly target: string;
  readonly budget: number;
  /** The site's spec before sparsify (the baseline every form is restricted to). */
  readonly before: string;
  /** The one spec of the site; with `groups`, the site's own spec (each group's spec is in `groups`). */
  readonly chosenSpec: AttentionSpec;
  /** printSpec(chosenSpec); with `groups`, every group's heads and spec ("heads 0-1: ... | heads 2-3: ..."). */
  readonly chosen: string;
  /** True when the chosen spec is the site's own (error 0). */
  readonly exact: boolean;
  /** False when the chosen form holds on the calibration data only (statistical tier). */
  readonly certified: boolean;
  /** exact, guarded (every input, checked at run time) or statistical (calibration data only); groups: the weakest. */
  readonly guarantee: Guarantee;
  /** The run-time guard of a guarded site (absent with groups: each group carries its own). */
  readonly guard?: AttentionGuard;
  /** Predicted fraction of rows that fall back (from the calibration data) of a guarded site. */
  readonly fallbackRate?: number;
  /** Calibration rows behind the decision (the statistical tier's sample count). */
  readonly calibrationRows?: number;
  /**
   * A statistical decision's distribution-free statement over its held-out calibration rows: P(the error of a new
   * row exchangeable with them <= quantile) >= 1 - alpha (with groups: the statistical group of the largest quantile).
   */
  readonly confidence?: ConformalConfidence;
  /**
   * Max-abs error bound: the budget for a guarded site (every input), the bound measured on the calibration data
   * for a statistical mask form, Infinity for a low-rank one (see measuredError). With groups, the largest.
   */
  readonly bound: number;
  readonly measuredError: number;
  readonly flopsBefore: number;
  readonly flopsAfter: number;
  /** Predicted seconds of the site as written and as chosen (with decodeSteps, of one call plus the steps). */
  readonly timeBefore: number;
  readonly timeAfter: number;
  readonly tried: readonly TriedForm[];
  readonly perHead?: readonly HeadDetail[];
  /** Present when the site is split into head groups (in head order), each its own Attention with its own spec. */
  readonly groups?: readonly HeadGroup[];
  /** With groups: the one spec for every head they beat. */
  readonly uniform?: UniformChoice;
  /** Why the site stayed with its own spec. */
  readonly reasonDense?: string;
  /**
   * The chosen form and the site as written timed side by side by the runtime the model is for (the caller's
   * measurement, core's measure-sites.ts), when one was made: the rewrite stays only where it is measured faster.
   */
  readonly measuredTime?: MeasuredTime;
  /**
   * A site that takes cached keys, whose rewrite the cost model predicts slower at one decode step (1 query over the
   * calibration's keys) than the site as written: both predictions (s). A note says it too.
   */
  readonly decodeStep?: DecodeStep;
  readonly notes: readonly string[];
}

/** One decode step's predicted time (s) of the site as written and rewritten, over `keys` keys. */
export interface DecodeStep {
  readonly keys: number;
  readonly asWrittenSeconds: number;
  readonly rewrittenSeconds: number;
}

/** A site timed as written and in its chosen form: medians of alternating rounds (s) on its calibration inputs. */
export interface MeasuredTime {
  readonly runtime: string;
  readonly writtenSeconds: number;
  readonly chosenSeconds: number;
  readonly rounds: number;
}

const fmt = (x: number) => x.toPrecision(3);

/** A chosen form predicted more than this many times the site's time at one decode step gets a note. */
const DECODE_SLOWER = 1.05;

function costOf(
  params: AttentionParams,
  spec: AttentionSpec,
  dims: CallDims,
  target: TargetProfile,
  resolve: LeafResolver,
  nodes?: EmittedNodes,
  inputs: Pick<CostOptions, 'bias' | 'kvLength'> = {},
): AttentionCost & { selectionTime: number } {
  const p = { ...params, spec };
  // a data-dependent form's kept pairs resolved on the rows the chooser evaluates (rowStrideFor), not on every row
  const rowStride = rowStrideFor(dims.nq);
  const cost = attentionCost(p, dims, target, { ...inputs, ...(isDataDependent(spec) ? { resolve, rowStride } : {}) });
  // the cost model counts the selection work (block scores, hashing) of a top-level leaf only: add a nested one's
  let selectionTime = 0;
  let selectionFlops = 0;
  let selectionOps = 0;
  if (!isLowRank(spec) && isDataDependent(spec) && spec.kind !== 'topkBlocks' && spec.kind !== 'lsh') {
    const leaf = findLeaf(spec);
    if (leaf) {
      const ops = attentionCost({ ...params, spec: leaf }, dims, target, { resolve, rowStride }).ops.slice(0, 3);
      selectionTime = ops.reduce((a, o) => a + o.seconds, 0);
      selectionFlops = ops.reduce((a, o) => a + o.flops, 0);
      selectionOps = ops.length;
    }
  }
  // onnxruntime dispatches every node the lowering emits: the listed kernels' overheads become the emitted count's
  const emitted = target.execution === 'unfused' ? nodes?.(spec, undefined, heads(params)) : undefined;
  const dispatch = emitted === undefined ? 0 : (emitted - cost.ops.length - selectionOps) * target.opOverheadSeconds;
  return { ...cost, flops: cost.flops + selectionFlops, time: cost.time + selectionTime + dispatch, selectionTime };
}

const heads = (p: AttentionParams) => ({ numHeads: p.numHeads, kvNumHeads: p.kvNumHeads });

/**
 * A data-dependent leaf at a call shape the calibration data does not hold (one decode step): each row keeps its
 * expected key count (expectedPairs of one query; all keys where there is none), the latest keys.
 */
const expectedLeaf: LeafResolver = (leaf, _row, dims) => {
  const keys = Math.min(dims.nk, Math.round(expectedPairs(leaf, { nq: 1, nk: dims.nk, past: dims.past }) ?? dims.nk));
  return [dims.nk - keys, dims.nk];
};

/** The certificate of a guarded `spec` at these params: its kernels, and on onnxruntime every node it emits. */
function certificateCost(params: AttentionParams, spec: AttentionSpec, guard: AttentionGuard, dims: CallDims, target: TargetProfile, pairs: number, nodes?: EmittedNodes): number {
  const p = { ...params, spec, guard };
  const scoresPerQuery = pairs / Math.max(1, dims.nq);
  const kernels = guardCertificateCost(p, dims, target, guard.blockSize, scoresPerQuery);
  if (target.execution !== 'unfused' || nodes === undefined) return kernels;
  const [withGuard, without] = [nodes(spec, guard, heads(params)), nodes(spec, undefined, heads(params))];
  if (withGuard === undefined || without === undefined) return kernels;
  const listed = guardCertificateOps(p, dims, guard.blockSize, scoresPerQuery).length;
  return kernels + (withGuard - without - listed) * target.opOverheadSeconds;
}

function findLeaf(spec: MaskSpec): MaskSpec | undefined {
  if (spec.kind === 'topkBlocks' || spec.kind === 'lsh') return spec;
  if (spec.kind === 'union' || spec.kind === 'intersect') for (const p of spec.parts) { const l = findLeaf(p); if (l) return l; }
  if (spec.kind === 'diff') return findLeaf(spec.base) ?? findLeaf(spec.minus);
  return undefined;
}

/** Chooses the spec of one site from its calibration data (see SparsifyOptions). */
export function chooseSiteSpec(params: AttentionParams, calibration: SiteCalibration, options: SparsifyOptions = {}): SiteDecision {
  const budget = options.budget ?? 1e-2;
  const guarded = options.guarded ?? true;
  const blockSize = options.guardBlockSize ?? DEFAULT_GUARD_BLOCK;
  const target = options.target ?? attnoptCpuProfile;
  const seed = options.seed ?? 0;
  const perHead = options.perHead ?? true;
  const splitHeads = perHead && (options.headGroups ?? true);
  if (!(budget >= 0)) throw new Error(`sparsify: budget must be >= 0, got ${budget}`);
  const baseline = params.spec;
  const notes: string[] = [];
  const samples = calibration.samples.slice(0, options.maxSamples ?? calibration.samples.length);
  const alpha = options.alpha ?? 0.05;
  const stay = (reasonDense: string, tried: TriedForm[] = [], before?: AttentionCost, perHeadDetails?: HeadDetail[]): SiteDecision => ({
    id: calibration.id,
    target: target.name,
    budget,
    before: printSpec(baseline),
    ...keptFields(baseline),
    flopsBefore: before?.flops ?? NaN,
    flopsAfter: before?.flops ?? NaN,
    timeBefore: before?.time ?? NaN,
    timeAfter: before?.time ?? NaN,
    tried,
    ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
    reasonDense,
    notes,
  });
  if (isLowRank(baseline)) return stay(`the site is already a low-rank form (${printSpec(baseline)})`);
  if (isDataDependent(baseline)) return stay(`the site's spec is already data-dependent (${printSpec(baseline)})`);
  if (samples.length === 0) return stay('no calibration samples for this site');

  const first = headData(params, samples[0]!, 0, 0);
  // the cached keys too: a past-aligned form lowers banded with them, dense without (kvLength alone)
  const dims: CallDims = { batch: sampleBatch(samples[0]!), nq: first.nq, nk: first.nk, past: first.past ?? 0 };
  const resolve0 = headResolver(first);
  const nodes = options.emittedNodes;
  const siteInputs = options.siteInputs ?? {};
  if (options.decodeSteps !== undefined && !(options.decodeSteps >= 0 && Number.isFinite(options.decodeSteps))) {
    throw new Error(`sparsify: decodeSteps must be finite and >= 0, got ${options.decodeSteps}`);
  }
  const decodeSteps = (first.past ?? 0) > 0 ? (options.decodeSteps ?? 0) : 0;
  const step: CallDims = { ...dims, nq: 1, past: dims.nk - 1 };
  // the lowering's decode route (decode-route.ts): in onnxruntime a call of fewer new queries than the guard's key
  // block (a guarded form) or DECODE_ROUTE_BANDED_QUERIES (an unguarded banded one) runs the site's exact dense form,
  // so such a step costs that form (priced as the site as written) plus the route's nodes and branch. A form counts as
  // guarded where it can take a guard
  // (a guarded form counts as sparse whatever loweringChoice says of the calibration's key count: a site that decodes
  // has a symbolic one, which the lowering takes sparse)
  const routeOf = (spec: AttentionSpec, guardBlock: number | undefined): number | undefined =>
    target.execution !== 'unfused' ? undefined : decodeRouteThreshold(guardBlock !== undefined ? 'sparse' : loweringChoice(spec, { keys: dims.nk }).strategy, guardBlock);
  const routedStep = (spec: AttentionSpec): boolean => {
    const guardable = guarded && budget > 0 && !isLowRank(spec) && guardableSpec(spec, baseline) === undefined;
    return step.nq < (routeOf(spec, guardable ? guardBlockSize(spec, blockSize) : undefined) ?? 0);
  };
  const stepCost = (p: AttentionParams, spec: AttentionSpec): AttentionCost & { selectionTime: number } => {
    if (!routedStep(spec)) return costOf(p, spec, step, target, expectedLeaf, nodes, siteInputs);
    const dense = costOf(p, baseline, step, target, expectedLeaf, nodes, siteInputs);
    return { ...dense, time: dense.time + DECODE_ROUTE_NODES * target.opOverheadSeconds + DECODE_ROUTE_BRANCH_SECONDS };
  };
  // the work a form does for the site: one call of the calibration's shape, then decodeSteps decode steps
  const workCost = (p: AttentionParams, spec: AttentionSpec): AttentionCost & { selectionTime: number } => {
    const c = costOf(p, spec, dims, target, resolve0, nodes, siteInputs);
    if (decodeSteps === 0) return c;
    const d = stepCost(p, spec);
    return { ...c, time: c.time + decodeSteps * d.time, flops: c.flops + decodeSteps * d.flops };
  };
  // a routed decode step runs no certificate
  const stepCertificate = (p: AttentionParams, spec: AttentionSpec, guard: AttentionGuard): number =>
    routedStep(spec) ? 0 : certificateCost(p, spec, guard, step, target, costOf(p, spec, step, target, expectedLeaf, undefined, siteInputs).computedPairs, nodes);
  const workCertificate = (p: AttentionParams, spec: AttentionSpec, guard: AttentionGuard, pairs: number): number =>
    certificateCost(p, spec, guard, dims, target, pairs, nodes) + (decodeSteps === 0 ? 0 : decodeSteps * stepCertificate(p, spec, guard));
  const before = workCost(params, baseline);
  if (decodeSteps > 0) notes.push(`priced as one call of ${dims.nq} queries over ${dims.nk} keys plus ${decodeSteps} decode steps (1 query each; decodeSteps)`);
  // the decode route's query count of each form (undefined: none), and of a split as a whole: where every group
  // computes the site's function on a dense branch (guarded, or the site's own spec), one If wraps the whole split
  // at the smallest of its groups' counts (split-decode-route.ts)
  const routesOf = (forms: readonly { spec: AttentionSpec; guard?: AttentionGuard }[]) => forms.map((f) => routeOf(f.spec, f.guard?.blockSize));
  const splitRoute = (forms: readonly { spec: AttentionSpec; guard?: AttentionGuard }[]): number | undefined => {
    const counts = routesOf(forms).filter((q): q is number => q !== undefined);
    const whole = forms.length > 1 && counts.length > 0 && forms.every((f) => f.guard !== undefined || specEquals(f.spec, baseline));
    return whole ? Math.min(...counts) : undefined;
  };
  type StepForm = { params: AttentionParams; spec: AttentionSpec; guard?: AttentionGuard };
  // one decode step of the rewrite (its forms, one per head group): a split routed whole runs the site's dense form
  // plus the route; otherwise each form's step (its own route, or its sparse form and certificate), and for a split
  // the Slices of Q, K, V (the whole cache) per group and the Concat
  const stepOfForms = (forms: readonly StepForm[]): number => {
    const whole = splitRoute(forms);
    if (whole !== undefined && step.nq < whole) {
      return costOf(params, baseline, step, target, expectedLeaf, nodes, siteInputs).time + DECODE_ROUTE_NODES * target.opOverheadSeconds + DECODE_ROUTE_BRANCH_SECONDS;
    }
    const groups = forms.reduce((t, f) => t + stepCost(f.params, f.spec).time + (f.guard ? stepCertificate(f.params, f.spec, f.guard) : 0), 0);
    return forms.length > 1 ? groups + splitCopySeconds(params, step, target, forms.length) : groups;
  };
  // a site that takes cached keys also decodes, one query at a time: a note when the rewrite is predicted slower there
  // than as written
  const decodeStepOf = (forms: readonly StepForm[]): DecodeStep | undefined => {
    if ((first.past ?? 0) === 0) return undefined;
    const asWritten = costOf(params, baseline, step, target, expectedLeaf, nodes, siteInputs).time;
    const rewritten = stepOfForms(forms);
    return rewritten > asWritten * DECODE_SLOWER ? { keys: dims.nk, asWrittenSeconds: asWritten, rewrittenSeconds: rewritten } : undefined;
  };
  // where the site decodes (cached keys, or fewer queries than keys), what the lowering's decode route does with the forms
  const decodeRouteNote = (forms: readonly { spec: AttentionSpec; guard?: AttentionGuard }[]): string | undefined => {
    if ((first.past ?? 0) === 0 && dims.nq >= dims.nk) return undefined;
    const whole = splitRoute(forms);
    if (whole !== undefined) {
      const more = [...new Set(routesOf(forms).filter((q): q is number => q !== undefined && q > whole))];
      return (
        `a call of fewer than ${whole} new queries (a decode step) runs the site's exact dense form: the lowering wraps the whole site, its head groups, in one If on the query count (the decode route)` +
        (more.length > 0 ? `; inside it, a head group routed below ${more.join(' or ')} queries keeps its own route` : '')
      );
    }
    const queries = routesOf(forms).filter((q): q is number => q !== undefined);
    if (queries.length === 0) return undefined;
    const n = [...new Set(queries)].join(' or ');
    return `a call of fewer than ${n} new queries (a decode step) runs the site's exact dense form: the lowering wraps ${forms.length > 1 ? 'each head group' : 'the site'} in an If on the query count (the decode route)`;
  };
  const decodeStepNote = (d: DecodeStep) =>
    `one decode step (1 query over ${d.keys} keys; the site takes cached keys): predicted ${fmt(d.rewrittenSeconds * 1e3)} ms against ` +
    `${fmt(d.asWrittenSeconds * 1e3)} ms as written (${(d.rewrittenSeconds / d.asWrittenSeconds).toFixed(2)}x). The rewrite pays at ${dims.nq} queries; ` +
    'a model that generates token by token pays the difference on every token';
  // windows ∪ global tokens read off the calibration data: guarded only (their tokens are the calibration data's)
  const fromData =
    options.candidates === undefined && guarded && options.guardBlocked === undefined && (options.globalTokens ?? true) && budget > 0
      ? globalTokenCandidates(params, samples, baseline, defaultWindows(baseline, first.nk))
          .map((c) => restrictToBaseline(baseline, c))
          .filter((c) => guardableSpec(c, baseline) === undefined)
      : [];
  const forms = [...(options.candidates ?? defaultCandidates(baseline, first.nk, seed)).map((c) => restrictToBaseline(baseline, c)), ...fromData];
  const chosenFromData = (f: AttentionSpec) => fromData.some((g) => specEquals(f, g));
  const unique = forms.filter((f, k) => !specEquals(f, baseline) && forms.findIndex((g) => specEquals(f, g)) === k);
  const costs = unique.map((f) => workCost(params, f));

  // which forms are worth evaluating: cheaper than the baseline, and certifiable (or uncertified allowed)
  const pending: { form: AttentionSpec; cost: AttentionCost; reason?: string }[] = unique.map((form, k) => {
    const cost = costs[k]!;
    if (budget === 0) return { form, cost, reason: 'budget 0 allows exact rewrites only' };
    // what the site's inputs rule out first: it says more than the price of a form that cannot apply
    if (form.kind === 'performer' && !(params.scale >= 0)) return { form, cost, reason: `performer needs scale >= 0, got ${params.scale}` };
    if (isBlockGathered(form) && options.blockGatherBlocked !== undefined) return { form, cost, reason: options.blockGatherBlocked };
    if (isLowRank(form) && options.lowRankBlocked !== undefined) return { form, cost, reason: options.lowRankBlocked };
    if (!(cost.time < before.time)) return { form, cost, reason: `not cheaper on ${target.target}: ${fmt(cost.time * 1e3)} ms vs ${fmt(before.time * 1e3)} ms` };
    // dominated: the same score work or more (a band as wide as the keys), plus its gathers and certificate
    if (!isLowRank(form) && cost.computedPairs >= before.computedPairs)
      return { form, cost, reason: `not cheaper on ${target.target}: scores ${cost.computedPairs} pairs per head, the site's own form ${before.computedPairs}` };
    return { form, cost };
  });
  const evaluated = pending.filter((p) => p.reason === undefined);
  const masks = evaluated.map((p) => p.form);
  const lowK = masks.map((_, k) => k).filter((k) => isLowRank(masks[k]!));
  const maskK = masks.map((_, k) => k).filter((k) => !isLowRank(masks[k]!));
  const maskForms = maskK.map((k) => masks[k] as MaskSpec);
  const lowForms = lowK.map((k) => masks[k] as EvaluableLowRank);
  const heads = params.numHeads;
  const headStats: CandidateStats[][] = Array.from({ length: perHead ? heads : 1 }, () =>
    masks.map((f) => (isLowRank(f) ? emptyLowRankStats() : emptyStats())),
  );
  if (masks.length > 0) {
    samples.forEach((sample, si) => {
      const batch = sampleBatch(sample);
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const head: HeadData = b === 0 && h === 0 && sample === samples[0] ? first : headData(params, sample, b, h);
          const rowStride = rowStrideFor(head.nq);
          // the error measured on about 256 of the rows evaluated, once a form's bound exceeds the budget
          const stride = rowStride * Math.max(1, Math.floor(head.nq / rowStride / 256));
          const all = headStats[perHead ? h : 0]!;
          const resolve = headResolver(head);
          const heldOut = heldOutRows(head.nq, seed, si, b, h);
          if (maskForms.length > 0) {
            const st = maskK.map((k) => all[k]!);
            // a row's id: the same query row of the same sample and batch in every head
            const rowBase = (si * 65536 + b) * 2 ** 20;
            evaluateHead(head, baseline, maskForms, st, resolve, { fullMeasureUpTo: budget, stride, guardBudget: budget, guardBlockSize: blockSize, heldOut, rowBase, rowStride });
          }
          if (lowForms.length > 0) {
            const st = lowK.map((k) => all[k]!);
            evaluateLowRankHead(head, baseline, lowForms, st, resolve, baselineOutput(head, baseline, resolve), heldOut);
          }
        }
      }
    });
  }
  // guarded: a mask form with a guarded lowering whose predicted cost (fallback rows dense) beats the site's own;
  // statistical (allowUncertified): a mask form's bound, or a low-rank form's error, measured on the calibration data
  const guardWhy = masks.map((f) =>
    isLowRank(f)
      ? 'a low-rank form has no run-time certificate'
      : !guarded
        ? 'guarded forms are off'
        : (options.guardBlocked ?? options.guardFormBlocked?.(f) ?? (isLshForm(f) ? guardedLshChoiceBlocker(f, baseline, first.biasRow !== undefined) : guardableSpec(f, baseline))),
  );
  // a guarded form costs its sparse form, its run-time certificate, and its predicted fallback rows dense
  // the ball is left out of the summaries (guard.summaries 'box', cheaper) where it certified no row of these stats that
  // the box alone would recompute, and log Z_S is the largest kept logit alone (guard.logZ 'max-logit', no pass over
  // the probabilities) where the log-sum-exp certified no row it would recompute with those summaries; an LSH
  // certificate takes both summaries and the log-sum-exp always
  const guardFor = (f: AttentionSpec, s: CandidateStats): AttentionGuard => {
    const box = s.ballOnlyRows === 0 && !isLshForm(f);
    const maxLogit = (box ? s.exactLogZBoxRows : s.exactLogZRows) === 0 && !isLshForm(f);
    return {
      budget,
      blockSize: guardBlockSize(f, blockSize),
      baseline,
      ...(box ? { summaries: 'box' as const } : {}),
      ...(maxLogit ? { logZ: 'max-logit' as const } : {}),
    };
  };
  const site = masks.map((_, k) => mergedStats(headStats.map((s) => s[k]!)));
  const certificate = masks.map((f, k) => (guardWhy[k] === undefined ? workCertificate(params, f, guardFor(f, site[k]!), evaluated[k]!.cost.computedPairs) : 0));
  // the fallback rows are recomputed densely in every head when any head falls back there (the lowering's rows)
  // a guarded form costs its sparse form, its certificate and its fallback rows dense: on the call, and on decode steps
  // only where they run the form (a routed step runs the dense form and recomputes nothing)
  const callBefore = costOf(params, baseline, dims, target, resolve0, nodes, siteInputs);
  const fallbackBefore = (k: number) => (decodeSteps > 0 && routedStep(masks[k]!) ? callBefore : before);
  const guardedTime = (k: number, s: CandidateStats) => evaluated[k]!.cost.time + certificate[k]! + recomputedRowRate(s) * fallbackBefore(k).time;
  const guardOf = (k: number, s: CandidateStats): AttentionGuard | undefined =>
    guardWhy[k] === undefined && fallbackRowRate(s) <= MAX_GUARDED_FALLBACK && guardedTime(k, s) < before.time ? guardFor(masks[k]!, s) : undefined;
  // statistical: the fit rows' max and the held-out rows' conformal quantile both within the budget
  const confidences = new WeakMap<{ heldOut: number[] }, ConformalConfidence>();
  const confidenceOf = (s: { heldOut: number[] }): ConformalConfidence => {
    if (!confidences.has(s)) confidences.set(s, conformalQuantile(s.heldOut, alpha));
    return confidences.get(s)!;
  };
  const statistical = (k: number, s: { fitBound: number; heldOut: number[] }) =>
    options.allowUncertified === true && !chosenFromData(masks[k]!) && s.fitBound <= budget && confidenceOf(s).quantile <= budget;
  const within = (k: number, s: CandidateStats) => guardOf(k, s) !== undefined || statistical(k, s);
  const rank = (a: AttentionCost, b: AttentionCost) => a.time - b.time || a.flops - b.flops;
  // a guarded form costs its sparse form, its certificate and its predicted fallback rows, dense
  const effective = (k: number, s: CandidateStats): AttentionCost => {
    const c = evaluated[k]!.cost;
    return guardOf(k, s) ? { ...c, time: guardedTime(k, s), flops: c.flops + fallbackRowRate(s) * fallbackBefore(k).flops } : c;
  };
  const qualifying = masks.map((_, k) => k).filter((k) => within(k, site[k]!));
  const order = [...qualifying].sort((a, b) => rank(effective(a, site[a]!), effective(b, site[b]!)) || a - b);
  const best = order[0];

  // head groups: each key/value head's cheapest qualifying form, when that beats one spec for every head
  const uniformCost = best === undefined ? before : effective(best, site[best]!);
  const plan =
    splitHeads && masks.length > 0
      ? planHeadGroups({
          params,
          baseline,
          forms: masks,
          headStats,
          qualifies: within,
          guardOf,
          // each group's call alone: the split's decode steps are priced whole below
          cost: (nh, nkv, spec) => costOf({ ...params, numHeads: nh, kvNumHeads: nkv }, spec, dims, target, resolve0, nodes, siteInputs),
          guardTime: (nh, nkv, k, s) => {
            const guard = guardOf(k, s);
            if (guard === undefined) return 0;
            const group = { ...params, numHeads: nh, kvNumHeads: nkv };
            const pairs = costOf(group, masks[k]!, dims, target, resolve0, undefined, siteInputs).computedPairs;
            return certificateCost(group, masks[k]!, guard, dims, target, pairs, nodes) + recomputedRowRate(s) * costOf(group, baseline, dims, target, resolve0, nodes, siteInputs).time;
          },
          target,
          dims,
        })
      : undefined;
  // the split's decode steps (decodeSteps): one route around the whole split, or each group's, with the copies
  const groupForms = (groups: readonly HeadGroup[]): StepForm[] =>
    groups.map((g) => ({ params: { ...params, numHeads: g.heads.length, kvNumHeads: g.kvHeads.length }, spec: g.spec, ...(g.guard ? { guard: g.guard } : {}) }));
  const planned = plan === undefined || decodeSteps === 0 ? plan : { ...plan, time: plan.time + decodeSteps * stepOfForms(groupForms(plan.groups)) };
  const split = planned !== undefined && planned.time < uniformCost.time ? planned : undefined;
  const groupOf = (k: number) => split?.groups.filter((g) => specEquals(g.spec, masks[k]!)) ?? [];

  const cheaper = () => printSpec(evaluated[best!]!.form);
  const pct = (x: number) => `${x >= 0.995 ? (100 * x).toFixed(0) : (100 * x).toPrecision(2)}%`;
  const guardText = (k: number, s: (typeof site)[number]) =>
    guardWhy[k] !== undefined
      ? `no guarded form (${guardWhy[k]})`
      : guardOf(k, s)
        ? `guarded: predicted fallback ${pct(fallbackRowRate(s))} of the calibration rows, ${fmt(guardedTime(k, s) * 1e3)} ms vs ${fmt(before.time * 1e3)} ms`
        : fallbackRowRate(s) > MAX_GUARDED_FALLBACK
          ? `guarded form would recompute too many rows: predicted fallback ${pct(fallbackRowRate(s))} of the calibration rows > ${pct(MAX_GUARDED_FALLBACK)}`
          : `guarded form not cheaper: predicted fallback ${pct(fallbackRowRate(s))} of the calibration rows, ${fmt(guardedTime(k, s) * 1e3)} ms vs ${fmt(before.time * 1e3)} ms`;
  const heldOutText = (s: { fitBound: number; heldOut: number[] }) => {
    const c = confidenceOf(s);
    return `fit rows ${fmt(s.fitBound)}, held-out conformal quantile ${fmt(c.quantile)} (${c.samples} rows, alpha ${c.alpha})`;
  };
  // the wording of a decision whose form has global tokens read off the calibration data
  const tokensText = (f: AttentionSpec) =>
    chosenFromData(f) ? `global tokens ${globalTokensOf(f).join(', ')}, chosen from the calibration data; the guard checks every row` : undefined;
  const maskReason = (k: number, s: (typeof site)[number]) => {
    const g = guardText(k, s);
    const data = `bound on the calibration data ${fmt(s.bound)} (max dropped mass ${fmt(s.maxDroppedMass)})`;
    if (k === best) {
      return guardOf(k, s)
        ? `chosen: cheapest qualifying form, ${g}: error <= ${budget} on every input${tokensText(masks[k]!) ? ` (${tokensText(masks[k]!)})` : ''}`
        : `chosen: statistical, cheapest form with ${data} and ${heldOutText(s)} <= budget ${budget} (calibration data only)`;
    }
    return within(k, s) ? `qualifies (${guardOf(k, s) ? g : `statistical, ${data}`}) but ${cheaper()} is cheaper` : `${g}; ${data}`;
  };
  const lowRankReason = (k: number, s: (typeof site)[number]) =>
    !options.allowUncertified
      ? `measured error ${fmt(s.measuredError)}: no certificate (BOUNDS.md (c)): held on calibration data only, ${STATISTICAL_OFF}`
      : k === best
        ? `chosen: measured, not certified: cheapest form with measured error ${fmt(s.measuredError)}, ${heldOutText(s)} <= budget ${budget} on the calibration data`
        : statistical(k, s)
          ? `qualifies on measured error (${heldOutText(s)}) <= ${budget} (not certified) but ${cheaper()} is cheaper`
          : `measured error ${fmt(s.measuredError)}, ${heldOutText(s)}: over the budget ${budget} (not certified)`;
  const splitReason = (k: number) => {
    const gs = groupOf(k);
    const heads = gs.map((g) => headsText(g.heads)).join(', ');
    if (gs.length > 0) {
      const worst = Math.max(...gs.map((g) => (g.certified ? g.bound : g.measuredError)));
      const tokens = tokensText(masks[k]!);
      return `chosen for ${heads} (head groups): ${gs[0]!.guard ? `guarded, error <= ${budget} on every input` : `statistical: ${fmt(worst)} <= budget ${budget} on the calibration data`} on those heads${tokens ? ` (${tokens})` : ''}`;
    }
    return undefined;
  };
  const tried: TriedForm[] = pending.map((p) => {
    const k = evaluated.indexOf(p);
    const s = k >= 0 ? site[k]! : undefined;
    const certified = !isLowRank(p.form);
    const own = p.reason ?? (certified ? maskReason(k, s!) : lowRankReason(k, s!));
    const reason = split && k >= 0 ? (splitReason(k) ?? (k === best ? `qualifies for every head, but head groups are cheaper` : own)) : own;
    return {
      spec: printSpec(p.form),
      certified,
      guarantee: s ? (guardOf(k, s) ? 'guarded' : 'statistical') : null,
      fallbackRate: s && certified ? fallbackRowRate(s) : null,
      ...(k >= 0 && guardWhy[k] !== undefined && certified ? { guardReason: guardWhy[k]! } : {}),
      bound: s && certified ? s.bound : null,
      measuredError: s ? s.measuredError : null,
      measuredRows: s?.measuredRows ?? 0,
      rows: s?.rows ?? 0,
      maxDroppedMass: s && certified ? s.maxDroppedMass : null,
      flops: p.cost.flops,
      time: p.cost.time,
      accepted: k >= 0 && (split ? groupOf(k).length > 0 : k === best),
      reason,
    };
  });
  let perHeadDetails: HeadDetail[] | undefined;
  if (perHead) {
    perHeadDetails = headStats.map((stats, h) => {
      const ok = masks.map((_, k) => k).filter((k) => within(k, stats[k]!)).sort((a, b) => rank(evaluated[a]!.cost, evaluated[b]!.cost) || a - b);
      return ok.length > 0
        ? { head: h, best: printSpec(masks[ok[0]!]!), bound: stats[ok[0]!]!.bound }
        : { head: h, best: printSpec(baseline), bound: 0 };
    });
    if (split) {
      notes.push(
        `heads differ in their cheapest qualifying form: split into ${split.groups.length} head groups (${groupsText(split.groups)}), ` +
          `${fmt(split.time * 1e3)} ms (copies ${fmt(split.copyTime * 1e3)} ms included) vs ${fmt(uniformCost.time * 1e3)} ms for one spec for every head on ${target.name}`,
      );
    } else if (new Set(perHeadDetails.map((d) => d.best)).size > 1) {
      notes.push(
        !splitHeads
          ? 'heads differ in their cheapest qualifying form; head groups are off, so the chosen form is the cheapest that satisfies every head (per-head details recorded)'
          : planned === undefined
            ? 'heads differ in their cheapest qualifying form, but every key/value head (with its query heads) wants the same one: one spec for every head'
            : `heads differ in their cheapest qualifying form, but head groups (${groupsText(planned.groups)}) cost ${fmt(planned.time * 1e3)} ms ` +
              `(copies included) vs ${fmt(uniformCost.time * 1e3)} ms for one spec for every head: kept one spec`,
      );
    }
  }
  if (split) {
    for (const g of split.groups) if (tokensText(g.spec)) notes.push(`${headsText(g.heads)}: ${tokensText(g.spec)!}`);
    const decodeStep = decodeStepOf(groupForms(split.groups));
    const route = decodeRouteNote(split.groups);
    if (route) notes.push(route);
    if (decodeStep) notes.push(decodeStepNote(decodeStep));
    const certified = split.groups.every((g) => g.certified);
    const guarantee: Guarantee = !certified ? 'statistical' : split.groups.some((g) => g.guarantee === 'guarded') ? 'guarded' : 'exact';
    // the statistical groups' conformal statements (over their own heads' held-out rows); the weakest is the site's
    const groupConfidence = split.groups
      .filter((g) => !g.certified)
      .map((g) => {
        const k = masks.findIndex((f) => specEquals(f, g.spec));
        return confidenceOf({ heldOut: g.heads.flatMap((h) => headStats[perHead ? h : 0]![k]!.heldOut) });
      })
      .sort((a, b) => b.quantile - a.quantile)[0];
    if (!certified) {
      notes.push(
        `${split.groups.filter((g) => !g.certified).map((g) => `${headsText(g.heads)}: ${g.chosen}`).join(', ')} accepted on the calibration data alone ` +
          '(statistical tier: BOUNDS.md (c), (d); allowStatistical)',
      );
    }
    return {
      id: calibration.id,
      target: target.name,
      budget,
      before: printSpec(baseline),
      chosenSpec: baseline,
      chosen: groupsText(split.groups),
      exact: false,
      certified,
      guarantee,
      calibrationRows: site[0]?.rows ?? 0,
      ...(groupConfidence ? { confidence: groupConfidence } : {}),
      bound: Math.max(...split.groups.map((g) => g.bound)),
      measuredError: Math.max(...split.groups.map((g) => g.measuredError)),
      flopsBefore: before.flops,
      flopsAfter: split.flops,
      timeBefore: before.time,
      timeAfter: split.time,
      tried,
      ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
      groups: split.groups,
      ...(decodeStep ? { decodeStep } : {}),
      uniform:
        best === undefined
          ? { chosen: printSpec(baseline), bound: 0, flops: before.flops, time: before.time }
          : { chosen: printSpec(evaluated[best]!.form), bound: site[best]!.bound, flops: uniformCost.flops, time: uniformCost.time },
      notes,
    };
  }
  const lowRankNote = () =>
    lowK.length === 0
      ? ''
      : `; low-rank forms measured on the calibration data, the smallest error ${fmt(Math.min(...lowK.map((k) => site[k]!.measuredError)))}` +
        (options.allowUncertified ? '' : ` (${STATISTICAL_OFF})`);
  // why no guarded form was taken: too many rows would fall back, or those that fall back rarely cost more
  const guardedNotCheaper = (guardable: number[]) => {
    const few = guardable.filter((k) => fallbackRowRate(site[k]!) <= MAX_GUARDED_FALLBACK);
    return few.length === 0
      ? `the guarded forms would recompute too many rows (the fewest: ${pct(Math.min(...guardable.map((k) => fallbackRowRate(site[k]!))))} of the calibration rows)`
      : `the guarded forms that recompute few enough rows cost more than the site's own (the cheapest: ${fmt(Math.min(...few.map((k) => guardedTime(k, site[k]!))) * 1e3)} ms vs ${fmt(before.time * 1e3)} ms)`;
  };
  if (best === undefined) {
    const reasonDense =
      budget === 0
        ? 'budget 0 allows exact rewrites only, and the site already has its exact spec'
        : evaluated.length === 0
        ? unique.some((f, k) => !isLowRank(f) && !(costs[k]!.time < before.time))
          ? `no candidate is cheaper than ${printSpec(baseline)} on ${target.target}` +
            (decodeSteps > 0
              ? ` over one call of the calibration's shape and ${decodeSteps} decode steps`
              : target.execution === 'unfused'
                ? ' (only banded or block-gathered forms compute fewer than nq x nk scores there)'
                : '')
          : 'no mask-shaped candidate is cheaper'
        : maskK.length > 0
        ? `no cheaper form qualifies within the budget ${budget}: ` +
          (maskK.some((k) => guardWhy[k] === undefined)
            ? guardedNotCheaper(maskK.filter((k) => guardWhy[k] === undefined))
            : `no guarded form applies (${guardWhy[maskK[0]!]})`) +
          `; the tightest bound on the calibration data ${fmt(Math.min(...maskK.map((k) => site[k]!.bound)))}` +
          (options.allowUncertified ? '' : ` (${STATISTICAL_OFF})`) +
          lowRankNote()
        : `no cheaper mask-shaped form; ${options.allowUncertified ? `no low-rank form has a measured error within the budget ${budget}` : `low-rank forms hold on calibration data only, ${STATISTICAL_OFF}`}` +
          lowRankNote();
    return stay(reasonDense, tried, before, perHeadDetails);
  }
  const chosen = evaluated[best]!;
  const s = site[best]!;
  const guard = guardOf(best, s);
  const chosenCertified = guard !== undefined;
  if (tokensText(chosen.form)) notes.push(tokensText(chosen.form)!);
  const decodeStep = decodeStepOf([{ params, spec: chosen.form, ...(guard ? { guard } : {}) }]);
  const route = decodeRouteNote([{ spec: chosen.form, ...(guard ? { guard } : {}) }]);
  if (route) notes.push(route);
  if (decodeStep) notes.push(decodeStepNote(decodeStep));
  if (!chosenCertified) {
    notes.push(
      `${printSpec(chosen.form)} accepted on ${isLowRank(chosen.form) ? `measured error ${fmt(s.measuredError)}` : `the bound ${fmt(s.bound)}`} <= budget ${budget} ` +
        `on the calibration data alone (statistical tier, ${s.rows} rows; ${heldOutText(s)}: ` +
        `P(error of a new exchangeable row <= ${fmt(confidenceOf(s).quantile)}) >= ${1 - alpha}; BOUNDS.md (c), (d); allowStatistical)`,
    );
  }
  const cost = effective(best, s);
  return {
    id: calibration.id,
    target: target.name,
    budget,
    before: printSpec(baseline),
    chosenSpec: chosen.form,
    chosen: printSpec(chosen.form),
    exact: false,
    certified: chosenCertified,
    guarantee: guard ? 'guarded' : 'statistical',
    ...(guard ? { guard, fallbackRate: fallbackRowRate(s) } : {}),
    calibrationRows: s.rows,
    ...(guard ? {} : { confidence: confidenceOf(s) }),
    bound: guard ? budget : isLowRank(chosen.form) ? Infinity : s.bound,
    measuredError: s.measuredError,
    flopsBefore: before.flops,
    flopsAfter: cost.flops,
    timeBefore: before.time,
    timeAfter: cost.time,
    tried,
    ...(perHeadDetails ? { perHead: perHeadDetails } : {}),
    ...(decodeStep ? { decodeStep } : {}),
    notes,
  };
}
