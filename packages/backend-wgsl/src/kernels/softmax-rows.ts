// Row softmax in place over a contiguous f32 [rows, n] buffer (one thread per row, max-subtracted):
// x_ij <- exp(x_ij - max_j x_ij) / sum_j exp(x_ij - max_j x_ij), as softmaxRows of @attnopt/reference.

import { ShaderBuilder, type WgslProgram } from '../wgsl/builder.js';
import { gridIndex, SEQUENCE_WORKGROUP } from './operand.js';

export function softmaxRowsProgram(): WgslProgram {
  const b = new ShaderBuilder('softmax_rows');
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  b.uniform('n', 'u32');
  b.storageArray('X', 'f32', 'read_write');
  const body = /* wgsl */ `${index}
  let o = idx * u.n;
  var m = X[o];
  for (var j = 1u; j < u.n; j++) { m = max(m, X[o + j]); }
  var s = 0.0;
  for (var j = 0u; j < u.n; j++) { let e = exp(X[o + j] - m); X[o + j] = e; s += e; }
  let inv = 1.0 / s;
  for (var j = 0u; j < u.n; j++) { X[o + j] *= inv; }`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [] });
}
