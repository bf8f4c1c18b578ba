// QDQ-quantized attention: a QuantizeLinear -> DequantizeLinear pair on the scores or on the probabilities rounds
// them to 8 (or 4, 16) bits inside the site. attnopt::Attention computes them in float, so such a site is
// another function: it is not lifted, and the reason names the pair. (QDQ pairs on Q, K and V sit outside the site:
// those lift, the dequantized values read as Q, K and V.)

import type { Node, Value } from '@attnopt/ir';

const isQdqOp = (n: Node | undefined, op: string): boolean => n !== undefined && n.op === op && (n.domain === '' || n.domain === 'com.microsoft');

/** Why a site whose `what` (the scores, the probabilities) pass through the quantization `n` is not lifted. */
const reason = (n: Node, what: string) =>
  `${n.describe()} quantizes ${what} inside the site (a QDQ-quantized model): attnopt::Attention computes them in float, so the site is not lifted`;

/** The reason, when `v` (read back from the Softmax towards Q·Kᵀ) is dequantized from a QuantizeLinear. */
export function quantizedScores(v: Value): string | undefined {
  const dq = v.producer;
  if (!isQdqOp(dq, 'DequantizeLinear')) return undefined;
  return reason(dq!, 'the scores');
}

/** The reason, when the probabilities `p` go into a QuantizeLinear on their way to P·V. */
export function quantizedProbabilities(p: Value): string | undefined {
  const q = p.uses().find((u) => isQdqOp(u.node, 'QuantizeLinear'))?.node;
  return q && reason(q, 'the probabilities');
}
