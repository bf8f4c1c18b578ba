// Angular LSH on the device (semantics: @attnopt/ir spec/semantics/lsh.ts).
// lshHashProgram: code(t, r, i) = argmax over [x R_r ; -x R_r] (first maximum wins) of row i of operand X
//   (unscaled Q or K, any layout), R the f32 rotations [round][dim][bucket/2]; one thread per (t, r, i);
//   written as u32 at out_base + (t * rounds + r) * rows + i.
// lshChunkProgram: per round, rows sorted by (bucket, index) and cut into chunks of `chunk`: the chunk of
//   row i is #{x : h_x < h_i or (h_x == h_i and x < i)} / chunk (its sorted position, counted).

import { ShaderBuilder, type WgslProgram } from '../wgsl/builder.js';
import type { ElementType } from './matmul.js';
import { gridIndex, operandOffset, operandRowsProgram, SEQUENCE_WORKGROUP } from './operand.js';

export function lshHashProgram(input: ElementType, d: number, buckets: number): WgslProgram {
  const half = buckets / 2;
  const { b, index } = operandRowsProgram('lsh_hash', input, [
    ['rounds', 'u32'],
    ['out_base', 'u32'],
  ]);
  b.storageArray('ROT', 'f32');
  b.storageArray('CODES', 'u32', 'read_write');
  const body = /* wgsl */ `${index}
  let t = idx / (u.rounds * u.rows);
  let r = (idx / u.rows) % u.rounds;
  let i = idx % u.rows;
  let xo = ${operandOffset('x', 't', 'i', '0u')};
  var proj: array<f32, ${half}>;
  for (var c = 0u; c < ${d}u; c++) {
    let x = f32(X[xo + c * u.x_sc]);
    for (var k = 0u; k < ${half}u; k++) { proj[k] += x * ROT[(r * ${d}u + c) * ${half}u + k]; }
  }
  var best = proj[0];
  var arg = 0u;
  for (var k = 1u; k < ${half}u; k++) { if (proj[k] > best) { best = proj[k]; arg = k; } }
  for (var k = 0u; k < ${half}u; k++) { if (-proj[k] > best) { best = -proj[k]; arg = ${half}u + k; } }
  CODES[u.out_base + idx] = arg;`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [input, d, buckets] });
}

export function lshChunkProgram(): WgslProgram {
  const b = new ShaderBuilder('lsh_chunk');
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  b.uniform('rows', 'u32');
  b.uniform('chunk', 'u32');
  b.uniform('in_base', 'u32');
  b.uniform('out_base', 'u32');
  b.storageArray('CODES', 'u32', 'read_write');
  const body = /* wgsl */ `${index}
  let list = u.in_base + (idx / u.rows) * u.rows;
  let i = idx % u.rows;
  let h = CODES[list + i];
  var pos = 0u;
  for (var x = 0u; x < u.rows; x++) {
    let hx = CODES[list + x];
    if (hx < h || (hx == h && x < i)) { pos++; }
  }
  CODES[u.out_base + idx] = pos / u.chunk;`;
  return b.build({ workgroupSize: SEQUENCE_WORKGROUP, body, keyParts: [] });
}
