// Shapes of the quantization ops that quantized exports put around and inside attention: QDQ pairs
// (QuantizeLinear / DequantizeLinear, in the ONNX and com.microsoft domains), dynamic quantization, and the
// quantized matrix products of onnxruntime (QLinearMatMul, MatMulNBits, MatMulBnb4, DynamicQuantizeMatMul,
// MatMulIntegerToFloat). Each keeps or contracts shapes like its float counterpart; only the element type differs.

import { dtypeFromOnnx, type Node } from '@attnopt/ir';
import { constant } from './expr.js';
import { type Info, intAttr, matmulOf, type RuleContext } from './info.js';
import type { Rule } from './rules-data.js';

/** QuantizeLinear: x's shape; the zero point's type, else output_dtype (opset 21), else uint8. */
function quantize(n: Node, ctx: RuleContext): Info[] {
  const to = intAttr(n, 'output_dtype');
  const dtype = ctx.info(n.inputs[2])?.dtype ?? (to ? dtypeFromOnnx(to) : 'u8');
  return [{ shape: ctx.info(n.inputs[0])?.shape, dtype }];
}

/** DequantizeLinear: x's shape in the scale's type (or output_dtype where given). */
function dequantize(n: Node, ctx: RuleContext): Info[] {
  const to = intAttr(n, 'output_dtype');
  return [{ shape: ctx.info(n.inputs[0])?.shape, dtype: to ? dtypeFromOnnx(to) : ctx.info(n.inputs[1])?.dtype }];
}

/** DynamicQuantizeLinear: y (uint8, x's shape), its scale (f32 scalar) and zero point (uint8 scalar). */
function dynamicQuantize(n: Node, ctx: RuleContext): Info[] {
  return [{ shape: ctx.info(n.inputs[0])?.shape, dtype: 'u8' }, { shape: [], dtype: 'f32' }, { shape: [], dtype: 'u8' }];
}

/** QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp): a · b in y_zp's type. */
function qlinearMatmul(n: Node, ctx: RuleContext): Info[] {
  return matmulOf(ctx, ctx.info(n.inputs[0])?.shape, ctx.info(n.inputs[3])?.shape, ctx.info(n.inputs[7])?.dtype);
}

/** A product of A with a packed weight of N columns (MatMulNBits, MatMulBnb4): [..., K] -> [..., N], in A's type. */
function packedWeightMatmul(n: Node, ctx: RuleContext): Info[] {
  const a = ctx.info(n.inputs[0]);
  const cols = intAttr(n, 'N');
  if (!a?.shape || a.shape.length === 0 || cols === undefined) return [{ dtype: a?.dtype }];
  return [{ shape: [...a.shape.slice(0, -1), constant(cols)], dtype: a.dtype }];
}

/** A · B of quantized inputs, dequantized to float: the scale's type (MatMulIntegerToFloat's a_scale), else f32. */
function matmulToFloat(n: Node, ctx: RuleContext): Info[] {
  const dtype = n.op === 'MatMulIntegerToFloat' ? (ctx.info(n.inputs[2])?.dtype ?? 'f32') : 'f32';
  return matmulOf(ctx, ctx.info(n.inputs[0])?.shape, ctx.info(n.inputs[1])?.shape, dtype);
}

export const QUANTIZED_RULES: Record<string, Rule> = {
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
  DynamicQuantizeLinear: dynamicQuantize,
  QLinearMatMul: qlinearMatmul,
  MatMulNBits: packedWeightMatmul,
  MatMulBnb4: packedWeightMatmul,
  DynamicQuantizeMatMul: matmulToFloat,
  MatMulIntegerToFloat: matmulToFloat,
};
