// The pass manager: a flat list of passes over a compilation state (the graph and what earlier passes recorded),
// run in order, asynchronously where a pass needs it (calibration runs the model), with the IR verifier on the
// graph before the first pass and after every pass that ran, when asked. A pass has a name (notes, errors and
// `until` use it) and a label (what a progress display shows; the passes of one stage share it).
// A rule the input graph already breaks is not held against the passes: ONNX files whose nodes are not in
// topological order are common and run, and the passes must keep the rules the input kept.

import { type Graph, verifyGraph, type VerifyIssue } from '@attnopt/ir';
import type { PassNote, PassResult, PipelineResult } from './pass.js';

/** One pass of a pipeline over a state that holds the graph and whatever the passes hand each other. */
export interface StatePass<S extends { readonly graph: Graph }> {
  readonly name: string;
  readonly label: string;
  /** False when the pass has nothing to do on this state (it is then neither run nor reported). */
  applies?(state: S): boolean;
  run(state: S): PassResult | Promise<PassResult>;
}

export interface PassManagerOptions {
  /**
   * Run the IR verifier before the first pass and after every pass that ran (default true); a pass may not leave an
   * issue of a rule the input graph kept.
   */
  readonly verify?: boolean;
  /** Stop after the pass of this name (a prefix of the pipeline). */
  readonly until?: string;
  /** Called when a pass starts whose label is not the label of the pass that ran before it (progress). */
  readonly onStage?: (label: string) => void;
  /** Called after each pass that ran (timing). */
  readonly onPass?: (name: string, result: PassResult, ms: number) => void;
}

/** The distinct labels of `passes`, in order: the stages a progress display counts. */
export function stageLabels(passes: readonly { readonly label: string }[]): string[] {
  return passes.map((p) => p.label).filter((label, k, all) => all.indexOf(label) === k);
}

/** The passes up to and including the one named `until` (all of them when it is undefined). */
export function passesThrough<P extends { readonly name: string }>(passes: readonly P[], until: string | undefined): readonly P[] {
  if (until === undefined) return passes;
  const at = passes.findIndex((p) => p.name === until);
  if (at < 0) throw new Error(`no pass named ${until} in the pipeline (${passes.map((p) => p.name).join(', ')})`);
  return passes.slice(0, at + 1);
}

/** Throws when `pass` left an issue of a rule the input graph kept, listing every such issue. */
function verifyAfter(graph: Graph, pass: string, exempt: ReadonlySet<string>): void {
  const issues: VerifyIssue[] = verifyGraph(graph).filter((i) => !exempt.has(i.rule));
  if (issues.length === 0) return;
  const n = `${issues.length} issue${issues.length > 1 ? 's' : ''}`;
  throw new Error(`pass ${pass} left an invalid graph: graph "${graph.name}" is invalid (${n}):\n${issues.map((i) => `  - ${i.message}`).join('\n')}`);
}

/**
 * The manager's loop, shared by the async and the sync driver: yields each pass's result (a Promise where the
 * pass is async) and is handed it back settled.
 */
function* steps<S extends { readonly graph: Graph }>(
  state: S,
  passes: readonly StatePass<S>[],
  options: PassManagerOptions,
): Generator<PassResult | Promise<PassResult>, PipelineResult, PassResult> {
  const verify = options.verify ?? true;
  // the rules the input breaks (verified only when asked: it walks the whole graph)
  const exempt = new Set(verify ? verifyGraph(state.graph).map((i) => i.rule) : []);
  const notes: PassNote[] = [];
  let changed = false;
  let stage: string | undefined;
  for (const pass of passesThrough(passes, options.until)) {
    if (pass.applies && !pass.applies(state)) continue;
    if (pass.label !== stage) options.onStage?.((stage = pass.label));
    const t0 = performance.now();
    const result = yield pass.run(state);
    const ms = performance.now() - t0;
    if (verify) verifyAfter(state.graph, pass.name, exempt);
    for (const n of result.notes) notes.push(n);
    changed ||= result.changed;
    options.onPass?.(pass.name, result, ms);
  }
  return { changed, notes };
}

/** Runs `passes` in order on `state` (its graph changes in place); a verifier failure names the pass that broke it. */
export async function runPasses<S extends { readonly graph: Graph }>(state: S, passes: readonly StatePass<S>[], options: PassManagerOptions = {}): Promise<PipelineResult> {
  const run = steps(state, passes, options);
  for (let step = run.next(); ; ) {
    if (step.done) return step.value;
    step = run.next(await step.value);
  }
}

/** runPasses for pipelines whose passes are all synchronous; throws when a pass returns a Promise. */
export function runPassesSync<S extends { readonly graph: Graph }>(state: S, passes: readonly StatePass<S>[], options: PassManagerOptions = {}): PipelineResult {
  const run = steps(state, passes, options);
  for (let step = run.next(); ; ) {
    if (step.done) return step.value;
    if (step.value instanceof Promise) throw new Error('runPassesSync: a pass returned a Promise; run this pipeline with runPasses');
    step = run.next(step.value);
  }
}
