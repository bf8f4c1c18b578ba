// The pass manager: a flat list of passes over a compilation state (the graph and what earlier passes recorded),
// run in order, asynchronously where a pass needs it (calibration runs the model), with the IR verifier on the
// graph before the first pass and after every pass that ran, when asked. A pass has a name (notes, errors and
// `until` use it) and a label (what a progress display shows; the passes of one stage share it).

import { assertValid, type Graph } from '@attnopt/ir';
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
  /** Run the IR verifier before the first pass and after every pass that ran (default true). */
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

/** The passes up to and including the one named `until` (all of them without it). */
function prefix<P extends { readonly name: string }>(passes: readonly P[], until: string | undefined): readonly P[] {
  if (until === undefined) return passes;
  const at = passes.findIndex((p) => p.name === until);
  if (at < 0) throw new Error(`no pass named ${until} in the pipeline (${passes.map((p) => p.name).join(', ')})`);
  return passes.slice(0, at + 1);
}

function verified(graph: Graph, after: string | undefined): void {
  try {
    assertValid(graph);
  } catch (e) {
    throw new Error(after === undefined ? `the input graph is invalid: ${(e as Error).message}` : `pass ${after} left an invalid graph: ${(e as Error).message}`);
  }
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
  if (verify) verified(state.graph, undefined);
  const notes: PassNote[] = [];
  let changed = false;
  let stage: string | undefined;
  for (const pass of prefix(passes, options.until)) {
    if (pass.applies && !pass.applies(state)) continue;
    if (pass.label !== stage) options.onStage?.((stage = pass.label));
    const t0 = performance.now();
    const result = yield pass.run(state);
    const ms = performance.now() - t0;
    if (verify) verified(state.graph, pass.name);
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
