// onnxruntime-node helpers for tests: seeded random inputs from a model's input types, running a model from
// its bytes (graph optimizations off, so the model runs as written), and comparing outputs.
// Reusable for any model: symbolic dims get small sizes by name, integer inputs stay in a valid range.

import { dtypeFromOnnx, type DType, type Graph, SplitMix64, Tensor, type Value } from '@attnopt/ir';
import * as ort from 'onnxruntime-node';
import { inferShape } from '../../src/shape-inference/shapes.js';

process.env.ORT_DISABLE_TELEMETRY = '1';

export interface InputSizes {
  readonly batch: number;
  readonly seq: number;
  readonly past: number;
}

export const DEFAULT_SIZES: InputSizes = { batch: 2, seq: 7, past: 3 };

/** The size a symbolic dim gets: batch, past, total (past + seq) or seq by its name. */
export function symbolSize(name: string, sizes: InputSizes = DEFAULT_SIZES): number {
  const n = name.toLowerCase();
  if (n.includes('batch')) return sizes.batch;
  if (n.includes('total') || n.includes('+') || n.includes('all')) return sizes.past + sizes.seq;
  if (n.includes('past')) return sizes.past;
  return sizes.seq;
}

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  f32: 'float32',
  f16: 'float16',
  f64: 'float64',
  i32: 'int32',
  i64: 'int64',
  bool: 'bool',
  u8: 'uint8',
  i8: 'int8',
};

/** A tensor of `dtype` from float64 values (integers for int types). */
export function ortTensor(dtype: DType, shape: readonly number[], values: ArrayLike<number>): ort.Tensor {
  const t = ORT_TYPE[dtype];
  if (t === undefined) throw new Error(`no onnxruntime tensor type for ${dtype}`);
  const n = values.length;
  switch (dtype) {
    case 'f32':
      return new ort.Tensor('float32', Float32Array.from(values), shape);
    case 'f64':
      return new ort.Tensor('float64', Float64Array.from(values), shape);
    case 'f16':
      return new ort.Tensor('float16', new Uint16Array(Tensor.fromValues('f16', shape, values).bytes().slice().buffer), shape);
    case 'i32':
      return new ort.Tensor('int32', Int32Array.from(values), shape);
    case 'i64':
      return new ort.Tensor('int64', BigInt64Array.from(Array.from({ length: n }, (_, k) => BigInt(values[k]!))), shape);
    case 'bool':
      // one byte per element, 0 or 1: any other byte is not a bool, and ops read it differently (Where as true,
      // And bitwise)
      return new ort.Tensor('bool', Uint8Array.from(values, (x) => (x ? 1 : 0)), shape);
    case 'u8':
      return new ort.Tensor('uint8', Uint8Array.from(values), shape);
    default:
      return new ort.Tensor('int8', Int8Array.from(values), shape);
  }
}

/** Values of an onnxruntime tensor as float64. */
export function ortValues(t: ort.Tensor): Float64Array {
  if (t.type === 'float16') {
    const bits = t.data as Uint16Array;
    return Tensor.fromBytes('f16', [bits.length], new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength)).toFloat64();
  }
  const d = t.data as ArrayLike<number | bigint>;
  return Float64Array.from({ length: d.length }, (_, k) => Number(d[k]!));
}

/** The exclusive upper bound an int input must stay under: the rows of the tables it indexes (via Cast too). */
function indexBound(v: Value, depth = 0): number {
  let bound = Infinity;
  for (const { node, index } of v.uses()) {
    const rows = (x: Value | undefined, axis = 0) => {
      const d = inferShape(x)?.[axis];
      return typeof d === 'number' ? d : Infinity;
    };
    if ((node.op === 'Cast' || node.op === 'Identity') && depth < 4) bound = Math.min(bound, indexBound(node.outputs[0]!, depth + 1));
    else if (node.op === 'Gather' && index === 1) {
      const a = node.attrs.get('axis');
      bound = Math.min(bound, rows(node.inputs[0], a?.type === 'int' ? Number(a.value) : 0));
    } else if (node.op === 'EmbedLayerNormalization' && index <= 1) bound = Math.min(bound, rows(node.inputs[index === 0 ? 2 : 4]));
  }
  return bound;
}

/** Inputs of generation ops (BeamSearch, GreedySearch, Sampling) by name: valid parameters, not noise. */
function generationParameter(name: string, sizes: InputSizes): number | undefined {
  if (name === 'max_length') return sizes.seq + 4;
  if (name === 'min_length' || name === 'num_return_sequences') return 1;
  if (name === 'num_beams') return 2;
  if (name === 'length_penalty' || name === 'repetition_penalty' || name === 'temperature') return 1;
  return undefined;
}

/**
 * Seeded random inputs for every graph input of `graph`: floats in [-1, 1); int inputs by name
 * (input_ids in [0, 10), masks of 1s with the last key of batch 1 padded, positions counting from `past`,
 * seqlens_k = past + seq - 1, total_sequence_length = past + seq).
 */
export function randomInputs(graph: Graph, seed = 1, sizes: InputSizes = DEFAULT_SIZES): Record<string, ort.Tensor> {
  const rng = new SplitMix64(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of graph.inputs as readonly Value[]) {
    if (v.initializer) continue;
    const t = v.type;
    if (t?.kind !== 'tensor' || t.shape === undefined) throw new Error(`input ${v.name} has no tensor type with a shape`);
    const shape = t.shape.map((d) => (typeof d === 'number' ? d : symbolSize(d, sizes)));
    const n = shape.reduce((a, b) => a * b, 1);
    const name = v.name.toLowerCase();
    let values: number[];
    const parameter = generationParameter(name, sizes);
    if (parameter !== undefined) {
      values = Array(n).fill(parameter);
    } else if (t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'f64') {
      values = Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);
    } else if (name.includes('seqlens')) {
      values = Array(n).fill(sizes.past + sizes.seq - 1);
    } else if (name.includes('total_seq')) {
      values = Array(n).fill(sizes.past + sizes.seq);
    } else if (name.includes('mask')) {
      const last = shape[shape.length - 1] ?? 1;
      values = Array.from({ length: n }, (_, k) => (shape.length >= 2 && k >= n / shape[0]! && k % last === last - 1 ? 0 : 1));
    } else if (name.includes('position')) {
      const last = shape[shape.length - 1] ?? 1;
      values = Array.from({ length: n }, (_, k) => (k % last) + sizes.past);
    } else {
      const bound = Math.min(10, indexBound(v));
      values = Array.from({ length: n }, () => Math.floor(rng.nextFloat() * bound));
    }
    feeds[v.name] = ortTensor(t.dtype, shape, values);
  }
  return feeds;
}

/** Runs a model from its bytes with graph optimizations disabled; returns every output by name. */
export async function runModel(bytes: Uint8Array | string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const options = { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 } as const;
  const session = typeof bytes === 'string' ? await ort.InferenceSession.create(bytes, options) : await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

export interface Comparison {
  readonly maxAbsError: number;
  readonly mismatches: string[];
}

/** |a - b| <= atol + rtol |b| element-wise (NaN and +-Inf must match exactly), per output name. */
export function compareOutputs(
  got: Record<string, ort.Tensor>,
  want: Record<string, ort.Tensor>,
  atol: number,
  rtol: number,
): Comparison {
  const mismatches: string[] = [];
  let maxAbsError = 0;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    if (!g) {
      mismatches.push(`${name}: missing`);
      continue;
    }
    if (g.dims.join(',') !== w.dims.join(',')) {
      mismatches.push(`${name}: shape [${g.dims.join(', ')}] vs [${w.dims.join(', ')}]`);
      continue;
    }
    const a = ortValues(g);
    const b = ortValues(w);
    let bad = 0;
    b.forEach((x, k) => {
      const y = a[k]!;
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        if (!Object.is(x, y) && !(Number.isNaN(x) && Number.isNaN(y))) bad++;
        return;
      }
      const e = Math.abs(x - y);
      maxAbsError = Math.max(maxAbsError, e);
      if (e > atol + rtol * Math.abs(x)) bad++;
    });
    if (bad > 0) mismatches.push(`${name}: ${bad} of ${b.length} elements differ`);
  }
  return { maxAbsError, mismatches };
}

/**
 * A lowered model's outputs against the original's: fp32 |got - want| <= 1e-5 (atol only); fp16 4e-3 abs +
 * 4e-3 rel (about 8 fp16 ulps: both sides round every op to fp16, in a different order).
 */
export function compareLowered(got: Record<string, ort.Tensor>, want: Record<string, ort.Tensor>): Comparison & { readonly fp16: boolean } {
  const fp16 = Object.values(want).some((t) => t.type === 'float16');
  const tol = fp16 ? 4e-3 : 1e-5;
  return { ...compareOutputs(got, want, tol, fp16 ? tol : 0), fp16 };
}

export { dtypeFromOnnx };
