// IsNaN and IsInf (detect_negative, detect_positive): boolean tensors classifying float elements.

import { attrInt } from '../attrs.js';
import { input, type OpKernel, type OpTable } from '../kernel.js';
import { allocTensor, type ExecTensor, isFloat, numberData } from '../tensor.js';

/** A bool tensor: test(x) per element of a float tensor. */
export function classify(x: ExecTensor, test: (v: number) => boolean): ExecTensor {
  if (!isFloat(x.dtype)) throw new Error(`input must be a float tensor, got ${x.dtype}`);
  const src = numberData(x);
  const out = allocTensor('bool', x.shape);
  for (let k = 0; k < src.length; k++) out.data[k] = test(src[k]!) ? 1 : 0;
  return out;
}

const isInf: OpKernel = {
  minInputs: 1,
  run: (ctx) => {
    const neg = attrInt(ctx.node, 'detect_negative', 1) !== 0;
    const pos = attrInt(ctx.node, 'detect_positive', 1) !== 0;
    return [classify(input(ctx, 0), (v) => (pos && v === Infinity) || (neg && v === -Infinity))];
  },
};

export const FLOAT_CLASS_OPS: OpTable = {
  '::IsNaN': { minInputs: 1, run: (ctx) => [classify(input(ctx, 0), (v) => v !== v)] },
  '::IsInf': isInf,
};
