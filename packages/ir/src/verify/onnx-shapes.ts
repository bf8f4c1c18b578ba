// Shape checks for common ONNX ops whose input shapes are known; ops not in the table are never an error.

import { ONNX_DOMAIN, type Node, type Value } from '../graph.js';
import type { Shape } from '../shape.js';
import { broadcastConflict, DimUnifier, showDim, showShape } from './dims.js';
import type { NodeRule } from './issue.js';

const shapeOf = (v: Value | undefined): Shape | undefined =>
  v?.type?.kind === 'tensor' ? v.type.shape : undefined;

/** Shapes of the first `n` inputs, or undefined unless all are known. */
function knownShapes(node: Node, n: number): Shape[] | undefined {
  const shapes = node.inputs.slice(0, n).map(shapeOf);
  return shapes.length === n && shapes.every((s) => s !== undefined) ? (shapes as Shape[]) : undefined;
}

function intAttrOf(node: Node, name: string): bigint | undefined {
  const a = node.attrs.get(name);
  return a?.type === 'int' ? a.value : undefined;
}

// MatMul(A[..., m, k], B[..., k, n]): inner dims equal, batch dims broadcast
function matmul(node: Node): string[] {
  const shapes = knownShapes(node, 2);
  if (!shapes) return [];
  const [a, b] = shapes as [Shape, Shape];
  if (a.length === 0 || b.length === 0) return ['MatMul of a scalar (shape mismatch)'];
  const ka = a[a.length - 1]!;
  const kb = b.length === 1 ? b[0]! : b[b.length - 2]!;
  const problems: string[] = [];
  if (!new DimUnifier().unify(ka, kb)) {
    problems.push(`shape mismatch: inner dimensions differ, A ${showShape(a)} has ${showDim(ka)}, B ${showShape(b)} has ${showDim(kb)}`);
  }
  const conflict = broadcastConflict([a.slice(0, -2), b.slice(0, -2)]);
  if (conflict) problems.push(`shape mismatch: batch dims of ${showShape(a)} and ${showShape(b)} do not broadcast (${conflict})`);
  return problems;
}

// Add(A, B), Where(C, X, Y)...: all input shapes broadcast together
const broadcasting = (arity: number) => (node: Node): string[] => {
  const shapes = knownShapes(node, arity);
  const conflict = shapes && broadcastConflict(shapes);
  return conflict ? [`shape mismatch: inputs ${shapes.map(showShape).join(', ')} do not broadcast (${conflict})`] : [];
};

// Transpose(X[r dims]) {perm}: perm is a permutation of 0..r-1
function transpose(node: Node): string[] {
  const [x] = knownShapes(node, 1) ?? [];
  const perm = node.attrs.get('perm');
  if (!x || perm?.type !== 'ints') return [];
  const sorted = perm.value.map(Number).sort((p, q) => p - q);
  if (perm.value.length !== x.length) return [`shape mismatch: perm has ${perm.value.length} entries for input of rank ${x.length}`];
  if (!sorted.every((p, k) => p === k)) return [`perm [${perm.value.join(', ')}] is not a permutation of 0..${x.length - 1}`];
  return [];
}

// Softmax(X[r dims]) {axis}: -r <= axis < r
function softmax(node: Node): string[] {
  const [x] = knownShapes(node, 1) ?? [];
  const axis = intAttrOf(node, 'axis');
  if (!x || axis === undefined) return [];
  const r = BigInt(x.length);
  return axis < -r || axis >= r ? [`shape mismatch: axis ${axis} is out of range for input of rank ${x.length}`] : [];
}

/** ONNX op -> its shape check. */
export const ONNX_SHAPE_CHECKS: Readonly<Record<string, (node: Node) => string[]>> = {
  MatMul: matmul,
  Add: broadcasting(2),
  Sub: broadcasting(2),
  Mul: broadcasting(2),
  Div: broadcasting(2),
  Where: broadcasting(3),
  Transpose: transpose,
  Softmax: softmax,
};

export const onnxShapeRule: NodeRule = {
  rule: 'shape',
  check(node) {
    if (node.domain !== ONNX_DOMAIN && node.domain !== 'ai.onnx') return [];
    return Object.prototype.hasOwnProperty.call(ONNX_SHAPE_CHECKS, node.op) ? ONNX_SHAPE_CHECKS[node.op]!(node) : [];
  },
};
