// The compile pipeline: one flat list of passes, run in order by @attnopt/rewrite's pass manager over a shared
// state (pipeline/state.ts). Each pass has a name and a progress label; the IR verifier checks the graph before
// the first pass and after every pass when asked (`verifyEach`, `--verify-each`; always in the test suite).
// `analyze` runs the first two passes, `decide` the prefix through sparsify, `optimize` all of them.

import { passesThrough, type PipelineResult, runPasses, runPassesSync, stageLabels, type StatePass } from '@attnopt/rewrite';
import { analyzeMasks } from './pipeline/analyze-masks.js';
import { calibrate } from './pipeline/calibrate.js';
import { lower } from './pipeline/lower.js';
import { prune } from './pipeline/prune.js';
import { recognizeAttention } from './pipeline/recognize.js';
import { restoreUnchanged } from './pipeline/restore.js';
import { sparsify } from './pipeline/sparsify.js';
import type { AnalysisState, CompileState } from './pipeline/state.js';

/** Recognition and the mask analysis: exact, and all that `analyze` (and `attnopt inspect`) runs. */
const ANALYSIS: readonly StatePass<AnalysisState>[] = [
  // ONNX attention subgraphs and fused ops -> Attention nodes that remember the ONNX nodes they came from
  recognizeAttention,
  // Attention(bias = M) -> Attention(spec ∩ P) where M provably keeps exactly P (error 0)
  analyzeMasks,
];

export const COMPILE_PIPELINE: readonly StatePass<CompileState>[] = [
  ...ANALYSIS,
  // run the model on calibration inputs: Q, K, V of every site (budget > 0 only)
  calibrate,
  // per site the cheapest form within the budget, exact, guarded or statistical (on onnxruntime, each rewrite
  // timed against the site as written and kept only where it runs faster)
  sparsify,
  // record the plans; sites that gain nothing -> the ONNX nodes they were lifted from
  restoreUnchanged,
  // every Attention node left -> standard ONNX ops
  lower,
  // nodes the rewrites left unread -> gone (those the model as read held stay)
  prune,
];

/** decide() is the pipeline through this pass: the choices, every site still an Attention node. */
const DECIDED = 'sparsify';

/** The stages decide() and optimize() announce through onStage, in order (calibrate and sparsify only with a budget > 0). */
export const DECIDE_STAGES = stageLabels(passesThrough(COMPILE_PIPELINE, DECIDED));
export const OPTIMIZE_STAGES = stageLabels(COMPILE_PIPELINE);

/** The verifier's default: on where ATTNOPT_VERIFY_EACH=1 (the test suite sets it), else off. */
export function verifyEachByDefault(): boolean {
  return globalThis.process?.env?.['ATTNOPT_VERIFY_EACH'] === '1';
}

export function runAnalysis(state: AnalysisState, verifyEach?: boolean): PipelineResult {
  return runPassesSync(state, ANALYSIS, { verify: verifyEach ?? verifyEachByDefault() });
}

/** Runs the pipeline on `state` (its graph changes in place), through sparsify when `decideOnly`. */
export function runCompile(state: CompileState, decideOnly: boolean): Promise<PipelineResult> {
  const { verifyEach, onStage } = state.options;
  return runPasses(state, COMPILE_PIPELINE, { verify: verifyEach ?? verifyEachByDefault(), ...(decideOnly ? { until: DECIDED } : {}), ...(onStage ? { onStage } : {}) });
}
