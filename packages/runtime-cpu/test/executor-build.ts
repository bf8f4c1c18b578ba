// Test helpers: one-node graphs run by the executor, and small tensors from plain arrays.

import { type Attr, Graph, tensorType, Value } from '@attnopt/ir';
import { type ExecTensor, execTensor, runGraph, type RunOptions, toNumbers } from '../src/index.js';

export const f32 = (shape: readonly number[], v: readonly number[]): ExecTensor => execTensor('f32', shape, Float32Array.from(v));
export const f64 = (shape: readonly number[], v: readonly number[]): ExecTensor => execTensor('f64', shape, Float64Array.from(v));
export const i64 = (shape: readonly number[], v: readonly (number | bigint)[]): ExecTensor => execTensor('i64', shape, BigInt64Array.from(v, (x) => BigInt(x)));
export const i32 = (shape: readonly number[], v: readonly number[]): ExecTensor => execTensor('i32', shape, Int32Array.from(v));
export const bool = (shape: readonly number[], v: readonly (number | boolean)[]): ExecTensor => execTensor('bool', shape, Uint8Array.from(v, (x) => (x ? 1 : 0)));

export interface OpOptions extends RunOptions {
  readonly domain?: string;
  readonly outputs?: number;
}

/** Runs one node `op(inputs) {attrs}` as a graph; undefined inputs are omitted optional inputs. */
export async function runOp(op: string, inputs: readonly (ExecTensor | undefined)[], attrs: Record<string, Attr> = {}, options: OpOptions = {}): Promise<ExecTensor[]> {
  const g = new Graph('op');
  const feeds: Record<string, ExecTensor> = {};
  const ins = inputs.map((t, k) => {
    if (!t) return undefined;
    feeds[`in${k}`] = t;
    return g.addInput(new Value(`in${k}`, tensorType(t.dtype, t.shape)));
  });
  const outs = Array.from({ length: options.outputs ?? 1 }, (_, k) => new Value(`out${k}`));
  g.add({ op, domain: options.domain ?? '', name: `${op}_0`, inputs: ins, outputs: outs, attrs });
  g.outputs.push(...outs);
  const result = await runGraph(g, feeds, options);
  return outs.map((v) => result[v.name]!);
}

/** The elements as plain numbers (bool as 0/1, int64 as numbers). */
export const values = (t: ExecTensor): number[] => Array.from(toNumbers(t));
