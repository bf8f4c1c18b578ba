// onnxruntime's FusedMatMul (com.microsoft), which its graph optimizer writes for a MatMul with a Transpose of an
// operand and a scale folded in; a model saved after onnxruntime's optimizations holds it where attention was
// not fused:
//   FusedMatMul(Q, K, transB = 1, alpha = s) -> s · Q·Kᵀ, K read as [batch..., T, D] (no Transpose to find)
//   FusedMatMul(Q, Kᵀ, alpha = s)            -> s · Q·Kᵀ, read as a MatMul
//   FusedMatMul(P, V, alpha = 1)             -> P·V, read as a MatMul
// Q transposed (transA) or a batch axis moved (transBatchA / transBatchB) is not read.

import type { Node } from '@attnopt/ir';
import { attrFloat, attrInt, MS_DOMAIN } from '@attnopt/rewrite';

export interface FusedMatMul {
  readonly alpha: number;
  /** B as written is the right operand transposed on its last two axes (Kᵀ read from K). */
  readonly transB: boolean;
}

/** Whether `n` is onnxruntime's FusedMatMul. */
export const isFusedMatMul = (n: Node | undefined): boolean => n !== undefined && n.op === 'FusedMatMul' && n.domain === MS_DOMAIN;

/** The FusedMatMul's scale and transB, or the reason it is not read as a matrix product of Q (or P) and the other operand. */
export function fusedMatMul(n: Node): FusedMatMul | string {
  for (const name of ['transA', 'transBatchA', 'transBatchB']) {
    if ((attrInt(n, name) ?? 0) !== 0) return `${n.describe()} sets ${name}: a FusedMatMul that moves the left operand's or a batch axis is not read`;
  }
  return { alpha: attrFloat(n, 'alpha') ?? 1, transB: (attrInt(n, 'transB') ?? 0) !== 0 };
}
