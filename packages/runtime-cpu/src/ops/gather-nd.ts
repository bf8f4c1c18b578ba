// GatherND(data, indices) with batch_dims (opset 12): the last axis of `indices` holds k coordinates into
// the axes batch_dims .. batch_dims + k - 1 of data (negative ones wrap); each tuple selects the slice of the
// remaining axes. Output shape: indices.shape[:-1] ++ data.shape[batch_dims + k:].

import { elementCount } from '@attnopt/ir';
import { attrInt } from '../attrs.js';
import { stridesOf } from '../broadcast.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, intValues, isFloat, shapeString } from '../tensor.js';

type Elements = ArrayLike<number | bigint>;
type Writable = { [k: number]: number | bigint };

/**
 * Flat offsets (into data) of the slices that the tuples of `indices` select, one per tuple in order; also
 * the tuple length k and the elements per slice. Shared by GatherND and ScatterND.
 */
export function tupleOffsets(data: ExecTensor, indices: ExecTensor, batchDims: number): { offsets: Float64Array; k: number; slice: number } {
  if (isFloat(indices.dtype)) throw new Error(`indices must be an integer tensor, got ${indices.dtype}`);
  const r = data.shape.length;
  const q = indices.shape.length;
  if (q < 1) throw new Error('indices must have rank >= 1');
  if (batchDims < 0 || batchDims >= Math.min(q, r)) throw new Error(`batch_dims ${batchDims} must be below the ranks of data ${shapeString(data.shape)} and indices ${shapeString(indices.shape)}`);
  for (let a = 0; a < batchDims; a++) {
    if (data.shape[a] !== indices.shape[a]) throw new Error(`batch axis ${a}: data ${shapeString(data.shape)} and indices ${shapeString(indices.shape)} differ`);
  }
  const k = indices.shape[q - 1]!;
  if (k < 1 || k > r - batchDims) throw new Error(`indices ${shapeString(indices.shape)} index ${k} axes, data ${shapeString(data.shape)} has ${r - batchDims} after the batch axes`);
  const strides = stridesOf(data.shape);
  const slice = elementCount(data.shape.slice(batchDims + k));
  const batches = elementCount(data.shape.slice(0, batchDims));
  const batchStride = elementCount(data.shape.slice(batchDims));
  const idx = intValues(indices);
  const tuples = idx.length / k;
  const perBatch = batches === 0 ? 0 : tuples / batches;
  const offsets = new Float64Array(tuples);
  for (let t = 0; t < tuples; t++) {
    let at = Math.floor(t / perBatch) * batchStride;
    for (let j = 0; j < k; j++) {
      const a = batchDims + j;
      const dim = data.shape[a]!;
      let i = idx[t * k + j]!;
      if (i < -dim || i >= dim) throw new Error(`index ${i} is out of range for axis ${a} of size ${dim}`);
      if (i < 0) i += dim;
      at += i * strides[a]!;
    }
    offsets[t] = at;
  }
  return { offsets, k, slice };
}

export function gatherND(data: ExecTensor, indices: ExecTensor, batchDims: number): ExecTensor {
  const { offsets, k, slice } = tupleOffsets(data, indices, batchDims);
  const shape = [...indices.shape.slice(0, -1), ...data.shape.slice(batchDims + k)];
  const out = allocTensor(data.dtype, shape);
  const s = data.data as Elements;
  const o = out.data as Writable;
  let w = 0;
  for (const base of offsets) for (let c = 0; c < slice; c++) o[w++] = s[base + c]!;
  return out;
}

export const GATHER_ND_OPS: OpTable = {
  '::GatherND': {
    minInputs: 2,
    run: (ctx) => [gatherND(input(ctx, 0), input(ctx, 1), attrInt(ctx.node, 'batch_dims', 0))],
  } satisfies OpKernel,
};
