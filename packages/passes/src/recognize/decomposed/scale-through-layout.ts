// The softmax scale applied before the heads are split (HF BART / CLIP / Whisper: q_proj(x) · d^-0.5, then
// view + transpose), pulled out of Q:
//   Transpose(Reshape(Mul(x, s)))  ->  scale s, Q = Transpose(Reshape(x))
// A scalar Mul commutes with every layout-only op, so the product is the same; the layout chain is rebuilt
// from x in the prelude, and the Mul with the chain it fed becomes part of the site.

import { type Graph, Node, Value } from '@attnopt/ir';
import { onnxOp } from './chain.js';
import { staticScalar } from '../../shape-inference/shapes.js';

/** Ops that only move elements (their data input is input 0). */
const LAYOUT_ONLY = ['Reshape', 'Transpose', 'Unsqueeze', 'Squeeze', 'Identity'];

export interface PulledScale {
  /** Q rebuilt from the unscaled value (the last prelude node's output). */
  readonly value: Value;
  readonly factor: number;
  /** The scaling node and the layout chain it fed (each used only by the next). */
  readonly matched: readonly Node[];
  /** The layout chain rebuilt from the unscaled value. */
  readonly prelude: readonly Node[];
}

/** A Mul / Div by a static scalar a few layout-only ops above `x`, each step used only by the next. */
export function pullScaleThroughLayout(graph: Graph, x: Value, freshName: (graph: Graph, base: string) => string): PulledScale | undefined {
  const chain: Node[] = [];
  const usedOnce = (v: Value) => v.uses().length === 1 && !graph.outputs.includes(v);
  let cur = x;
  for (let steps = 0; steps < 6; steps++) {
    const n = onnxOp(cur, ...LAYOUT_ONLY);
    if (!n) break;
    if (!usedOnce(cur)) return undefined;
    chain.unshift(n);
    cur = n.inputs[0]!;
  }
  if (chain.length === 0 || !usedOnce(cur)) return undefined;
  const scale = onnxOp(cur, 'Mul', 'Div');
  if (!scale) return undefined;
  const s1 = staticScalar(scale.inputs[1]);
  const s0 = scale.op === 'Mul' ? staticScalar(scale.inputs[0]) : undefined;
  const [factor, unscaled] = s1 !== undefined ? [scale.op === 'Mul' ? s1 : 1 / s1, scale.inputs[0]!] : s0 !== undefined ? [s0, scale.inputs[1]!] : [undefined, undefined];
  if (factor === undefined || unscaled === undefined || !Number.isFinite(factor)) return undefined;
  const prelude: Node[] = [];
  let from = unscaled;
  for (const n of chain) {
    const out = n.outputs[0]!;
    const copy = new Node({ domain: n.domain, op: n.op, inputs: [from, ...n.inputs.slice(1)], outputs: [new Value(freshName(graph, 'q_unscaled'), out.type)], attrs: n.attrs });
    prelude.push(copy);
    from = copy.outputs[0]!;
  }
  return { value: from, factor, matched: [scale, ...chain], prelude };
}
