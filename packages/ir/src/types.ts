// The type of a value: a tensor (dtype and shape, where the shape may be symbolic or of unknown rank)
// or one of ONNX's container types. Printed by printType (text/print.ts).

import type { DType } from './dtype.js';
import { type Shape, shapesEqual } from './shape.js';

export type ValueType =
  | { readonly kind: 'tensor'; readonly dtype: DType; readonly shape?: Shape }
  | { readonly kind: 'sparse'; readonly dtype: DType; readonly shape?: Shape }
  | { readonly kind: 'sequence'; readonly elem: ValueType }
  | { readonly kind: 'optional'; readonly elem: ValueType }
  | { readonly kind: 'map'; readonly key: DType; readonly value: ValueType };

export type TensorType = Extract<ValueType, { kind: 'tensor' }>;

export function tensorType(dtype: DType, shape?: Shape): TensorType {
  return shape === undefined ? { kind: 'tensor', dtype } : { kind: 'tensor', dtype, shape };
}

export function typesEqual(a: ValueType | undefined, b: ValueType | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  switch (a.kind) {
    case 'tensor':
    case 'sparse':
      return a.kind === b.kind && a.dtype === (b as typeof a).dtype && shapesEqual(a.shape, (b as typeof a).shape);
    case 'sequence':
    case 'optional':
      return a.kind === b.kind && typesEqual(a.elem, (b as typeof a).elem);
    case 'map':
      return b.kind === 'map' && a.key === b.key && typesEqual(a.value, b.value);
  }
}
