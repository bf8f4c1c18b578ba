// buildReport: everything the HTML report shows, as plain data. From the original model it
//   1. takes optimize's result at the chosen budget (given, or computed here): the per-site table rows;
//   2. recognizes and analyzes a fresh copy, collects each site's calibration Q/K/V, and re-runs sparsify's
//      choice on it (deterministic: the same forms optimize tried), draws each head's attention mass and the
//      chosen spec's keep-pattern, binned;
//   3. asks the cost model for each site's cost over sequence length;
//   4. optimizes a fresh copy at every budget of the trade-off curve and verifies it against the original.

import {
  type AttentionParams,
  type AttentionSpec,
  attentionParams,
  isDataDependent,
  isLowRank,
  type MaskSpec,
  printSpec,
} from '@attnopt/ir';
import { analyzeMaskPass, attentionSites, chooseSiteSpec, headData, headResolver } from '@attnopt/passes';
import { runPipeline } from '@attnopt/rewrite';
import { verifyEachByDefault } from '../pipeline.js';
import { type CalibrationSample, collectSiteTensors, generateInputs, type SiteSamples } from '../calibrate/index.js';
import { inspectModel, type InspectSite } from '../inspect.js';
import { type AttnoptModel, loadModel, saveModel } from '../model.js';
import { type DecideOptions, targetProfile } from '../decide.js';
import { CERTIFIED_METADATA, optimize, type OptimizedSite, type OptimizeResult } from '../optimize.js';
import { chosenGroups, type HeadGroupSpec, specOfHead } from './chosen-specs.js';
import { DEFAULT_CURVE_LENGTHS, modelCostCurve, siteCostCurve } from './cost-curve.js';
import { keepPattern, MassAccumulator } from './heatmap.js';
import {
  finiteOrNull,
  type ReportData,
  type ReportHeatmaps,
  type ReportRow,
  type ReportSite,
  type ReportTradeoffPoint,
  type ReportTriedForm,
} from './report-data.js';
import { sampleForPasses, siteCalibration } from '../calibrate/site-calibration.js';
import { DEFAULT_BUDGETS, tradeoffPoint } from './tradeoff.js';
import { maxOf } from '../extremes.js';
import { CALIBRATION_SAMPLES } from '../run-memory.js';

/**
 * decide's options (maxError, samples, seqLen, calibrationCount, seed, target, runtime, measure), then the report's own.
 * Samples: an empty list also gets generated inputs (the heatmaps need some). The verify inputs of the
 * trade-off curve use seed + 1 (held out from calibration).
 */
export interface ReportOptions extends Omit<DecideOptions, 'onStage'> {
  /**
   * optimize's result for this model at maxError with these options (e.g. the one the CLI wrote), so the
   * model is not optimized twice. Its rows are shown as they are.
   */
  readonly optimized?: OptimizeResult;
  /** Budgets of the trade-off curve (default 0, 1e-3, 1e-2, 5e-2, 1e-1; maxError is always added). */
  readonly budgets?: readonly number[];
  /** Inputs verify runs both models on (default: one generated sample, seed + 1: held out from calibration). */
  readonly verifySamples?: readonly CalibrationSample[];
  /** Bins per axis of the heatmaps (default 48; fewer when the sequence is shorter). */
  readonly bins?: number;
  /** Heads per site drawn (default 16). */
  readonly maxHeads?: number;
  /** Query rows per head scored for the attention mass (default 512: every row up to that length). */
  readonly maxMassRows?: number;
  /** Sequence lengths of the cost curves (default 256 ... 16384). */
  readonly curveLengths?: readonly number[];
  /** Called as each stage starts. */
  readonly onProgress?: (stage: string) => void;
}


async function materialize(samples: ReportOptions['samples']): Promise<CalibrationSample[] | undefined> {
  if (samples === undefined) return undefined;
  const out: CalibrationSample[] = [];
  for await (const s of samples) out.push(s);
  return out;
}

/** A site row exactly as `optimize --json` prints it (JSON.stringify turns NaN and infinities into null). */
const rowOf = (s: OptimizedSite): ReportRow => JSON.parse(JSON.stringify(s)) as ReportRow;

/** Up to 4 significant digits: the heatmaps are pictures, not figures. */
const round4 = (xs: readonly number[]): number[] => xs.map((x) => (x === 0 ? 0 : Number(x.toPrecision(4))));

function triedForms(decision: ReturnType<typeof chooseSiteSpec>): ReportTriedForm[] {
  return decision.tried.map((t) => ({
    spec: t.spec,
    certified: t.certified,
    bound: finiteOrNull(t.bound),
    measuredError: finiteOrNull(t.measuredError),
    maxDroppedMass: finiteOrNull(t.maxDroppedMass),
    flops: finiteOrNull(t.flops),
    time: finiteOrNull(t.time),
    accepted: t.accepted,
    reason: t.reason,
  }));
}

interface HeatmapOptions {
  readonly bins: number;
  readonly maxHeads: number;
  readonly maxMassRows: number;
}

/** The attention mass of each shown head (over every sample and batch entry) and the chosen keep-pattern. */
function siteHeatmaps(site: SiteSamples, chosen: readonly HeadGroupSpec[] | undefined, o: HeatmapOptions): ReportHeatmaps | { skipped: string } {
  const params: AttentionParams = site.params;
  if (site.samples.length === 0) return { skipped: site.skipped ?? 'no calibration samples reached this site' };
  if (isLowRank(params.spec)) return { skipped: `the site computes a low-rank form (${params.spec.kind}): it has no softmax to draw` };
  const first = site.samples[0]!;
  if (first.dims.past > 0) return { skipped: 'the site reads cached keys (past K/V): heatmaps are drawn for self-attention calls only' };
  const spec = params.spec as MaskSpec;
  const { nq, nk } = first.dims;
  const rows = Math.min(o.bins, nq);
  const cols = Math.min(o.bins, nk);
  const rowStride = Math.max(1, Math.ceil(nq / o.maxMassRows));
  const shown = Math.min(params.numHeads, o.maxHeads);
  const mass = Array.from({ length: shown }, () => new MassAccumulator(nq, nk, rows, cols, rowStride));
  let averagedOver = 0;
  for (const sample of site.samples) {
    if (sample.dims.nq !== nq || sample.dims.nk !== nk) continue; // maps of one size: samples of another length are left out
    const forPasses = sampleForPasses(sample);
    for (let b = 0; b < sample.dims.batch; b++) {
      averagedOver++;
      for (let h = 0; h < shown; h++) {
        const head = headData(params, forPasses, b, h);
        mass[h]!.add(head, spec, isDataDependent(spec) ? headResolver(head) : undefined);
      }
    }
  }
  const dims = { nq, nk };
  const firstForPasses = sampleForPasses(first);
  const keepOf = (form: AttentionSpec | undefined, h: number): number[] | null => {
    if (form === undefined || isLowRank(form)) return null;
    const resolve = isDataDependent(form) ? headResolver(headData(params, firstForPasses, 0, h)) : undefined;
    return round4(keepPattern(form, dims, rows, cols, resolve));
  };
  let keep: (number[] | null)[] | null = null;
  if (chosen !== undefined) {
    const shared = chosen.length === 1 && !isDataDependent(chosen[0]!.spec);
    keep = shared ? [keepOf(chosen[0]!.spec, 0)] : Array.from({ length: shown }, (_, h) => keepOf(specOfHead(chosen, h), h));
  }
  const lowRank = chosen?.filter((g) => isLowRank(g.spec)).map((g) => g.spec.kind) ?? [];
  return {
    nq,
    nk,
    rows,
    cols,
    rowStride,
    averagedOver,
    heads: mass.map((m, h) => ({ head: h, mass: round4(m.mean()) })),
    keep,
    headsOmitted: params.numHeads - shown,
    ...(chosen === undefined
      ? { note: 'the chosen form could not be read back, so no keep-pattern is drawn' }
      : lowRank.length > 0
        ? { note: `the chosen ${[...new Set(lowRank)].join(', ')} form is low-rank: every pair is approximated, no key set is kept` }
        : {}),
  };
}

/**
 * Builds the report of `model`, the ORIGINAL model (not one optimize has rewritten; pass that one's result
 * as options.optimized). `model` itself is not modified: every step works on a fresh copy.
 */
export async function buildReport(model: AttnoptModel, options: ReportOptions = {}): Promise<ReportData> {
  if (model.proto.metadataProps?.some((e) => e.key === CERTIFIED_METADATA)) {
    throw new Error(`${model.file ?? 'model'}: this model was already optimized; build the report from the original model`);
  }
  const maxError = options.maxError ?? 1e-2;
  const seqLen = options.seqLen ?? 128;
  const seed = options.seed ?? 0;
  const calibrationCount = options.calibrationCount ?? CALIBRATION_SAMPLES;
  const profile = targetProfile(options.target);
  const progress = options.onProgress ?? (() => {});
  const source: string | Uint8Array = model.file ?? saveModel(model);
  const fresh = (): AttnoptModel => loadModel(source);

  // an empty list (what a CLI passes when it needs no calibration) gets generated inputs: the heatmaps need some
  const given = await materialize(options.samples);
  const calibration = given !== undefined && given.length > 0 ? given : generateInputs(model, { seqLen, seed, count: calibrationCount });
  const optimizeAt = (budget: number): Promise<OptimizeResult> =>
    optimize(fresh(), {
      maxError: budget,
      samples: calibration,
      seqLen,
      seed,
      target: profile,
      calibrationCount,
      runtime: options.runtime ?? 'onnxruntime',
      ...(options.allowStatistical === true ? { allowStatistical: true } : {}),
      ...(options.samplesFrom !== undefined ? { samplesFrom: options.samplesFrom } : {}),
      ...(options.measure !== undefined ? { measure: options.measure } : {}),
      onStage: (s) => progress(`optimize (max error ${budget}): ${s}`),
    });
  const main = options.optimized ?? (await optimizeAt(maxError));

  // what recognition found, then what analysis proved: a copy optimize never touched
  progress('inspect');
  const analyzed = fresh();
  const found = new Map<string, InspectSite>(inspectModel(analyzed).sites.map((s) => [s.id, s]));
  const recognizedParams = new Map(attentionSites(analyzed.graph).map(({ id, node }) => [id, attentionParams(node)]));
  runPipeline(analyzed.graph, [analyzeMaskPass()], { verify: options.verifyEach ?? verifyEachByDefault() });
  progress('calibrate (heatmaps)');
  const collected = new Map((await collectSiteTensors(analyzed, calibration, { runtime: options.runtime ?? 'onnxruntime', outputs: false })).map((s) => [s.id, s]));

  const heatmapOptions: HeatmapOptions = { bins: options.bins ?? 48, maxHeads: options.maxHeads ?? 16, maxMassRows: options.maxMassRows ?? 512 };
  const lengths = options.curveLengths ?? DEFAULT_CURVE_LENGTHS;
  const sites: ReportSite[] = main.sites.map((s, k): ReportSite => {
    progress(`site ${k + 1} of ${main.sites.length}: ${s.id}`);
    const f = found.get(s.id);
    const params = recognizedParams.get(s.id);
    const samples = collected.get(s.id);
    if (f === undefined || params === undefined || samples === undefined) {
      return {
        row: rowOf(s),
        found: null,
        tried: [],
        heatmaps: null,
        costCurve: { n: [...lengths], series: [] },
        skipped: `a fresh recognition of the model has no ${s.id}`,
      };
    }
    const chosen = chosenGroups(s.chosen, params.numHeads);
    const decision = maxError > 0 && samples.samples.length > 0 ? chooseSiteSpec(samples.params, siteCalibration(samples), { budget: maxError, target: profile, seed, allowUncertified: options.allowStatistical === true }) : undefined;
    const maps = siteHeatmaps(samples, chosen, heatmapOptions);
    return {
      row: rowOf(s),
      found: {
        heads: f.heads,
        kvHeads: f.kvHeads,
        headDim: f.headDim,
        scale: f.scale,
        mask: f.mask,
        proven: printSpec(samples.params.spec),
        onnxNodes: f.onnxNodes,
        bias: f.bias,
      },
      tried: decision ? triedForms(decision) : [],
      heatmaps: 'skipped' in maps ? null : maps,
      costCurve: siteCostCurve(params, params.spec, chosen, lengths, profile),
      ...('skipped' in maps ? { skipped: maps.skipped } : {}),
    };
  });

  const budgets = [...new Set([...(options.budgets ?? DEFAULT_BUDGETS), maxError])].sort((a, b) => a - b);
  const verifySamples = options.verifySamples ?? generateInputs(model, { seqLen, seed: seed + 1, count: 1 });
  const tradeoff: ReportTradeoffPoint[] = [];
  for (const budget of budgets) {
    const result = budget === maxError ? main : await optimizeAt(budget);
    progress(`verify (max error ${budget})`);
    tradeoff.push(await tradeoffPoint(budget, source, result, verifySamples, options.runtime ?? 'onnxruntime'));
  }

  const known = main.sites.filter((s) => Number.isFinite(s.flopsBefore) && Number.isFinite(s.flopsAfter));
  const bounds = main.sites.map((s) => s.bound).filter(Number.isFinite);
  return {
    format: 'attnopt-report/1',
    model: model.file ?? '<bytes>',
    options: {
      maxError,
      seqLen,
      seed,
      target: profile.name,
      calibrationSamples: calibration.length,
      verifySamples: verifySamples.length,
    },
    summary: {
      sites: main.sites.length,
      sitesChanged: main.sites.filter((s) => !s.exact).length,
      flopsBefore: known.length ? known.reduce((a, s) => a + s.flopsBefore, 0) : null,
      flopsAfter: known.length ? known.reduce((a, s) => a + s.flopsAfter, 0) : null,
      largestBound: bounds.length ? maxOf(bounds) : null,
    },
    sites,
    costCurve: modelCostCurve(
      sites.map((s) => s.costCurve).filter((c) => c.series.length > 0),
      lengths,
    ),
    tradeoff,
    notes: main.notes.map((n) => `${n.pass}: ${n.message}`),
  };
}
