// Opset-aware builders for the guarded lowering: the one place where its ops differ between opsets 13 and 18+.
//   ReduceMin / ReduceMax / ReduceMean / ReduceL2: axes as an attribute below opset 18, as an int64 input from 18.
//   ReduceSum: axes as an input from opset 13 (the lowering's lowest guarded opset), so one form.

import type { Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

/** The lowest opset of the guarded form (ReduceSum with axes as an input). */
export const GUARDED_OPSET = 13;

/** The first opset whose ReduceMin/ReduceMax/ReduceMean/ReduceL2 take their axes as an input. */
const AXES_INPUT_OPSET = 18;

export type ReduceOp = 'ReduceMin' | 'ReduceMax' | 'ReduceMean' | 'ReduceL2' | 'ReduceSum';

/** A reduction over `axes` written for `opset`; keepdims 0 unless `keep`. */
export function reduceAt(b: NodeBuilder, opset: number, op: ReduceOp, t: Value, axes: readonly number[], what: string, keep = false): Value {
  const keepdims = { keepdims: { type: 'int', value: keep ? 1n : 0n } } as const;
  if (op === 'ReduceSum' || opset >= AXES_INPUT_OPSET) return b.op(op, [t, b.ints(`${what}_axes`, [...axes])], what, keepdims);
  return b.op(op, [t], what, { ...keepdims, axes: { type: 'ints', value: axes.map(BigInt) } });
}
