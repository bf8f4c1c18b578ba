// Every op the executor runs, by `domain::op`: the union of the op families.

import type { OpTable } from '../kernel.js';
import { ATTENTION_OPS } from './attention.js';
import { BINARY_OPS } from './binary.js';
import { CAST_OPS } from './cast.js';
import { CONTROL_OPS } from './control.js';
import { EINSUM_OPS } from './einsum.js';
import { FLOAT_CLASS_OPS } from './float-class.js';
import { GATHER_ND_OPS } from './gather-nd.js';
import { LAYOUT_OPS } from './layout.js';
import { MATMUL_OPS } from './matmul.js';
import { NORMALIZATION_OPS } from './normalization.js';
import { PAD_OPS } from './pad.js';
import { QUANTIZE_OPS } from './quantize.js';
import { REDUCE_OPS } from './reduce.js';
import { SCATTER_OPS } from './scatter.js';
import { SHAPE_OPS } from './shape.js';
import { TOPK_OPS } from './topk.js';
import { UNARY_OPS } from './unary.js';

const FAMILIES: readonly OpTable[] = [
  BINARY_OPS,
  UNARY_OPS,
  MATMUL_OPS,
  QUANTIZE_OPS,
  EINSUM_OPS,
  NORMALIZATION_OPS,
  REDUCE_OPS,
  SHAPE_OPS,
  CAST_OPS,
  LAYOUT_OPS,
  PAD_OPS,
  GATHER_ND_OPS,
  SCATTER_OPS,
  TOPK_OPS,
  FLOAT_CLASS_OPS,
  ATTENTION_OPS,
  CONTROL_OPS,
];

function merge(tables: readonly OpTable[]): OpTable {
  const all: Record<string, OpTable[string]> = {};
  for (const t of tables) {
    for (const [key, kernel] of Object.entries(t)) {
      if (key in all) throw new Error(`op ${key} is implemented twice`);
      all[key] = kernel;
    }
  }
  return all;
}

export const EXECUTOR_OPS: OpTable = merge(FAMILIES);
