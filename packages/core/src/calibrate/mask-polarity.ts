// Which value of a mask input keeps a key, read from how the model uses it, so generated masks are "mostly kept"
// whatever the exporter's convention: transformers' attention_mask keeps on 1, while PyTorch's key_padding_mask
// (nn.MultiheadAttention) and masked_fill masks drop on True. The input is followed forward through layout and
// logical ops (Reshape, Expand, Cast, Not, 1 - x, ...) to where it decides a score:
//   Where(m, -big, x)            -> m true drops the key;   Where(m, x, -big) -> m true keeps it
//   m · (-big) (Mul)             -> 1 drops;                (1 - m) · (-big)  -> 1 keeps (one flip on the way)
// -big: a constant <= -1e4 or -inf. The first such use found decides; none found: 1 keeps (the common case).

import type { Node, Value } from '@attnopt/ir';
import { staticNumbers } from '@attnopt/passes';

/**
 * Ops that carry the mask's truth values through unchanged (layout, type, broadcast), and the logical ones that
 * combine it with another mask of the same polarity (nn.MultiheadAttention Or-s key_padding_mask into attn_mask).
 */
const CARRY = new Set(['Reshape', 'Expand', 'Cast', 'Unsqueeze', 'Squeeze', 'Identity', 'Transpose', 'Flatten', 'Tile', 'Slice', 'Gather', 'Concat', 'Or', 'And']);
const BIG = -1e4;

const veryNegative = (v: Value | undefined) => {
  const xs = v === undefined ? undefined : staticNumbers(v);
  return xs !== undefined && xs.length > 0 && xs.every((x) => x <= BIG);
};
const isOne = (v: Value | undefined) => {
  const xs = v === undefined ? undefined : staticNumbers(v);
  return xs !== undefined && xs.length > 0 && xs.every((x) => x === 1);
};

/** Whether a true / 1 in `input` keeps the key (see the comment at the top). */
export function maskKeepsOnTrue(input: Value): boolean {
  const seen = new Set<Value>();
  // breadth first over (value, flipped): the nearest deciding use wins
  let frontier: [Value, boolean][] = [[input, false]];
  for (let depth = 0; depth < 64 && frontier.length > 0; depth++) {
    const next: [Value, boolean][] = [];
    for (const [v, flipped] of frontier) {
      if (seen.has(v)) continue;
      seen.add(v);
      for (const { node, index } of v.uses()) {
        const decided = decides(node, index);
        if (decided !== undefined) return decided !== flipped;
        const out = node.outputs[0];
        if (out === undefined) continue;
        if (CARRY.has(node.op)) next.push([out, flipped]);
        else if (node.op === 'Not') next.push([out, !flipped]);
        else if (node.op === 'Sub' && index === 1 && isOne(node.inputs[0])) next.push([out, !flipped]);
        else if (node.op === 'Equal' && (staticNumbers(node.inputs[1 - index]!)?.every((x) => x === 0) ?? false)) next.push([out, !flipped]);
      }
    }
    frontier = next;
  }
  return true;
}

/** How `node` uses its input `index` to decide a score: true = a true / 1 there keeps the key, undefined = it does not decide. */
function decides(node: Node, index: number): boolean | undefined {
  if (node.op === 'Where' && index === 0) {
    if (veryNegative(node.inputs[1])) return false;
    if (veryNegative(node.inputs[2])) return true;
    return undefined;
  }
  if (node.op === 'Mul' && veryNegative(node.inputs[1 - index])) return false;
  return undefined;
}
