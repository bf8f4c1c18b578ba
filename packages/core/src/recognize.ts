// recognize: lift every attention site of a graph into attnopt::Attention nodes. Calls of model-local functions
// that hold attention (a Softmax, or a fused attention op, in the function or in one it calls) are written out
// first, so the sites inside them are found; restore puts back the calls whose nodes nothing changed.

import type { Graph } from '@attnopt/ir';
import { type FunctionProto, type InlinedCall, inlineLocalFunctions, type LocalFunctions, localFunction } from '@attnopt/onnx';
import { recognizePass } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';
import { FUSED_ATTENTION_OPS } from './misses.js';

export interface RecognizeResult {
  readonly changed: boolean;
  /** What each rule did, and why rules did not match where they were tried. */
  readonly notes: readonly PassNote[];
}

/** Graph annotation: the local-function calls recognize wrote out (InlinedCall[], in order). */
export const INLINED_CALLS = 'attnopt.inlinedCalls';

/** The calls recognize wrote out in `graph`. */
export function inlinedCalls(graph: Graph): readonly InlinedCall[] {
  return (graph.annotations.get(INLINED_CALLS) as InlinedCall[] | undefined) ?? [];
}

/** Whether `fn`, or a local function it calls, holds a Softmax or a fused attention op. */
function holdsAttention(fn: FunctionProto, fns: LocalFunctions, seen = new Set<FunctionProto>()): boolean {
  if (seen.has(fn)) return false;
  seen.add(fn);
  return (fn.node ?? []).some((n) => {
    const op = n.opType ?? '';
    if (op === 'Softmax' || op === 'LogSoftmax' || FUSED_ATTENTION_OPS.has(op)) return true;
    const callee = localFunction(fns, n.domain, op, n.overload);
    return callee !== undefined && holdsAttention(callee, fns, seen);
  });
}

export function recognize(graph: Graph): RecognizeResult {
  const calls = inlineLocalFunctions(graph, (fn, fns) => holdsAttention(fn, fns));
  if (calls.length > 0) graph.annotations.set(INLINED_CALLS, [...inlinedCalls(graph), ...calls]);
  const r = recognizePass().run(graph);
  const written: PassNote[] = calls.map((c) => ({ pass: 'recognize', node: c.described, message: `the local function ${c.call.qualifiedOp} holds attention: its nodes are written out at this call to be read` }));
  return { changed: r.changed || calls.length > 0, notes: [...written, ...r.notes] };
}
