// Test helpers for the executor against onnxruntime-node: tensors both ways, seeded feeds for a graph's
// inputs (floats in [-1, 1), ids within the vocabulary, masks with a padded tail in batch 1), running a
// model from its bytes with graph optimizations off, and an |got - want| <= atol + rtol |want| comparison
// in which NaN and +-Inf must match exactly.

import { type Graph, SplitMix64, type Value } from '@attnopt/ir';
import * as ort from 'onnxruntime-node';
import { type ExecDType, type ExecTensor, execTensor, toNumbers } from '../src/index.js';

process.env['ORT_DISABLE_TELEMETRY'] = '1';

const ORT_TYPE: Record<ExecDType, ort.Tensor.Type> = {
  f32: 'float32',
  f64: 'float64',
  f16: 'float16',
  i64: 'int64',
  i32: 'int32',
  i8: 'int8',
  u8: 'uint8',
  bool: 'bool',
};
const FROM_ORT = Object.fromEntries(Object.entries(ORT_TYPE).map(([k, v]) => [v, k])) as Record<string, ExecDType>;

export function toOrt(t: ExecTensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[t.dtype], t.data as never, [...t.shape]);
}

export function fromOrt(t: ort.Tensor): ExecTensor {
  const dtype = FROM_ORT[t.type];
  if (dtype === undefined) throw new Error(`no executor dtype for onnxruntime ${t.type}`);
  return execTensor(dtype, t.dims, t.data as ExecTensor['data']);
}

export interface FeedSizes {
  readonly batch: number;
  readonly seq: number;
}

/** The rows a value indexes when it feeds a Gather (through Cast/Unsqueeze): ids stay below it. */
function vocabBound(v: Value, depth = 0): number {
  let bound = Infinity;
  for (const { node, index } of v.uses()) {
    if (node.op === 'Gather' && index === 1) {
      const rows = node.inputs[0]?.initializer?.shape[0];
      if (rows !== undefined) bound = Math.min(bound, rows);
    } else if (depth < 3 && ['Cast', 'Unsqueeze', 'Reshape'].includes(node.op)) {
      bound = Math.min(bound, vocabBound(node.outputs[0]!, depth + 1));
    }
  }
  return bound;
}

/**
 * Seeded feeds: floats uniform in [-1, 1); int64 `*mask` inputs 1 except the last 3 positions of batch 1
 * (0 = padding, the additive-mask convention); bool `*padding_mask` inputs true on those positions (PyTorch's
 * key_padding_mask convention); other ints uniform below the vocabulary their Gather indexes.
 */
export function seededFeeds(graph: Graph, seed: number, sizes: FeedSizes): Record<string, ExecTensor> {
  const rng = new SplitMix64(seed);
  const feeds: Record<string, ExecTensor> = {};
  for (const v of graph.inputs) {
    if (v.initializer) continue;
    const t = v.type;
    if (t?.kind !== 'tensor' || t.shape === undefined) throw new Error(`input ${v.name} has no tensor type with a shape`);
    const shape = t.shape.map((d) => (typeof d === 'number' ? d : /batch/i.test(d) ? sizes.batch : sizes.seq));
    const n = shape.reduce((a, b) => a * b, 1);
    const last = shape[shape.length - 1] ?? 1;
    const padded = (k: number) => shape.length >= 2 && k >= n / shape[0]! && k % last >= last - 3;
    let values: number[];
    if (t.dtype === 'f32' || t.dtype === 'f64' || t.dtype === 'f16') values = Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);
    else if (/mask/i.test(v.name) && t.dtype === 'bool') values = Array.from({ length: n }, (_, k) => (padded(k) ? 1 : 0));
    else if (/mask/i.test(v.name)) values = Array.from({ length: n }, (_, k) => (padded(k) ? 0 : 1));
    else {
      const bound = Math.min(1000, vocabBound(v));
      values = Array.from({ length: n }, () => Math.floor(rng.nextFloat() * bound));
    }
    feeds[v.name] = fromValues(t.dtype as ExecDType, shape, values);
  }
  return feeds;
}

export function fromValues(dtype: ExecDType, shape: readonly number[], values: readonly number[]): ExecTensor {
  switch (dtype) {
    case 'f32':
      return execTensor(dtype, shape, Float32Array.from(values));
    case 'f64':
      return execTensor(dtype, shape, Float64Array.from(values));
    case 'i64':
      return execTensor(dtype, shape, BigInt64Array.from(values, (x) => BigInt(x)));
    case 'i32':
      return execTensor(dtype, shape, Int32Array.from(values));
    case 'bool':
    case 'u8':
      return execTensor(dtype, shape, Uint8Array.from(values));
    default:
      throw new Error(`fromValues: ${dtype} feeds are not made by this helper`);
  }
}

/** Runs a model from its bytes (graph optimizations off, so it runs as written). */
export async function runOrt(bytes: Uint8Array, feeds: Record<string, ExecTensor>): Promise<Record<string, ExecTensor>> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, toOrt(t)])));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, fromOrt(t)]));
  } finally {
    await session.release();
  }
}

export interface Comparison {
  readonly maxAbsError: number;
  readonly mismatches: string[];
}

/** Per output name: same shape, and |got - want| <= atol + rtol |want| element-wise (non-finite: identical). */
export function compareOutputs(got: Record<string, ExecTensor>, want: Record<string, ExecTensor>, atol: number, rtol: number): Comparison {
  const mismatches: string[] = [];
  let maxAbsError = 0;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    if (!g) {
      mismatches.push(`${name}: missing`);
      continue;
    }
    if (g.shape.join() !== w.shape.join()) {
      mismatches.push(`${name}: shape [${g.shape.join(', ')}] vs [${w.shape.join(', ')}]`);
      continue;
    }
    const a = toNumbers(g);
    const b = toNumbers(w);
    let bad = 0;
    let first = '';
    b.forEach((x, k) => {
      const y = a[k]!;
      const ok = Number.isFinite(x) && Number.isFinite(y) ? Math.abs(x - y) <= atol + rtol * Math.abs(x) : Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
      if (Number.isFinite(x) && Number.isFinite(y)) maxAbsError = Math.max(maxAbsError, Math.abs(x - y));
      if (!ok && bad++ === 0) first = ` (first at ${k}: ${y} vs ${x})`;
    });
    if (bad > 0) mismatches.push(`${name}: ${bad} of ${b.length} elements differ${first}`);
  }
  return { maxAbsError, mismatches };
}
