// Reading constants through the graph: initializers and Constant nodes, as exporters write them.

import { ONNX_DOMAIN, type Tensor, type Value } from '@attnopt/ir';

/** The constant tensor behind a value: an initializer, or the `value` of a Constant node. */
export function constantTensor(value: Value | undefined): Tensor | undefined {
  if (value === undefined) return undefined;
  if (value.initializer) return value.initializer;
  const p = value.producer;
  if (p && p.domain === ONNX_DOMAIN && p.op === 'Constant') {
    const attr = p.attrs.get('value');
    if (attr?.type === 'tensor') return attr.value;
    const f = p.attrs.get('value_float');
    if (f?.type === 'float') return undefined; // handled by constantNumbers
  }
  return undefined;
}

/** Every element of a numeric constant as float64, or undefined when the value is not a known constant. */
export function constantNumbers(value: Value | undefined): Float64Array | undefined {
  if (value === undefined) return undefined;
  const p = value.producer;
  if (p && p.domain === ONNX_DOMAIN && p.op === 'Constant') {
    const f = p.attrs.get('value_float');
    if (f?.type === 'float') return Float64Array.of(f.value);
    const i = p.attrs.get('value_int');
    if (i?.type === 'int') return Float64Array.of(Number(i.value));
    const fs = p.attrs.get('value_floats');
    if (fs?.type === 'floats') return Float64Array.from(fs.value);
    const is = p.attrs.get('value_ints');
    if (is?.type === 'ints') return Float64Array.from(is.value, Number);
  }
  const t = constantTensor(value);
  if (t === undefined || t.dtype === 'string') return undefined;
  try {
    return t.toFloat64();
  } catch {
    return undefined;
  }
}

/** The value of a constant that holds one number (any shape with one element). */
export function constantScalar(value: Value | undefined): number | undefined {
  const xs = constantNumbers(value);
  return xs !== undefined && xs.length === 1 ? xs[0] : undefined;
}

/** Relative-and-absolute closeness for scales read from files (float32 rounding included). */
export function isClose(a: number, b: number, relTol = 1e-5, absTol = 1e-8): boolean {
  return Math.abs(a - b) <= Math.max(relTol * Math.max(Math.abs(a), Math.abs(b)), absTol);
}
