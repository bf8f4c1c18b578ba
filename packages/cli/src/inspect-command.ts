// attnopt inspect MODEL: every attention site of a model, what recognition found and what the mask analysis
// proved (exact); every Softmax that looks like attention but was not lifted, with the rule's reason (and why
// there is no site when there is none); with --decisions (or any calibration option) also what sparsify would
// choose per site: every form tried with its bound, measured error and cost. Nothing is written.

import { type Command } from 'commander';
import { type AttentionMiss, analyze, type DecideResult, type MeasuredTime, modelOpset, noSitesReason, type SiteFacts, type SitePlan, watchMisses } from '@attnopt/core';
import { headRoleLabel, modelHeadRoles, type SiteHeadRoles } from '@attnopt/core';
import { decideOrFail, DECIDE_STAGES } from './decide.js';
import { loadModelOrFail } from './load.js';
import { addDecisionOptions, type DecisionFlags } from './options.js';
import { printJson, printResult } from './print.js';
import { withProgress } from './progress.js';
import { samplesFor } from './samples.js';

interface InspectFlags extends DecisionFlags {
  decisions?: boolean;
  json?: boolean;
}

/** One site as `inspect --json` prints it (the first eight fields are those of earlier versions). */
export interface InspectSiteJson {
  id: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  /** The spec as recognized. */
  mask: string;
  onnxNodes: readonly string[];
  bias: string | null;
  vHeadDim: number;
  softcap: number;
  layout: string;
  dtype: string;
  shapes: SiteFacts['shapes'];
  rule: string | null;
  /** The spec after the mask analysis and whether the analysis changed it (exact). */
  spec: string;
  proven: boolean;
  residualBias: string | null;
  /** The residual bias is one query row ([.., 1, T]): a key bias. */
  keyBias: boolean;
  /** The residual bias is a function of j - i (a relative-position bias), read on the band's offsets. */
  relativeBias: boolean;
  /** What a row whose kept keys are all masked computes (the mask analysis's words), or null. */
  unkeptRows: string | null;
  keptFraction: number | null;
  analysis: readonly string[];
  decision?: DecisionJson;
  /** What each head does on the calibration data (with --decisions and a budget > 0). */
  headRoles?: { head: number; role: string; label: string; why: string; reach: number; halfReach: number; sinkMass: number; diagonalOffset: number; diagonalMass: number; globalMass: number; entropy: number }[];
}

interface DecisionJson {
  chosen: string;
  exact: boolean;
  certified: boolean;
  /** exact, guarded (the bound holds on every input, checked at run time) or statistical (calibration data only). */
  guarantee: 'exact' | 'guarded' | 'statistical';
  /** Guarded sites: predicted fraction of rows recomputed densely (from the calibration data). */
  fallbackRate?: number;
  bound: number | null;
  measuredError: number | null;
  flopsBefore: number;
  flopsAfter: number;
  timeBefore: number | null;
  timeAfter: number | null;
  reason?: string;
  /** The chosen form timed against the site as written (optimize's measurement), when it was. */
  measuredTime?: MeasuredTime;
  /** Present when the site is split into head groups: each group's heads and spec. */
  groups?: { id: string; heads: readonly number[]; kvHeads: readonly number[]; chosen: string; exact: boolean; bound: number | null; measuredError: number | null; flops: number }[];
  tried: readonly unknown[];
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

function siteJson(f: SiteFacts, plan?: SitePlan, roles?: SiteHeadRoles): InspectSiteJson {
  const base: InspectSiteJson = {
    id: f.id,
    heads: f.heads,
    kvHeads: f.kvHeads,
    headDim: f.headDim,
    scale: f.scale,
    mask: f.recognized,
    onnxNodes: f.onnxNodes,
    bias: f.bias,
    vHeadDim: f.vHeadDim,
    softcap: f.softcap,
    layout: f.layout,
    dtype: f.dtype,
    shapes: f.shapes,
    rule: f.rule,
    spec: f.spec,
    proven: f.proven,
    residualBias: f.residualBias,
    keyBias: f.keyBias,
    relativeBias: f.relativeBias,
    unkeptRows: f.unkeptRows,
    keptFraction: f.keptFraction,
    analysis: f.notes,
  };
  if (!plan) return base;
  const headRoles = roles?.heads.map((r) => ({ head: r.head, role: r.role, label: headRoleLabel(r), why: r.why, reach: r.stats.reach, halfReach: r.stats.halfReach, sinkMass: r.stats.sinkMass, diagonalOffset: r.stats.diagonalOffset, diagonalMass: r.stats.diagonalMass, globalMass: r.stats.globalMass, entropy: r.stats.entropy }));
  const d = plan.decision;
  const groups = plan.groups?.map((g) => ({
    id: g.id,
    heads: g.heads,
    kvHeads: g.kvHeads,
    chosen: g.chosen,
    exact: g.exact,
    bound: finiteOrNull(g.bound),
    measuredError: g.measuredError,
    flops: g.flops,
  }));
  return {
    ...base,
    decision: {
      chosen: plan.chosen,
      exact: plan.exact,
      certified: d?.certified ?? true,
      guarantee: plan.guarantee,
      ...(plan.fallbackRate !== undefined ? { fallbackRate: plan.fallbackRate } : {}),
      bound: finiteOrNull(plan.bound),
      measuredError: plan.measuredError,
      flopsBefore: plan.flopsBefore,
      flopsAfter: plan.flopsAfter,
      timeBefore: d ? d.timeBefore : null,
      timeAfter: d ? d.timeAfter : null,
      ...(plan.reason !== undefined ? { reason: plan.reason } : {}),
      ...(d?.measuredTime !== undefined ? { measuredTime: d.measuredTime } : {}),
      ...(groups !== undefined ? { groups } : {}),
      tried: d?.tried ?? [],
    },
    ...(headRoles !== undefined ? { headRoles } : {}),
  };
}

const fmt = (x: number | null) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toPrecision(3));

function abbreviate(names: readonly string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 2).join(', ')}, ... ${names[names.length - 1]}`;
}

function siteLines(s: InspectSiteJson, seqLen: number): string[] {
  const heads = s.kvHeads === s.heads ? `heads=${s.heads}` : `heads=${s.heads} kvHeads=${s.kvHeads}`;
  const lines = [
    `  ${s.id}  ${heads} headDim=${s.headDim === 0 ? '(known at run time)' : s.headDim} scale=${Number(s.scale.toPrecision(6))} mask=${s.mask}` +
      (s.bias === null ? '' : ` bias=${s.bias}`) +
      `  [${s.onnxNodes.length} ONNX node${s.onnxNodes.length === 1 ? '' : 's'}: ${abbreviate(s.onnxNodes)}]`,
  ];
  const kept = s.keptFraction === null ? '' : `, keeps ${(100 * s.keptFraction).toFixed(1)}% of pairs at n=${seqLen}`;
  if (s.bias === null) lines.push(`      keys: ${s.spec} (from the op itself, no mask input)${kept}`);
  else if (s.proven) {
    const residual = s.residualBias === null ? ', bias dropped' : `; ${s.residualBias} kept as ${s.keyBias ? 'key bias (one query row)' : s.relativeBias ? 'relative-position bias (a function of j - i)' : 'bias'}`;
    lines.push(`      keys: ${s.spec} (${s.spec === s.mask ? `from ${s.bias}` : `proven from ${s.bias}`}, exact${residual})${kept}`);
    if (s.unkeptRows !== null) lines.push(`      ${s.unkeptRows}`);
  }
  else lines.push(`      keys: ${s.spec}${kept}; mask ${s.bias} kept as bias${s.analysis.length ? ` (${s.analysis[s.analysis.length - 1]})` : ''}`);
  const d = s.decision;
  if (d) {
    const what = d.exact
      ? 'exact'
      : `${d.guarantee}, bound ${fmt(d.bound)}${d.fallbackRate !== undefined ? `, predicted fallback ${fmt(100 * d.fallbackRate)}% of rows` : ''}, measured ${fmt(d.measuredError)}`;
    lines.push(`      chosen: ${d.chosen} [${what}] flops ${fmt(d.flopsBefore)} -> ${fmt(d.flopsAfter)}${d.reason ? ` (${d.reason})` : ''}`);
    const t = d.measuredTime;
    if (t && !d.reason) lines.push(`      timed: ${fmt(t.chosenSeconds * 1e3)} ms chosen against ${fmt(t.writtenSeconds * 1e3)} ms as written (${t.runtime}, medians of ${t.rounds} rounds)`);
    for (const g of d.groups ?? []) {
      const gw = g.exact ? 'exact' : `bound ${fmt(g.bound)}, measured ${fmt(g.measuredError)}`;
      lines.push(`        ${g.id}: heads ${g.heads.join(',')}  ${g.chosen} [${gw}] flops ${fmt(g.flops)}`);
    }
    // what each head does, one line per head group (the whole site when it is not split)
    const roleOf = (heads: readonly number[]) => heads.map((h) => `h${h} ${s.headRoles!.find((r) => r.head === h)?.label ?? 'not classified'}`).join(', ');
    if (s.headRoles) for (const g of d.groups ?? [{ id: 'heads', heads: s.headRoles.map((r) => r.head) }]) lines.push(`      roles ${g.id}: ${roleOf(g.heads)}`);
    if (d.tried.length > 0) {
      const tried = d.tried as { spec: string; accepted: boolean; bound: number | null; measuredError: number | null; flops: number; time: number; reason: string }[];
      const w = tried.reduce((m, t) => Math.max(m, t.spec.length), 4);
      lines.push(`      tried:  ${'form'.padEnd(w)} ${'verdict'.padEnd(9)} ${'bound'.padStart(9)} ${'measured'.padStart(9)} ${'flops'.padStart(9)} ${'ms'.padStart(8)}  why`);
      for (const t of tried) {
        lines.push(
          `              ${t.spec.padEnd(w)} ${(t.accepted ? 'qualifies' : 'rejected').padEnd(9)} ${fmt(t.bound).padStart(9)} ${fmt(t.measuredError).padStart(9)} ` +
            `${fmt(t.flops).padStart(9)} ${fmt(t.time * 1e3).padStart(8)}  ${t.reason}`,
        );
      }
    }
  }
  return lines;
}

/** What `inspect --json` prints. */
export interface InspectJson {
  model: string;
  sites: InspectSiteJson[];
  /** Softmax nodes that look like attention (softmax -> layout-only ops -> MatMul / Einsum with values) and fused attention ops, not lifted. */
  misses: AttentionMiss[];
  /** Why there is no attention site, when there is none; else null. */
  noSites: string | null;
  decisions?: { budget: number; target: string; seqLen: number };
}

export function formatInspect(report: InspectJson, seqLen = 128): string {
  const n = report.sites.length;
  const head = `${report.model}: ${n} attention site${n === 1 ? '' : 's'}${n === 0 && report.noSites ? `: ${report.noSites}` : ''}`;
  const d = report.decisions;
  const lines = [d ? `${head} (decisions for max error ${d.budget} on ${d.target}, n=${d.seqLen})` : head];
  for (const s of report.sites) for (const line of siteLines(s, d?.seqLen ?? seqLen)) lines.push(line);
  const m = report.misses.length;
  if (m > 0) {
    lines.push(`  not lifted: ${m} node${m === 1 ? '' : 's'} that look${m === 1 ? 's' : ''} like attention`);
    for (const miss of report.misses) lines.push(`    ${miss.node}: ${miss.reason}`);
  }
  return lines.join('\n');
}

function decisionsAsked(command: Command, flags: InspectFlags): boolean {
  return flags.decisions === true || ['maxError', 'seqLen', 'calibration', 'seed', 'target'].some((k) => command.getOptionValueSource(k) === 'cli');
}

export function registerInspect(program: Command): void {
  const command = program
    .command('inspect')
    .description('find every attention site of an ONNX model: heads, head size, scale, mask, and what the mask provably keeps')
    .argument('<model>', 'the ONNX model file (external data is read from beside it)');
  command.option('--decisions', 'also calibrate and show what optimize would choose per site: every form tried, its bound, measured error and cost (implied by any option below)');
  addDecisionOptions(command, true)
    .option('--json', 'print one JSON object: { model, sites: [{ id, heads, kvHeads, headDim, scale, mask, onnxNodes, bias, spec, proven, analysis, ..., decision? }], misses: [{ node, reason }], noSites, decisions? }')
    .addHelpText(
      'after',
      '\nExamples:\n  $ attnopt inspect model.onnx\n  $ attnopt inspect model.onnx --json | jq .sites[0]\n  $ attnopt inspect model.onnx --seq-len 1024 --target attnopt-cpu    # what sparsify would choose, and why',
    )
    .action(async (modelPath: string, flags: InspectFlags, cmd: Command) => {
      const model = loadModelOrFail(modelPath);
      const watch = watchMisses(model.graph, modelOpset(model));
      let report: InspectJson;
      if (decisionsAsked(cmd, flags)) {
        const result: DecideResult = await withProgress('inspect', DECIDE_STAGES, (p) => decideOrFail(model, modelPath, flags, flags.target ?? 'onnxruntime-cpu', p));
        const misses = watch.misses(result.notes);
        const roles = flags.maxError > 0 ? await modelHeadRoles(loadModelOrFail(modelPath), samplesFor(model, flags.calibration, flags.seqLen, flags.seed, 2, flags.dim), { runtime: flags.runtime }) : [];
        report = {
          model: modelPath,
          sites: result.sites.map((plan) => siteJson(plan.facts, plan, roles.find((r) => r.id === plan.id))),
          misses,
          noSites: result.sites.length === 0 ? noSitesReason(watch, misses) : null,
          decisions: { budget: result.budget, target: result.target, seqLen: result.seqLen },
        };
      } else {
        const result = analyze(model.graph, { seqLen: flags.seqLen, ...(flags.verifyEach === true ? { verifyEach: true } : {}) });
        const misses = watch.misses(result.notes);
        report = { model: modelPath, sites: result.sites.map((f) => siteJson(f)), misses, noSites: result.sites.length === 0 ? noSitesReason(watch, misses) : null };
      }
      if (flags.json) printJson(report);
      else printResult(formatInspect(report, flags.seqLen));
    });
}

