// Strided batched operands shared by the sequence kernels. Element (t, r, c) of an operand, t the batch
// index (t = b * inner + h for a (batch, head) pair), lies at
//   base + (t / inner) * so + ((t % inner) / div) * si + r * sr + c * sc
// so one description covers the four layouts (strides of Q, K, V, Y), GQA (div = group: query head h reads
// key/value head h / group), shared matrices (so = si = 0) and contiguous intermediates (so = inner * si).

import { ShaderBuilder, type UniformType } from '../wgsl/builder.js';
import type { ElementType } from './matmul.js';

export interface Operand {
  readonly base: number;
  readonly so: number;
  readonly si: number;
  readonly div: number;
  readonly sr: number;
  readonly sc: number;
}

/** A contiguous [batch, rows, cols] intermediate, batch = outer x inner, or its transpose when `transposed`. */
export function contiguous(inner: number, rows: number, cols: number, transposed = false): Operand {
  return { base: 0, so: inner * rows * cols, si: rows * cols, div: 1, sr: transposed ? 1 : cols, sc: transposed ? cols : 1 };
}

/** One matrix shared by every batch index. */
export function shared(cols: number, transposed = false): Operand {
  return { base: 0, so: 0, si: 0, div: 1, sr: transposed ? 1 : cols, sc: transposed ? cols : 1 };
}

/** The same operand with rows and columns swapped. */
export function transpose(op: Operand): Operand {
  return { ...op, sr: op.sc, sc: op.sr };
}

const FIELDS = ['base', 'so', 'si', 'div', 'sr', 'sc'] as const;

/** Declares the uniforms of operand `name` (u32) on a builder. */
export function declareOperand(b: ShaderBuilder, name: string): void {
  for (const f of FIELDS) b.uniform(`${name}_${f}`, 'u32');
}

/** The uniform values of operand `name`. */
export function operandUniforms(name: string, op: Operand): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of FIELDS) out[`${name}_${f}`] = op[f];
  return out;
}

/** WGSL: the offset of element (t, r, c) of operand `name`, with `inner` the batch's inner extent. */
export function operandOffset(name: string, t: string, r: string, c: string): string {
  return `u.${name}_base + (${t} / u.inner) * u.${name}_so + ((${t} % u.inner) / u.${name}_div) * u.${name}_si + ${r} * u.${name}_sr + ${c} * u.${name}_sc`;
}

/** WGSL: the global thread index of a 1-D grid split over dispatches, returning past `u.total`. */
export function gridIndex(b: ShaderBuilder, workgroupSize: number): string {
  b.uniform('wg_base', 'u32');
  b.uniform('wg_per_row', 'u32');
  b.uniform('total', 'u32');
  return `  let idx = (u.wg_base + wid.y * u.wg_per_row + wid.x) * ${workgroupSize}u + lid;\n  if (idx >= u.total) { return; }`;
}

/** Threads per workgroup of the sequence kernels. */
export const SEQUENCE_WORKGROUP = 64;

/**
 * The start of a kernel over the rows of one input operand X (Q or K in any layout, f32 or f16), one thread per
 * output element: the grid index, the uniforms `rows` and `inner` then `extra`, X's layout and X itself.
 * Returns the builder (the kernel adds its own buffers) and the WGSL lines that compute `idx`.
 */
export function operandRowsProgram(name: string, input: ElementType, extra: readonly (readonly [string, UniformType])[]): { b: ShaderBuilder; index: string } {
  const b = new ShaderBuilder(name);
  if (input === 'f16') b.enableF16();
  const index = gridIndex(b, SEQUENCE_WORKGROUP);
  b.uniform('rows', 'u32');
  b.uniform('inner', 'u32');
  for (const [field, type] of extra) b.uniform(field, type);
  declareOperand(b, 'x');
  b.storageArray('X', input);
  return { b, index };
}
