// Calibration inputs generated from a model's input types, seeded, so a run is reproducible:
// - symbolic dims: names with "batch" -> batch; "past" -> pastLen; "total"/"+"/"all" -> pastLen + seqLen (a past dim
//   sized in `dims` is pastLen);
//   "seq"/"len"/"sequence"/"token"/"time" -> seqLen; a dim named otherwise (`b`, `s0`, `unk__12`, unnamed) by what it
//   is to the attention scores (dim-roles.ts: their batch, query, key or cached-key axis), else otherSize; `dims`
//   sizes any dim by name first;
// - integer inputs named like *mask*: every key kept (1, or 0 where the model drops a key on true: mask-polarity.ts),
//   batch row b with its last min(b, n - 1) keys padded;
// - *position*: 0, 1, ... counting from pastLen along the last axis; where they index a position table or a
//   rotary cache of N rows, pastLen + seqLen stays within N (the default pastLen shrinks; a longer seqLen is an error);
//   so do positions the graph computes from the lengths (position-limits.ts: a Range into a table, a table sliced);
// - integer inputs of rank <= 1 named like *length(s)* / *lens* / *seqlen* (a batch of valid lengths, VITS'
//   input_lengths, ONNX Attention's nonpad_kv_seqlen): the full length pastLen + seqLen, so no padding mask hides
//   the keys a sparse form would drop; TensorScatter's write indices into a static cache: pastLen;
// - other integer inputs (*ids* and the rest): uniform in [0, vocab), vocab read from the table the
//   smallest table the input indexes through Gather (through Cast/Identity/Unsqueeze/Reshape), else [0, intRange);
// - symbolic batch dims default to the static leading dim the other inputs share (else 1), weights fed as
//   inputs (right operands of MatMul / Gemm / com.microsoft Attention) aside;
// - bool inputs: the mask rule; float inputs named like *mask*: the mask rule too; other floats: N(0, 1);
// - parameters by name, valid rather than noise: GroupQueryAttention's seqlens_k (pastLen + seqLen - 1) and
//   total_sequence_length (pastLen + seqLen); BeamSearch / GreedySearch / Sampling's max_length (seqLen + 4),
//   min_length and num_return_sequences (1), num_beams (2), length_penalty, repetition_penalty, temperature (1).

import { type DType, type Graph, SplitMix64, type Value } from '@attnopt/ir';
import type { AttnoptModel } from '../model.js';
import { type DimRole, dimRoles } from './dim-roles.js';
import { maskKeepsOnTrue } from './mask-polarity.js';
import { modelInputs } from './model-inputs.js';
import { brokenLimits, evaluatedEnd, positionLimits } from './position-limits.js';
import { gatherBound } from './tables.js';
import { type CalibrationSample, elementCount, type HostData, type HostTensor } from './tensor.js';
import { floatToHalf, floatToBfloat16 } from '@attnopt/ir';

export interface GenerateOptions {
  /** Default: the static leading dim other inputs share, else 1. */
  readonly batch?: number;
  /** Default 8. */
  readonly seqLen?: number;
  /** Size of dims named like past (cached keys); default 0... unless a past input exists: then 2. */
  readonly pastLen?: number;
  /** Size of any other symbolic dim; default seqLen. */
  readonly otherSize?: number;
  /** Sizes of named symbolic dims; win over every rule above. */
  readonly dims?: Readonly<Record<string, number>>;
  /** Default 0. Sample k uses seed + k. */
  readonly seed?: number;
  /** Samples to generate; default 1. */
  readonly count?: number;
  /** Exclusive bound for integer inputs whose range cannot be read from the model; default 4. */
  readonly intRange?: number;
}

/** Whether `v` is where TensorScatter writes new keys into a static cache (its write_indices): the cached length. */
const isWriteIndex = (v: Value) => v.uses().some(({ node, index }) => node.op === 'TensorScatter' && index === 2);

/**
 * Whether a model input is a weight fed as an input (the right operand of a MatMul / Gemm, the projection
 * of a com.microsoft Attention): its leading dim is no batch.
 */
function isWeight(v: Value): boolean {
  return v.uses().some(({ node, index }) => index === 1 && (node.op === 'MatMul' || node.op === 'Gemm' || (node.op === 'Attention' && node.domain === 'com.microsoft')));
}

/** The batch a model fixes: the static leading dim that every rank >= 2 input (but weights) with a static leading dim shares. */
function staticBatch(inputs: readonly { readonly shape?: readonly (number | string)[]; readonly value: Value }[]): number | undefined {
  const leading = new Set<number>();
  for (const i of inputs) {
    const d = i.shape !== undefined && i.shape.length >= 2 && !isWeight(i.value) ? i.shape[0] : undefined;
    if (typeof d === 'number') leading.add(d);
  }
  return leading.size === 1 ? [...leading][0] : undefined;
}

type Sizes = Required<Omit<GenerateOptions, 'dims'>> & Pick<GenerateOptions, 'dims'>;

const ROLE_SIZE: Record<DimRole, (o: Sizes) => number> = {
  batch: (o) => o.batch,
  seq: (o) => o.seqLen,
  past: (o) => o.pastLen,
  total: (o) => o.pastLen + o.seqLen,
};

/** The size a dim's name asks for (`dims` first, then the name rules at the top), or undefined. */
function namedSize(name: string, o: Sizes): number | undefined {
  const override = o.dims?.[name];
  if (override !== undefined) return override;
  const n = name.toLowerCase();
  if (n.includes('batch')) return o.batch;
  if (n.includes('total') || n.includes('+') || n.includes('all')) return o.pastLen + o.seqLen;
  if (n.includes('past')) return o.pastLen;
  if (/seq|len|token|time|step/.test(n)) return o.seqLen;
  return undefined;
}

/** A symbolic dim's size: by its name, else by what it is to the attention (dim-roles.ts, `role`), else otherSize. */
function symbolSize(name: string, o: Sizes, role?: DimRole): number {
  const named = namedSize(name, o);
  if (named !== undefined) return named;
  return role !== undefined ? ROLE_SIZE[role](o) : o.otherSize;
}

function gaussians(rng: SplitMix64, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let k = 0; k < n; k += 2) {
    const u = 1 - rng.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * rng.nextFloat();
    out[k] = r * Math.cos(t);
    if (k + 1 < n) out[k + 1] = r * Math.sin(t);
  }
  return out;
}

/** A host tensor of `dtype` holding `values` (rounded for integer types). */
export function hostTensorFromNumbers(dtype: DType, shape: readonly number[], values: ArrayLike<number>): HostTensor {
  const n = values.length;
  const map = <A extends HostData>(a: A, f: (x: number) => number | bigint): A => {
    for (let k = 0; k < n; k++) (a as unknown as (number | bigint)[])[k] = f(values[k]!);
    return a;
  };
  let data: HostData;
  switch (dtype) {
    case 'f32': data = Float32Array.from(values); break;
    case 'f64': data = Float64Array.from(values); break;
    case 'f16': data = map(new Uint16Array(n), floatToHalf); break;
    case 'bf16': data = map(new Uint16Array(n), floatToBfloat16); break;
    case 'i64': data = map(new BigInt64Array(n), (x) => BigInt(Math.round(x))); break;
    case 'u64': data = map(new BigUint64Array(n), (x) => BigInt(Math.round(x))); break;
    case 'i32': data = Int32Array.from(values); break;
    case 'u32': data = Uint32Array.from(values); break;
    case 'i16': data = Int16Array.from(values); break;
    case 'u16': data = Uint16Array.from(values); break;
    case 'i8': data = Int8Array.from(values); break;
    case 'u8':
    case 'bool': data = Uint8Array.from(values); break;
    default: throw new Error(`cannot generate ${dtype} inputs`);
  }
  return { dtype, shape: [...shape], data };
}

/** The size given for a dim named like past (not a total), or undefined. */
function pastFromDims(dims: Readonly<Record<string, number>> | undefined): number | undefined {
  return Object.entries(dims ?? {}).find(([name]) => isPastDim(name))?.[1];
}

/** Whether a symbolic dim named `name` is sized as the cached length (named like past, and not a total). */
export const isPastDim = (name: string): boolean => /past/i.test(name) && !/total|\+|all/i.test(name);

/** The value of an input that is a parameter of an op rather than data (see the rules at the top), or undefined. */
function parameterValue(name: string, seqLen: number, pastLen: number): number | undefined {
  switch (name) {
    case 'seqlens_k': return pastLen + seqLen - 1;
    case 'total_sequence_length': return pastLen + seqLen;
    case 'max_length': return seqLen + 4;
    case 'min_length': case 'num_return_sequences': return 1;
    case 'num_beams': return 2;
    case 'length_penalty': case 'repetition_penalty': case 'temperature': return 1;
    default: return undefined;
  }
}

/** Seeded calibration samples for every input of `model` (see the rules at the top of this file). */
export function generateInputs(model: AttnoptModel | Graph, options: GenerateOptions = {}): CalibrationSample[] {
  const graph = 'graph' in model ? model.graph : model;
  const where = 'graph' in model ? (model.file ?? 'model') : 'model';
  const inputs = modelInputs(graph, where);
  const hasPast = inputs.some((i) => /past/i.test(i.name));
  const seqLen = options.seqLen ?? 8;
  // the positions the model holds (a position table or rotary cache the position ids index): the cache's keys
  // and the new ones fit in them, or the model cannot take the length asked for
  const positions = Math.min(...inputs.filter((i) => /position/i.test(i.name)).map((i) => gatherBound(i.value) ?? Infinity));
  if (seqLen > positions) throw new Error(`${where}: a sequence of ${seqLen} tokens is longer than the ${positions} positions the model holds (its position ids index a table of ${positions} rows): give a shorter --seq-len`);
  const given = options.pastLen ?? pastFromDims(options.dims);
  const o = {
    batch: options.batch ?? staticBatch(inputs) ?? 1,
    seqLen,
    // a past dim sized by name (dims: past_sequence_length=0, an empty cache) sizes the totals too
    pastLen: given ?? (hasPast ? Math.min(2, positions - seqLen) : 0),
    otherSize: options.otherSize ?? options.seqLen ?? 8,
    seed: options.seed ?? 0,
    count: options.count ?? 1,
    intRange: options.intRange ?? 4,
    dims: options.dims,
  };
  // positions the graph computes from the lengths (arange(past, past + seq) into a table of N rows) stay within
  // their tables: the default cache shrinks to fit; a range past its table at that size is an error
  const roles = dimRoles(graph);
  const sizeOf = (d: string) => symbolSize(d, o, roles.byName.get(d));
  const limits = positionLimits(graph);
  let broken = brokenLimits(limits, sizeOf, o.pastLen);
  while (given === undefined && broken.length > 0 && o.pastLen > 0) {
    o.pastLen--;
    broken = brokenLimits(limits, sizeOf, o.pastLen);
  }
  const over = broken[0];
  if (over) {
    const end = evaluatedEnd(over, sizeOf, o.pastLen)!;
    const reads = {
      gathered: `gathers positions below ${over.end.toString()} from a table of ${over.rows} rows`,
      sliced: `slices a table of ${over.rows} rows up to ${over.end.toString()}`,
      written: `writes ${over.end.toString()} new tokens into a cache of ${over.rows} positions`,
    }[over.kind];
    throw new Error(`${where}: ${seqLen} tokens${o.pastLen > 0 ? ` after ${o.pastLen} cached ones` : ''} need ${end} positions, and ${over.node.describe()} ${reads}: give a shorter --seq-len${o.pastLen > 0 ? " or fewer cached tokens (--dim with the past dim's name)" : ''}`);
  }
  const samples: CalibrationSample[] = [];
  for (let s = 0; s < o.count; s++) {
    const rng = new SplitMix64(o.seed + s);
    const sample: Record<string, HostTensor> = {};
    for (const input of inputs) {
      if (input.shape === undefined) throw new Error(`${where}: input "${input.name}" has no shape: give its calibration tensors in files`);
      const shape = input.shape.map((d, axis) => (typeof d === 'number' ? d : symbolSize(d, o, roles.byAxis.get(`${input.name}:${axis}`) ?? roles.byName.get(d))));
      const n = elementCount(shape);
      const name = input.name.toLowerCase();
      const last = shape[shape.length - 1] ?? 1;
      const isFloat = input.dtype === 'f32' || input.dtype === 'f64' || input.dtype === 'f16' || input.dtype === 'bf16';
      let values: ArrayLike<number>;
      const parameter = parameterValue(name, o.seqLen, o.pastLen);
      if (parameter !== undefined) {
        values = Array<number>(n).fill(parameter);
      } else if (name.includes('mask') || input.dtype === 'bool') {
        // Kept; row r of batch b (b = r / rowsPerBatch) pads its last min(b, last - 1) keys. Kept is 1 unless the
        // model drops a key on true (PyTorch's key_padding_mask, masked_fill masks): mask-polarity.ts
        const perBatch = shape.length >= 2 ? n / shape[0]! : n;
        const [kept, padded] = maskKeepsOnTrue(input.value) ? [1, 0] : [0, 1];
        values = Array.from({ length: n }, (_, k) => {
          const b = Math.floor(k / perBatch);
          return k % last >= last - Math.min(b, last - 1) ? padded : kept;
        });
      } else if (!isFloat && shape.length <= 1 && /length|lens$|_lens_|^lens|seqlen$|_len$/.test(name)) {
        values = Array<number>(n).fill(o.pastLen + o.seqLen);
      } else if (!isFloat && isWriteIndex(input.value)) {
        values = Array<number>(n).fill(o.pastLen);
      } else if (name.includes('position')) {
        values = Array.from({ length: n }, (_, k) => (k % last) + o.pastLen);
      } else if (isFloat) {
        values = gaussians(rng, n);
      } else {
        const bound = gatherBound(input.value) ?? o.intRange;
        values = Array.from({ length: n }, () => Math.floor(rng.nextFloat() * bound));
      }
      sample[input.name] = hostTensorFromNumbers(input.dtype, shape, values);
    }
    samples.push(sample);
  }
  return samples;
}
