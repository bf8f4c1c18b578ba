// attnopt::Attention -> standard ONNX ops (default domain, opset 13+), following the IR's semantics:
//   Y = softmax(softcap(scale Q Kᵀ) + bias, masked by spec, kvLength and a boolean bias) V
// with heads split from the layout, past K/V concatenated (the present outputs), K/V heads repeated for GQA
// (consecutive query heads share one), and fully masked rows giving 0 (Where(IsNaN(p), 0, p)).

import {
  type AttentionParams,
  attentionParams,
  type DType,
  type Graph,
  isLowRank,
  type Node,
  type Value,
} from '@attnopt/ir';
import { NodeBuilder, dtypeOf, redirect } from '../recognize/fused/common.js';
import { specMask, unsupportedSpec } from './mask.js';

export interface LowerOptions {
  /** The default-domain opset the lowered nodes must run under (11..24). */
  readonly opset: number;
}

const LOWEST_OPSET = 11; // Range; Split/Squeeze/Unsqueeze are written in opset-independent forms

/** Why `node` cannot be lowered, or undefined when it can. */
export function cannotLower(node: Node, options: LowerOptions = { opset: 21 }): string | undefined {
  if (options.opset < LOWEST_OPSET) return `opset ${options.opset} is below ${LOWEST_OPSET} (no Range)`;
  const p = attentionParams(node);
  if (isLowRank(p.spec)) return unsupportedSpec(p.spec);
  return unsupportedSpec(p.spec);
}

/** Replaces one Attention node by standard ONNX ops; the outputs keep their names. Throws when it cannot. */
export function lowerAttention(graph: Graph, node: Node, options: LowerOptions = { opset: 21 }): Node[] {
  const why = cannotLower(node, options);
  if (why !== undefined) throw new Error(`${node.describe()}: ${why}`);
  const p: AttentionParams = attentionParams(node);
  const base = node.name || `${node.outputs[0]!.name}_attention`;
  const b = new NodeBuilder(graph, base);
  const [qIn, kIn, vIn, bias, pastKey, pastValue, kvLength] = node.inputs;
  const dtype: DType = dtypeOf(qIn) ?? dtypeOf(pastKey) ?? 'f32';
  const { numHeads: H, kvNumHeads: Hkv, headDim: D, vHeadDim: Dv } = p;
  const toBhsd = (x: Value, heads: number, dim: number, what: string): Value => {
    switch (p.layout) {
      case 'bhsd':
        return x;
      case 'bshd':
        return b.transpose(x, [0, 2, 1, 3], `${what}_bhsd`);
      default:
        return b.transpose(b.reshape(x, [0, 0, heads, dim], `${what}_bshd`), [0, 2, 1, 3], `${what}_bhsd`);
    }
  };
  let q: Value;
  let k: Value;
  let v: Value;
  if (p.layout === 'packed-qkv') {
    const heads = b.reshape(qIn!, [0, 0, H + 2 * Hkv, D], 'qkv_bshd');
    const [pq, pk, pv] = b.split(heads, 2, [H, Hkv, Hkv], 'qkv');
    q = b.transpose(pq!, [0, 2, 1, 3], 'q_bhsd');
    k = b.transpose(pk!, [0, 2, 1, 3], 'k_bhsd');
    v = b.transpose(pv!, [0, 2, 1, 3], 'v_bhsd');
  } else {
    q = toBhsd(qIn!, H, D, 'q');
    k = toBhsd(kIn!, Hkv, D, 'k');
    v = toBhsd(vIn!, Hkv, Dv, 'v');
  }
  const axis2 = { axis: { type: 'int', value: 2n } } as const;
  const presentK = pastKey ? b.op('Concat', [pastKey, k], 'present_key', axis2) : k;
  const presentV = pastValue ? b.op('Concat', [pastValue, v], 'present_value', axis2) : v;
  const repeat = (x: Value, dim: number, what: string): Value => {
    const g = H / Hkv;
    if (g === 1) return x;
    const grouped = b.op('Expand', [b.unsqueeze(x, [2], `${what}_u`, 4), b.ints(`${what}_group`, [1, 1, g, 1, 1])], `${what}_expand`);
    return b.reshape(grouped, [0, H, -1, dim], `${what}_heads`);
  };
  const kAll = repeat(presentK, D, 'k_rep');
  const vAll = repeat(presentV, Dv, 'v_rep');
  const qk = b.op('MatMul', [q, b.transpose(kAll, [0, 1, 3, 2], 'k_t')], 'qk');
  const scaled = b.op('Mul', [qk, b.scalar('scale', dtype, p.scale)], 'qk_scaled');
  const capped =
    p.softcap > 0
      ? b.op('Mul', [b.op('Tanh', [b.op('Div', [scaled, b.scalar('softcap', dtype, p.softcap)], 'softcap_div')], 'softcap_tanh'), b.scalar('softcap_mul', dtype, p.softcap)], 'softcapped')
      : scaled;
  const isBoolBias = bias !== undefined && dtypeOf(bias) === 'bool';
  let logits = bias !== undefined && !isBoolBias ? b.op('Add', [capped, bias], 'biased') : capped;
  // keep-mask: spec, kvLength and a boolean bias
  const shape = b.op('Shape', [capped], 'scores_shape');
  const at = (k: number, what: string) => b.op('Gather', [shape, b.scalar(`${what}_index`, 'i64', k)], what, { axis: { type: 'int', value: 0n } });
  const nq = at(2, 'nq');
  const nk = at(3, 'nk');
  const zero = b.scalar('zero', 'i64', 0);
  const one = b.scalar('one', 'i64', 1);
  const rows = b.unsqueeze(b.op('Range', [zero, nq, one], 'query_index'), [1], 'query_index_col', 1);
  const cols = b.op('Range', [zero, nk, one], 'key_index');
  const kvLen4 = kvLength ? b.reshape(kvLength, [-1, 1, 1, 1], 'kv_length_4d') : undefined;
  let past: Value | undefined;
  if (pastKey) {
    past = b.op('Gather', [b.op('Shape', [pastKey], 'past_shape'), b.scalar('past_index', 'i64', 2)], 'past_length', { axis: { type: 'int', value: 0n } });
  } else if (kvLen4) {
    past = b.op('Sub', [kvLen4, nq], 'past_from_kv_length');
  }
  const bottomRight = b.op('Sub', [nk, nq], 'bottom_right');
  const parts: Value[] = [];
  if (p.spec.kind !== 'dense' && !isLowRank(p.spec)) {
    const m = specMask(b, p.spec, { cols, rows, bottomRight, ...(past ? { past } : {}) });
    if (m) parts.push(m);
  }
  if (kvLen4) parts.push(b.op('Less', [cols, kvLen4], 'kv_length_mask'));
  if (isBoolBias) parts.push(bias!);
  const keep = parts.length === 0 ? undefined : parts.reduce((acc, m) => b.op('And', [acc, m], 'keep'));
  const softmaxType: DType = p.softmaxPrecision ?? dtype;
  if (softmaxType !== dtype) logits = b.cast(logits, softmaxType, 'logits_cast');
  const masked = keep ? b.op('Where', [keep, logits, b.scalar('minus_inf', softmaxType, -Infinity)], 'masked') : logits;
  let probs = b.op('Softmax', [masked], 'softmax', { axis: { type: 'int', value: -1n } });
  if (keep || bias !== undefined) {
    // a fully masked row is all -inf: its softmax is NaN, the IR's is 0
    probs = b.op('Where', [b.op('IsNaN', [probs], 'softmax_isnan'), b.scalar('zero_prob', softmaxType, 0), probs], 'probs');
  }
  const probsIn = softmaxType !== dtype ? b.cast(probs, dtype, 'probs_cast') : probs;
  const yBhsd = b.op('MatMul', [probsIn, vAll], 'y_bhsd');
  let y: Value;
  switch (p.layout) {
    case 'bhsd':
      y = yBhsd;
      break;
    case 'bshd':
      y = b.transpose(yBhsd, [0, 2, 1, 3], 'y');
      break;
    default:
      y = b.reshape(b.transpose(yBhsd, [0, 2, 1, 3], 'y_bshd'), [0, 0, H * Dv], 'y');
  }
  const scoresOf = (): Value => {
    switch (p.scoresMode) {
      case 'qk':
        return scaled;
      case 'softcapped':
        return capped;
      case 'masked':
        return softmaxType !== dtype ? b.cast(masked, dtype, 'masked_cast') : masked;
      default:
        return probsIn;
    }
  };
  const replacements: Value[] = [y, presentK, presentV];
  if (node.outputs[3] !== undefined) replacements.push(scoresOf());
  // a lowered output that is an input as is (bhsd Y, present K without past) gets an Identity: names stay
  const finals = replacements.slice(0, node.outputs.length).map((x, k) =>
    x.producer === undefined || !b.nodes.includes(x.producer) || x === q ? b.op('Identity', [x], `output_${k}`) : x,
  );
  const at0 = graph.nodes.indexOf(node);
  b.nodes.forEach((n, k) => graph.addNode(n, at0 + k));
  node.outputs.forEach((old, k) => redirect(graph, old, finals[k]!));
  graph.removeNode(node);
  return b.nodes;
}
