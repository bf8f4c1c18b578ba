// Node attributes, typed as ONNX types them (ints are int64, so bigint), plus the attention spec.

import type { AttentionSpec } from './spec/spec.js';
import type { Graph } from './graph.js';
import type { Tensor } from './tensor.js';

export type Attr =
  | { readonly type: 'int'; readonly value: bigint }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'tensor'; readonly value: Tensor }
  | { readonly type: 'graph'; readonly value: Graph }
  | { readonly type: 'ints'; readonly value: readonly bigint[] }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'strings'; readonly value: readonly string[] }
  | { readonly type: 'tensors'; readonly value: readonly Tensor[] }
  | { readonly type: 'graphs'; readonly value: readonly Graph[] }
  | { readonly type: 'spec'; readonly value: AttentionSpec }
  /** An attribute the IR does not interpret (sparse tensors, type protos, references): kept as encoded. */
  | { readonly type: 'opaque'; readonly kind: string; readonly bytes: Uint8Array };

export type AttrType = Attr['type'];

export const intAttr = (value: number | bigint): Attr => ({ type: 'int', value: BigInt(value) });
export const floatAttr = (value: number): Attr => ({ type: 'float', value });
export const stringAttr = (value: string): Attr => ({ type: 'string', value });
export const intsAttr = (value: readonly (number | bigint)[]): Attr => ({ type: 'ints', value: value.map((v) => BigInt(v)) });
export const floatsAttr = (value: readonly number[]): Attr => ({ type: 'floats', value: [...value] });
export const stringsAttr = (value: readonly string[]): Attr => ({ type: 'strings', value: [...value] });
export const tensorAttr = (value: Tensor): Attr => ({ type: 'tensor', value });
export const graphAttr = (value: Graph): Attr => ({ type: 'graph', value });
export const specAttr = (value: AttentionSpec): Attr => ({ type: 'spec', value });

/** Every graph held by an attribute (subgraphs of If, Loop, Scan, BeamSearch...). */
export function attrGraphs(attr: Attr): readonly Graph[] {
  if (attr.type === 'graph') return [attr.value];
  if (attr.type === 'graphs') return attr.value;
  return [];
}
