// Batched strided matmul: C(t, i, j) = alpha * sum_c A(t, i, c) B(t, c, j), t < batch, i < M, j < N, c < K,
// accumulated in f32, one thread per output element (A, B, C any operands: see operand.ts). Naive on
// purpose: the low-rank sequences multiply small matrices (rank, landmarks, features), and on lavapipe
// tiling buys nothing (TOOLCHAIN.md).

import { ShaderBuilder, type WgslProgram } from '../wgsl/builder.js';
import { declareOperand, gridIndex, operandOffset, SEQUENCE_WORKGROUP } from './operand.js';

export type ElementType = 'f32' | 'f16';

export function matmulProgram(types: { a: ElementType; b: ElementType; c: ElementType }): WgslProgram {
  const b = new ShaderBuilder('matmul');
  if (types.a === 'f16' || types.b === 'f16' || types.c === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  for (const f of ['m', 'n', 'k', 'inner']) b.uniform(f, 'u32');
  b.uniform('alpha', 'f32');
  for (const o of ['a', 'b', 'c']) declareOperand(b, o);
  b.storageArray('A', types.a);
  b.storageArray('B', types.b);
  b.storageArray('C', types.c, 'read_write');
  const body = /* wgsl */ `${index}
  let t = idx / (u.m * u.n);
  let rem = idx % (u.m * u.n);
  let i = rem / u.n;
  let j = rem % u.n;
  let ao = ${operandOffset('a', 't', 'i', '0u')};
  let bo = ${operandOffset('b', 't', '0u', 'j')};
  var acc = 0.0;
  for (var c = 0u; c < u.k; c++) { acc += f32(A[ao + c * u.a_sc]) * f32(B[bo + c * u.b_sr]); }
  C[${operandOffset('c', 't', 'i', 'j')}] = ${types.c}(u.alpha * acc);`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [types.a, types.b, types.c] });
}
