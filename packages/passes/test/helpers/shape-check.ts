// Checks the shape engine against onnxruntime on one model: every value of the main graph with a known dtype is
// exposed as a graph output, the model runs at a binding of its symbolic dims, and every inferred dim (and every
// inferred element of a small integer value) that the binding determines must equal the actual one.

import { type Graph, tensorType, type Value } from '@attnopt/ir';
import { exportOnnx, importOnnx } from '@attnopt/onnx';
import { evaluate } from '../../src/shape-inference/symbolic-shapes/expr.js';
import { analyzeGraph, valueInfo } from '../../src/shape-inference/symbolic-shapes/engine.js';
import * as ort from 'onnxruntime-node';
import { type InputSizes, ortValues, randomInputs } from './ort.js';

export interface ShapeCheck {
  /** Node outputs of the main graph. */
  readonly values: number;
  /** Values whose every dim the engine expresses in the graph inputs' symbols (no size known only at run time). */
  readonly fullyInferred: number;
  /** Dims and elements compared with onnxruntime's. */
  readonly compared: number;
  readonly mismatches: string[];
}

/** The binding of the graph inputs' dim symbols to the sizes of the feeds (undefined when two feeds disagree). */
export function bindingOf(g: Graph, feeds: Record<string, { dims: readonly number[] }>): Map<string, number> | undefined {
  const binding = new Map<string, number>();
  for (const v of g.inputs) {
    const shape = v.type?.kind === 'tensor' ? v.type.shape : undefined;
    const feed = feeds[v.name];
    if (!shape || !feed) continue;
    for (let k = 0; k < shape.length; k++) {
      const d = shape[k]!;
      if (typeof d === 'number' || d === '?') continue;
      if (binding.has(d) && binding.get(d) !== feed.dims[k]) return undefined;
      binding.set(d, feed.dims[k]!);
    }
  }
  return binding;
}

/** Generated inputs above this many elements are not made (graphs that take their weights as inputs). */
const MAX_INPUT_ELEMENTS = 1e7;

/** Runs the check at each of `sizes` (one import and one session, seeded inputs per binding). */
export function checkShapes(file: string, sizes: readonly InputSizes[], seed = 5): Promise<ShapeCheck> {
  return checkShapesOn(file, (g) =>
    sizes.map((size) => {
      const elements = g.inputs.reduce((a, v) => a + (v.initializer || v.type?.kind !== 'tensor' ? 0 : (v.type.shape ?? []).reduce<number>((p, d) => p * (typeof d === 'number' ? d : size.seq), 1)), 0);
      if (elements > MAX_INPUT_ELEMENTS) throw new Error(`${file}: weights are graph inputs (${elements} input elements)`);
      return randomInputs(g, seed, size);
    }),
  );
}

/** Runs the check on the feeds `feedsFor` gives for the imported graph (one import and one session). */
export async function checkShapesOn(file: string, feedsFor: (g: Graph) => Record<string, ort.Tensor>[]): Promise<ShapeCheck> {
  const mismatches: string[] = [];
  let compared = 0;
  const model = importOnnx(file);
  const g = model.graph;
  const all = [...g.definedValues()];
  // a name two values share (an invalid graph some old exports write) makes onnxruntime's answers ambiguous
  const named = new Set<string>();
  for (const v of all) {
    if (named.has(v.name)) throw new Error(`${file}: two values are named ${v.name}`);
    named.add(v.name);
  }
  analyzeGraph(g);
  const infos = new Map<Value, NonNullable<ReturnType<typeof valueInfo>>>();
  for (const v of all) {
    const info = valueInfo(v);
    if (info) infos.set(v, info);
  }
  const outputs = g.nodes.flatMap((n) => n.outputs).filter((v) => v.name !== '');
  const values = outputs.length;
  const fullyInferred = outputs.filter((v) => infos.get(v)?.shape?.every((d) => !d.hasFresh)).length;
  const feedsAt = feedsFor(g);
  // expose every node output whose dtype is known (onnxruntime needs it) as a graph output
  for (const v of outputs) {
    if (g.outputs.includes(v) || infos.get(v)?.dtype === undefined) continue;
    v.type ??= tensorType(infos.get(v)!.dtype!);
    g.outputs.push(v);
  }
  const session = await ort.InferenceSession.create(exportOnnx(model), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    for (const feeds of feedsAt) {
      const binding = bindingOf(g, feeds);
      if (!binding) throw new Error(`${file}: the feeds give one symbol two sizes`);
      const got = await session.run(feeds);
      for (const v of g.outputs) {
        const t = got[v.name];
        const info = infos.get(v);
        if (!t || !info?.shape) continue;
        const where = `${v.name} (${v.producer?.op ?? 'input'}) at ${[...binding].map(([k, x]) => `${k}=${x}`).join(' ')}`;
        if (info.shape.length !== t.dims.length) {
          mismatches.push(`${where}: rank ${info.shape.length}, actual [${t.dims.join(', ')}]`);
          continue;
        }
        info.shape.forEach((d, k) => {
          const x = evaluate(d, binding);
          if (x === undefined) return;
          compared++;
          if (x !== t.dims[k]) mismatches.push(`${where}: dim ${k} is ${String(d)} = ${x}, actual [${t.dims.join(', ')}]`);
        });
        if (info.value && (t.type === 'int64' || t.type === 'int32') && info.value.length === t.size) {
          const actual = ortValues(t);
          info.value.forEach((e, k) => {
            const x = evaluate(e, binding);
            if (x === undefined) return;
            compared++;
            if (x !== actual[k]) mismatches.push(`${where}: element ${k} is ${String(e)} = ${x}, actual ${actual[k]}`);
          });
        }
      }
    }
  } finally {
    await session.release();
  }
  return { values, fullyInferred, compared, mismatches };
}
