// The additive bias of an attention call, broadcast to [batch, heads, nq, nk] element by element.

import { type BoolTensor, isBoolTensor, strides, type Tensor64 } from './tensor.js';

/** The bias value for (batch, head, query, key): an additive float, -inf for a masked key. */
export type BiasLookup = (b: number, h: number, i: number, j: number) => number;

/**
 * Reads a float bias or boolean keep-mask of rank 1..4, broadcast numpy-style (aligned to the right) to
 * [batch, heads, nq, nk]: every leading dimension must be 1 or equal to the target. The last dimension
 * may be SHORTER than nk (ONNX `Attention` allows it): the missing keys are padded with -inf (float) or
 * false (boolean), i.e. masked. A boolean mask maps true -> 0 and false -> -inf.
 */
export function biasLookup(bias: Tensor64 | BoolTensor, target: readonly [number, number, number, number]): BiasLookup {
  const rank = bias.shape.length;
  if (rank < 1 || rank > 4) throw new Error(`attention bias must have rank 1 to 4, got [${bias.shape.join(', ')}]`);
  const shape4 = [...new Array<number>(4 - rank).fill(1), ...bias.shape];
  const names = ['batch', 'heads', 'nq', 'nk'];
  for (let k = 0; k < 3; k++) {
    if (shape4[k] !== 1 && shape4[k] !== target[k]) {
      throw new Error(
        `attention bias [${bias.shape.join(', ')}] does not broadcast to [${target.join(', ')}]: ${names[k]} is ${shape4[k]}`,
      );
    }
  }
  const width = shape4[3]!;
  if (width > target[3]) {
    throw new Error(`attention bias [${bias.shape.join(', ')}] has ${width} keys, more than the ${target[3]} keys`);
  }
  const st = strides(shape4).map((s, k) => (shape4[k] === 1 ? 0 : s));
  const [sb, sh, si, sj] = st as [number, number, number, number];
  if (isBoolTensor(bias)) {
    const data = bias.data;
    return (b, h, i, j) => (j >= width ? -Infinity : data[b * sb + h * sh + i * si + j * sj] ? 0 : -Infinity);
  }
  const data = bias.data;
  return (b, h, i, j) => (j >= width ? -Infinity : data[b * sb + h * sh + i * si + j * sj]!);
}
