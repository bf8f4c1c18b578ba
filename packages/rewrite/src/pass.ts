// Passes and the pipeline: a pass is (graph) -> { changed }, named; the pipeline is a flat list run in
// order by the pass manager (pass-manager.ts), with the verifier between passes unless turned off.

import type { Graph } from '@attnopt/ir';
import { type PassManagerOptions, runPassesSync, type StatePass } from './pass-manager.js';

/** A note a pass records for the report and `--explain`: what it did or why it did not. */
export interface PassNote {
  readonly pass: string;
  readonly rule?: string;
  readonly node?: string;
  readonly message: string;
}

export interface PassResult {
  readonly changed: boolean;
  readonly notes: readonly PassNote[];
}

export interface Pass {
  readonly name: string;
  run(graph: Graph): PassResult;
}

export interface PipelineResult {
  readonly changed: boolean;
  readonly notes: readonly PassNote[];
}

/** A graph pass as a pass of the pass manager (its label is its name). */
function overGraph(pass: Pass): StatePass<{ readonly graph: Graph }> {
  return { name: pass.name, label: pass.name, run: (state) => pass.run(state.graph) };
}

/**
 * Runs `passes` in order on `graph` (mutating it), with the verifier before the first pass and after every pass
 * (unless `verify: false`). A verifier failure names the pass that broke the graph.
 */
export function runPipeline(graph: Graph, passes: readonly Pass[], options: PassManagerOptions = {}): PipelineResult {
  return runPassesSync({ graph }, passes.map(overGraph), options);
}
