// com.microsoft Attention whose weights have a symbolic width and no qkv_hidden_sizes: the head size D is
// (width / 3) / num_heads, known only at run time. The prelude splits X W + b into Q, K, V in bhsd (the
// layout where attnopt::Attention reads D from the tensors, headDim 0) and, without a `scale` attribute,
// multiplies Q by onnxruntime's default 1/sqrt(D) computed at run time in f32 (the Attention's scale is then 1);
// the postlude turns Y [B, N, S, D] back into [B, S, width / 3].

import { type DType, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

export interface RuntimeHeadQkv {
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  /** [B, S] of X, for the postlude. */
  readonly batchSeq: Value;
  /** [width / 3]: the hidden size of Q, K, V and Y. */
  readonly hidden: Value;
}

const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;

/**
 * Gemm(Flatten(X), W, b) [B·S, 3·N·D] -> Reshape [B, S, 3, N, D] (D = width / (3 N) from W's shape)
 * -> Gather 0 / 1 / 2 on axis 2 -> Transpose to [B, N, S, D]; Q times 1/sqrt(D) when `defaultScale`.
 */
export function runtimeHeadQkv(b: NodeBuilder, x: Value, w: Value, projBias: Value, numHeads: number, defaultScale: boolean, dtype: DType): RuntimeHeadQkv {
  // onnxruntime's GenerateQKV accumulates X W onto the broadcast bias (GEMM, beta = 1), as Gemm does
  const rows = b.op('Flatten', [x], 'x_2d', axis(2));
  const flat = b.op('Gemm', [rows, w, projBias], 'qkv_gemm');
  const batchSeq = b.op('Slice', [b.op('Shape', [x], 'x_shape'), b.ints('x_shape_start', [0]), b.ints('x_shape_end', [2])], 'x_batch_seq');
  const width = b.op('Slice', [b.op('Shape', [w], 'w_shape'), b.ints('w_width_start', [1]), b.ints('w_width_end', [2])], 'qkv_width');
  const headDim = b.op('Div', [width, b.ints('qkv_head_count', [3 * numHeads])], 'head_dim');
  const hidden = b.op('Div', [width, b.ints('qkv_parts', [3])], 'hidden');
  const shape = b.op('Concat', [batchSeq, b.ints('qkv_parts_heads', [3, numHeads]), headDim], 'qkv_heads_shape', axis(0));
  const qkv = b.op('Reshape', [flat, shape], 'qkv_heads'); // [B, S, 3, N, D]
  const part = (k: number, what: string) =>
    b.transpose(b.op('Gather', [qkv, b.scalar(`${what}_index`, 'i64', k)], `${what}_bshd`, axis(2)), [0, 2, 1, 3], `${what}_bhsd`);
  let q = part(0, 'q');
  if (defaultScale) {
    // onnxruntime: scale = 1.0f / sqrt(static_cast<float>(head_size))
    const inv = b.op('Reciprocal', [b.op('Sqrt', [b.cast(headDim, 'f32', 'head_dim_f32')], 'head_dim_sqrt')], 'default_scale');
    q = b.op('Mul', [q, dtype === 'f32' ? inv : b.cast(inv, dtype, 'default_scale_cast')], 'q_scaled');
  }
  return { q, k: part(1, 'k'), v: part(2, 'v'), batchSeq, hidden };
}

/** Y [B, N, S, D] -> [B, S, N·D]: Transpose, then Reshape to [B, S] ++ [width / 3]. */
export function runtimeHeadOutput(b: NodeBuilder, y: Value, qkv: RuntimeHeadQkv): Value {
  const bsnd = b.transpose(y, [0, 2, 1, 3], 'y_bshd');
  const shape = b.op('Concat', [qkv.batchSeq, qkv.hidden], 'y_shape', axis(0));
  return b.op('Reshape', [bsnd, shape], 'y');
}
