// Y(t, i, c) = num(t, i, c) / den(t, i): the normalization of linear attention (Performer), from contiguous
// f32 num [batch, rows, cols] and den [batch, rows] into the output operand Y (its layout and dtype).

import { ShaderBuilder, type WgslProgram } from '../wgsl/builder.js';
import type { ElementType } from './matmul.js';
import { declareOperand, gridIndex, operandOffset, SEQUENCE_WORKGROUP } from './operand.js';

export function rowDivideProgram(out: ElementType): WgslProgram {
  const b = new ShaderBuilder('row_divide');
  if (out === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  b.uniform('rows', 'u32');
  b.uniform('cols', 'u32');
  b.uniform('inner', 'u32');
  declareOperand(b, 'y');
  b.storageArray('NUM', 'f32');
  b.storageArray('DEN', 'f32');
  b.storageArray('Y', out, 'read_write');
  const body = /* wgsl */ `${index}
  let t = idx / (u.rows * u.cols);
  let i = (idx / u.cols) % u.rows;
  let c = idx % u.cols;
  Y[${operandOffset('y', 't', 'i', 'c')}] = ${out}(NUM[idx] / DEN[t * u.rows + i]);`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [out] });
}
