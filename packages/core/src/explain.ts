// explain: what optimize does to each attention site and why, in sentences, from the records decide() keeps.

import type { AttentionGuard } from '@attnopt/ir';
import type { TriedForm } from '@attnopt/passes';
import { type DecideOptions, type DecideResult, decide, type SitePlan } from './decide.js';
import type { AttnoptModel } from './model.js';

/** What a guarded site's certificate reads: its key block summaries and how it takes the kept keys' log Z_S. */
function certificateParts(guard: AttentionGuard | undefined): string {
  const box = guard?.summaries === 'box' ? 'the key box per block alone (the ball certified no calibration row more)' : 'the key box and ball per block, the tighter';
  const logZ = guard?.logZ === 'max-logit' ? 'log Z_S from the largest kept logit (the log-sum-exp certified no calibration row more)' : "log Z_S the kept scores' log-sum-exp";
  return `the certificate: ${box} of ${guard?.blockSize ?? 64} keys, ${logZ}`;
}

/** One form sparsify tried, in words. */
export function describeTried(t: TriedForm): string {
  const f = (x: number | null) => (x === null ? 'n/a' : x.toPrecision(3));
  const error = t.certified
    ? `bound on the calibration data ${f(t.bound)}, measured ${f(t.measuredError)}${t.fallbackRate !== null ? `, guarded fallback ${(100 * t.fallbackRate).toPrecision(2)}% of rows` : ''}`
    : `low-rank, measured ${f(t.measuredError)} on the calibration data only`;
  return `${t.spec}: ${t.accepted ? `qualifies (${t.guarantee})` : 'rejected'} (${error}, flops ${f(t.flops)}, time ${f(t.time * 1e3)} ms): ${t.reason}`;
}

export interface SiteExplanation {
  readonly id: string;
  readonly node: string;
  readonly onnxNodes: readonly string[];
  /** True when the site computes a different spec than it was recognized with (exactly or within the budget). */
  readonly rewritten: boolean;
  /** True when what the site computes is exactly what the model computed. */
  readonly exact: boolean;
  /** exact, guarded (every input, checked at run time) or statistical (calibration data only). */
  readonly guarantee: SitePlan['guarantee'];
  readonly recognized: string;
  readonly proven: string;
  readonly chosen: string;
  /** The reasons, in order: recognition, mask analysis, the choice of form. */
  readonly why: readonly string[];
  /** Every form sparsify tried, in words (empty when it did not run). */
  readonly tried: readonly string[];
}

export interface Explanation {
  readonly budget: number;
  readonly target: string;
  readonly seqLen: number;
  readonly sites: readonly SiteExplanation[];
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : 'n/a');

function explainSite(plan: SitePlan, budget: number): SiteExplanation {
  const f = plan.facts;
  const d = plan.decision;
  const why: string[] = [];
  const lifted = f.rule === null ? 'an Attention node of the graph' : `lifted by the ${f.rule} rule from ${f.onnxNodes.length} ONNX node${f.onnxNodes.length === 1 ? '' : 's'}`;
  const size = f.headDim === 0 ? 'a size known only at run time' : `size ${f.headDim}`;
  why.push(`recognized as ${f.recognized} attention (${lifted}), ${f.heads} heads of ${size}${f.bias ? `, masked by ${f.bias}` : ''}`);
  if (f.bias === null) why.push(`no mask input: the op itself says which keys each query sees (${f.recognized})`);
  else if (f.proven && f.residualBias === null) why.push(`the mask analysis proved ${f.bias} keeps exactly ${f.spec}: bias dropped, spec ${f.spec} (exact, error 0)`);
  else if (f.proven && f.keyBias && f.spec === f.recognized) {
    why.push(`the mask ${f.bias} does not vary along the query axis: kept as the key bias ${f.residualBias}, one query row (exact, error 0)`);
  } else if (f.proven && f.keyBias) {
    why.push(`the mask analysis proved the structure ${f.spec} in ${f.bias}; its data-dependent part, read on the keys ${f.spec} keeps, is one query row: kept as the key bias ${f.residualBias} (exact, error 0)`);
  } else if (f.proven) why.push(`the mask analysis proved the structure ${f.spec} in ${f.bias} and kept its data-dependent part ${f.residualBias} as the bias (exact, error 0)`);
  else {
    const reason = f.notes.length > 0 ? f.notes.join('; ') : 'nothing in it could be proven structural';
    why.push(`kept the mask ${f.bias} as it is: ${reason}`);
  }
  if (f.unkeptRows !== null) why.push(f.unkeptRows);
  if (plan.skipped !== undefined) why.push(`kept ${plan.chosen}: ${plan.skipped}`);
  else if (d !== undefined && d.reasonDense !== undefined) why.push(`kept ${d.chosen}: ${d.reasonDense}`);
  else if (d !== undefined) {
    const certificate =
      d.guarantee === 'guarded'
        ? `guarded: error <= ${budget} on every input, checked at run time per query row (rows whose certificate exceeds it are recomputed densely; predicted on the calibration data: ${fmt(100 * (d.fallbackRate ?? 0))}% of rows; ${certificateParts(d.guard)}); measured ${fmt(d.measuredError)} on the calibration data`
        : d.guarantee === 'exact'
          ? 'exact'
          : `statistical: ${Number.isFinite(d.bound) ? `bound ${fmt(d.bound)}` : `measured error ${fmt(d.measuredError)}`} <= budget ${budget} on ${d.calibrationRows ?? 0} calibration rows only, no guarantee on other inputs` +
            (d.confidence ? `; conformal: P(error of a new row exchangeable with the ${d.confidence.samples} held-out rows <= ${fmt(d.confidence.quantile)}) >= ${1 - d.confidence.alpha}` : '');
    why.push(
      `rewritten ${d.before} -> ${d.chosen}: the cheapest form within the budget on ${d.target} (${certificate}; ` +
        `flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}, time ${fmt(d.timeBefore * 1e3)} -> ${fmt(d.timeAfter * 1e3)} ms)`,
    );
  }
  for (const g of plan.groups ?? []) {
    const heads = g.heads.length === 1 ? `head ${g.heads[0]}` : `heads ${g.heads[0]}-${g.heads.at(-1)}`;
    const guarded = g.guarantee === 'guarded' ? `, predicted fallback ${fmt(100 * (g.fallbackRate ?? 0))}% of rows; ${certificateParts(g.guard)}` : '';
    const error = g.exact ? 'exact' : `${g.guarantee}, bound ${fmt(g.bound)}, measured ${fmt(g.measuredError ?? NaN)}${guarded}`;
    why.push(`${g.id}: ${heads} compute ${g.chosen} (${error}; flops ${fmt(g.flops)})`);
  }
  for (const n of d?.notes ?? []) why.push(n);
  return {
    id: plan.id,
    node: f.node,
    onnxNodes: f.onnxNodes,
    rewritten: plan.chosen !== f.recognized || f.proven,
    exact: plan.exact,
    guarantee: plan.guarantee,
    recognized: f.recognized,
    proven: f.spec,
    chosen: plan.chosen,
    why,
    tried: (d?.tried ?? []).map(describeTried),
  };
}

/** Why each site of a decide() result was or was not rewritten, in words. */
export function explainDecisions(result: DecideResult): Explanation {
  return {
    budget: result.budget,
    target: result.target,
    seqLen: result.seqLen,
    sites: result.sites.map((s) => explainSite(s, result.budget)),
  };
}

/** decide() then explainDecisions(): what optimize would do to each site of `model`, and why. */
export async function explain(model: AttnoptModel, options: DecideOptions = {}): Promise<Explanation> {
  return explainDecisions(await decide(model, options));
}

