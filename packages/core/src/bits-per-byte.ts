// Bits per byte of a byte-level language model: the model's own measure of quality, so verify can say how much an
// optimized model loses in the terms its user trained it in. Row t of the logits [batch, seq, V] predicts the id at
// position t + 1 of the input ids [batch, seq]; the score of a row is -log2 softmax(row)[next id], in float64,
// summed over every row that has a next id (seq - 1 per batch row). With a vocabulary of the 256 byte values this
// is bits per byte; with another vocabulary it is bits per token.

import { logSumExp } from '@attnopt/ir';
import type { CalibrationSample, HostTensor } from './calibrate/index.js';

/** When verify scores bits per byte: 'auto' for byte LMs (input_ids of bytes, logits over 256 classes), 'bpb' always. */
export type VerifyMetric = 'auto' | 'bpb';

export const VERIFY_METRICS: readonly VerifyMetric[] = ['auto', 'bpb'];

const BYTES = 256;
const INTEGER_DTYPES = new Set(['i64', 'i32', 'u8', 'i8', 'u16', 'i16', 'u32']);

/** The ids a sample's logits predict: `input_ids`, or with metric 'bpb' the sample's only integer input. */
export function targetIds(sample: CalibrationSample, metric: VerifyMetric): { name: string; tensor: HostTensor } | undefined {
  const named = sample['input_ids'];
  if (named !== undefined && INTEGER_DTYPES.has(named.dtype)) return { name: 'input_ids', tensor: named };
  if (metric !== 'bpb') return undefined;
  const ints = Object.entries(sample).filter(([, t]) => INTEGER_DTYPES.has(t.dtype));
  return ints.length === 1 ? { name: ints[0]![0], tensor: ints[0]![1] } : undefined;
}

/** Bits summed over the predicted positions, and how many there were. */
export interface BitsSum {
  readonly bits: number;
  readonly positions: number;
}

/**
 * -log2 softmax(logits[b, t])[ids[b, t + 1]] summed over b and t < seq - 1, or undefined when the shapes do not
 * pair ([batch, seq] ids with [batch, seq, V] logits) or, for 'auto', when V is not 256 or an id is not a byte.
 * Throws for 'bpb' when they do not pair (the message names the input and the output).
 */
export function nextIdBits(logits: Float64Array, logitsShape: readonly number[], ids: { name: string; tensor: HostTensor }, output: string, metric: VerifyMetric): BitsSum | undefined {
  const fail = (why: string): undefined => {
    if (metric === 'bpb') throw new Error(`bits per byte: output ${output} against input ${ids.name}: ${why}`);
    return undefined;
  };
  const [batch, seq, vocab] = logitsShape as [number, number, number];
  const idShape = ids.tensor.shape;
  if (logitsShape.length !== 3 || idShape.length !== 2 || idShape[0] !== batch || idShape[1] !== seq) {
    return fail(`logits [${logitsShape.join(', ')}] do not pair with ids [${idShape.join(', ')}] as [batch, seq, vocab] and [batch, seq]`);
  }
  if (metric === 'auto' && vocab !== BYTES) return undefined;
  const data = ids.tensor.data as ArrayLike<number | bigint>;
  let bits = 0;
  let positions = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seq; t++) {
      const target = Number(data[b * seq + t + 1]!);
      if (!(Number.isInteger(target) && target >= 0 && target < vocab)) return fail(`id ${target} at [${b}, ${t + 1}] is not a class of the ${vocab} logits`);
      const row = logits.subarray((b * seq + t) * vocab, (b * seq + t + 1) * vocab);
      bits += (logSumExp(row) - row[target]!) / Math.LN2;
      positions++;
    }
  }
  return { bits, positions };
}
