// Passes and the pipeline: a pass is (graph) -> { changed }, named; the pipeline is a flat list run in
// order, with the verifier between passes when asked (always in tests).

import { assertValid, type Graph } from '@attnopt/ir';

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

export interface PipelineOptions {
  /** Run the IR verifier before the first pass and after every pass (default true). */
  readonly verify?: boolean;
  /** Called after each pass (progress, timing). */
  readonly onPass?: (pass: Pass, result: PassResult, ms: number) => void;
}

export interface PipelineResult {
  readonly changed: boolean;
  readonly notes: readonly PassNote[];
}

/** Runs `passes` in order on `graph` (mutating it). A verifier failure names the pass that broke the graph. */
export function runPipeline(graph: Graph, passes: readonly Pass[], options: PipelineOptions = {}): PipelineResult {
  const verify = options.verify ?? true;
  if (verify) assertValid(graph);
  const notes: PassNote[] = [];
  let changed = false;
  for (const pass of passes) {
    const t0 = performance.now();
    const result = pass.run(graph);
    const ms = performance.now() - t0;
    if (verify && result.changed) {
      try {
        assertValid(graph);
      } catch (e) {
        throw new Error(`pass ${pass.name} left an invalid graph: ${(e as Error).message}`);
      }
    }
    notes.push(...result.notes);
    changed ||= result.changed;
    options.onPass?.(pass, result, ms);
  }
  return { changed, notes };
}
