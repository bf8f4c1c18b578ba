// GQA as exporters repeat K/V heads (Llama's repeat_kv):
//   Reshape(Expand(Unsqueeze(K, axis 2), [B, kvH, g, T, D]), [B, kvH·g, T, D]) -> K with kvNumHeads = kvH
// (each group of g consecutive query heads reads one key/value head).

import type { Dim, Node, Value } from '@attnopt/ir';
import { onnxOp } from './chain.js';
import { shapeOf, staticNumbers } from '../../analysis/shapes.js';

export interface KvRepeat {
  readonly source: Value;
  readonly kvNumHeads: number;
  readonly nodes: readonly Node[];
}

/** Two dims proven equal: the same number or the same named symbol ('?' proves nothing). */
const same = (a: Dim | undefined, b: Dim | undefined) => a !== undefined && a === b && a !== '?';

/** The un-repeated K (or V) behind a repeat-interleave of heads, when the shapes prove it exactly. */
export function matchKvRepeat(v: Value): KvRepeat | undefined {
  const reshape = onnxOp(v, 'Reshape');
  const expand = reshape && onnxOp(reshape.inputs[0], 'Expand');
  const unsq = expand && onnxOp(expand.inputs[0], 'Unsqueeze');
  if (!reshape || !expand || !unsq) return undefined;
  const axesAttr = unsq.attrs.get('axes');
  const axes = axesAttr?.type === 'ints' ? axesAttr.value.map(Number) : [...(staticNumbers(unsq.inputs[1]) ?? [])];
  if (axes.length !== 1 || (axes[0] !== 2 && axes[0] !== -3)) return undefined;
  const source = unsq.inputs[0]!;
  const src = shapeOf(source);
  const expanded = shapeOf(expand.outputs[0]);
  const out = shapeOf(v);
  if (!src || !expanded || !out || src.length !== 4 || expanded.length !== 5 || out.length !== 4) return undefined;
  const [kvH, g] = [expanded[1], expanded[2]];
  if (typeof kvH !== 'number' || typeof g !== 'number' || src[1] !== kvH || out[1] !== kvH * g) return undefined;
  // the Expand repeats axis 2 only: batch, length and head size pass through unchanged
  if (!same(expanded[0], src[0]) || !same(expanded[3], src[2]) || !same(expanded[4], src[3])) return undefined;
  // the Reshape merges axes 1 and 2 only: batch and head size proven, the length by the element count
  // (B · kvH · g · T · D elements into [B, kvH·g, ?, D] leave T)
  if (!same(out[0], src[0]) || !same(out[3], src[3]) || !(same(out[2], src[2]) || out[2] === '?')) return undefined;
  return { source, kvNumHeads: kvH, nodes: [reshape, expand, unsq] };
}
