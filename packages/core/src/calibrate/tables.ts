// The tables a model indexes (embeddings, position tables, rotary caches): how many rows an index may reach.

import type { Value } from '@attnopt/ir';

/** The shape of a table: its initializer's, else its declared one. */
export const tableShape = (t: Value | undefined) => t?.initializer?.shape ?? (t?.type?.kind === 'tensor' ? t.type.shape : undefined);

/**
 * The exclusive bound on the values of an integer input: the fewest rows of the tables it is gathered from
 * (ids shared by several embeddings must be valid in each), a rotary embedding's cos / sin cache and onnxruntime's
 * EmbedLayerNormalization tables included.
 */
export function gatherBound(v: Value, depth = 0): number | undefined {
  let bound: number | undefined;
  const keep = (b: number | undefined) => {
    if (b !== undefined) bound = bound === undefined ? b : Math.min(bound, b);
  };
  for (const { node, index } of v.uses()) {
    if ((node.op === 'Cast' || node.op === 'Identity' || node.op === 'Unsqueeze' || node.op === 'Reshape' || node.op === 'Expand') && index === 0 && depth < 4) {
      keep(gatherBound(node.outputs[0]!, depth + 1));
    } else if (node.op === 'EmbedLayerNormalization' && node.domain === 'com.microsoft' && (index === 0 || index === 1 || index === 8)) {
      // input ids, segment ids and position ids index the word, segment and position tables (inputs 2, 4, 3)
      const rows = tableShape(node.inputs[index === 0 ? 2 : index === 1 ? 4 : 3])?.[0];
      if (typeof rows === 'number' && rows > 0) keep(rows);
    } else if (node.op === 'RotaryEmbedding' && ((node.domain === 'com.microsoft' && index === 1) || (node.domain === '' && index === 3))) {
      // position ids index the rows of the cos / sin cache: [max positions, rotary dim / 2]
      const shape = tableShape(node.inputs[node.domain === '' ? 1 : 2]);
      const rows = shape?.length === 2 ? shape[0] : undefined;
      if (typeof rows === 'number' && rows > 0) keep(rows);
    } else if (node.op === 'Gather' && index === 1) {
      const a = node.attrs.get('axis');
      const axis = a?.type === 'int' ? Number(a.value) : 0;
      const shape = tableShape(node.inputs[0]);
      const rows = shape?.[axis < 0 ? shape.length + axis : axis];
      if (typeof rows === 'number' && rows > 0) keep(rows);
    }
  }
  return bound;
}
