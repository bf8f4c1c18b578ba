// Performer FAVOR+ positive random features (semantics: @attnopt/ir spec/semantics/performer-features.ts):
//   phi(x)_f = m^(-1/2) exp(w_f . x - |x|^2 / 2),  x = sqrt(scale) * row
// for every row of an input operand X (Q or K, any layout, f32 or f16), into a contiguous f32
// [batch, rows, m] buffer; W is the f32 [m, d] projection. One thread per (batch, row, feature).

import type { WgslProgram } from '../wgsl/builder.js';
import type { ElementType } from './matmul.js';
import { operandOffset, operandRowsProgram, SEQUENCE_WORKGROUP } from './operand.js';

export function performerFeaturesProgram(input: ElementType, d: number): WgslProgram {
  const { b, index } = operandRowsProgram('performer_features', input, [
    ['features', 'u32'],
    ['root', 'f32'],
    ['norm', 'f32'],
  ]);
  b.storageArray('W', 'f32');
  b.storageArray('PHI', 'f32', 'read_write');
  const body = /* wgsl */ `${index}
  let t = idx / (u.rows * u.features);
  let i = (idx / u.features) % u.rows;
  let f = idx % u.features;
  let xo = ${operandOffset('x', 't', 'i', '0u')};
  var dot = 0.0;
  var sq = 0.0;
  for (var c = 0u; c < ${d}u; c++) {
    let x = u.root * f32(X[xo + c * u.x_sc]);
    dot += W[f * ${d}u + c] * x;
    sq += x * x;
  }
  PHI[idx] = u.norm * exp(dot - 0.5 * sq);`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [input, d] });
}
