// Attention nodes: valid parameters, and Q/K/V/bias/past/output shapes consistent with them and the layout.

import {
  type AttentionLayout,
  type AttentionParams,
  attentionParams,
  AttentionInput,
  isAttention,
  RUNTIME_HEAD_DIM,
} from '../attention.js';
import type { Node, Value } from '../graph.js';
import type { Dim, Shape } from '../shape.js';
import { DimUnifier, showDim, showShape } from './dims.js';
import type { NodeRule } from './issue.js';

// Placeholders for sizes the parameters do not fix; they bind to the first dim they meet.
const BATCH = '\u0000batch';
const SQ = '\u0000query length';
const SK = '\u0000key length';
const PAST = '\u0000past length';
// A head size left to run time (RUNTIME_HEAD_DIM): still one size shared by Q, K and past K (V: by V, past V, Y).
const HEAD = '\u0000head size';
const VHEAD = '\u0000value head size';

const LABELS: Record<string, string> = {
  [BATCH]: 'batch',
  [SQ]: 'query length',
  [SK]: 'key length',
  [PAST]: 'past length',
  [HEAD]: 'the head size of Q (known at run time)',
  [VHEAD]: 'the head size of V (known at run time)',
};

/** The dims the head sizes stand for: a number, or a placeholder that binds at the first tensor when 0. */
function headDims(p: AttentionParams): { d: Dim; dv: Dim } {
  return {
    d: p.headDim === RUNTIME_HEAD_DIM ? HEAD : p.headDim,
    dv: p.vHeadDim === RUNTIME_HEAD_DIM ? VHEAD : p.vHeadDim,
  };
}

interface Expected {
  readonly dims: readonly Dim[];
  /** What each dim is, for messages. */
  readonly labels: readonly string[];
}

/** Expected shapes of Q, K, V and Y per layout. */
function layoutShapes(p: AttentionParams): Record<'q' | 'k' | 'v' | 'y', Expected | undefined> {
  const { numHeads: h, kvNumHeads: kvh, headDim, vHeadDim } = p;
  const { d, dv } = headDims(p);
  // only bhsd may hold a run-time head size (validateAttentionParams): the products below are static
  const [sd, sdv] = [headDim, vHeadDim];
  const e = (dims: Dim[], labels: string[]): Expected => ({ dims, labels });
  const table: Record<AttentionLayout, () => Record<'q' | 'k' | 'v' | 'y', Expected | undefined>> = {
    bsd: () => ({
      q: e([BATCH, SQ, h * sd], ['batch', 'query length', `numHeads*headDim = ${h}*${sd}`]),
      k: e([BATCH, SK, kvh * sd], ['batch', 'key length', `kvNumHeads*headDim = ${kvh}*${sd}`]),
      v: e([BATCH, SK, kvh * sdv], ['batch', 'key length', `kvNumHeads*vHeadDim = ${kvh}*${sdv}`]),
      y: e([BATCH, SQ, h * sdv], ['batch', 'query length', `numHeads*vHeadDim = ${h}*${sdv}`]),
    }),
    bhsd: () => ({
      q: e([BATCH, h, SQ, d], ['batch', 'numHeads', 'query length', 'headDim']),
      k: e([BATCH, kvh, SK, d], ['batch', 'kvNumHeads', 'key length', 'headDim']),
      v: e([BATCH, kvh, SK, dv], ['batch', 'kvNumHeads', 'key length', 'vHeadDim']),
      y: e([BATCH, h, SQ, dv], ['batch', 'numHeads', 'query length', 'vHeadDim']),
    }),
    bshd: () => ({
      q: e([BATCH, SQ, h, d], ['batch', 'query length', 'numHeads', 'headDim']),
      k: e([BATCH, SK, kvh, d], ['batch', 'key length', 'kvNumHeads', 'headDim']),
      v: e([BATCH, SK, kvh, dv], ['batch', 'key length', 'kvNumHeads', 'vHeadDim']),
      y: e([BATCH, SQ, h, dv], ['batch', 'query length', 'numHeads', 'vHeadDim']),
    }),
    'packed-qkv': () => ({
      q: e([BATCH, SQ, (h + 2 * kvh) * sd], ['batch', 'query length', `(numHeads + 2*kvNumHeads)*headDim = (${h} + 2*${kvh})*${sd}`]),
      k: undefined,
      v: undefined,
      y: e([BATCH, SQ, h * sd], ['batch', 'query length', `numHeads*headDim = ${h}*${sd}`]),
    }),
  };
  return table[p.layout]();
}

const shapeOf = (v: Value | undefined): Shape | undefined =>
  v?.type?.kind === 'tensor' ? v.type.shape : undefined;

function shapeProblems(node: Node, p: AttentionParams): string[] {
  const problems: string[] = [];
  const u = new DimUnifier();
  const match = (what: string, shape: Shape | undefined, want: Expected) => {
    if (shape === undefined) return;
    if (shape.length !== want.dims.length) {
      problems.push(`${what} has rank ${shape.length} (${showShape(shape)}), layout ${p.layout} needs rank ${want.dims.length}`);
      return;
    }
    shape.forEach((d, k) => {
      const expected = u.resolve(want.dims[k]!);
      if (!u.unify(d, want.dims[k]!)) {
        const shown = typeof expected === 'string' && expected in LABELS ? LABELS[expected] : showDim(expected);
        problems.push(`${what} dim ${k} (${want.labels[k]}) is ${showDim(d)}, expected ${shown} (shape mismatch)`);
      }
    });
  };
  const want = layoutShapes(p);
  const at = (k: number) => node.inputs[k];
  match('Q', shapeOf(at(AttentionInput.q)), want.q!);
  for (const [name, k, w] of [['K', AttentionInput.k, want.k], ['V', AttentionInput.v, want.v]] as const) {
    if (w === undefined && at(k)) problems.push(`layout ${p.layout} takes no ${name} input, but ${name} is given`);
    if (w !== undefined && !at(k)) problems.push(`layout ${p.layout} needs a ${name} input`);
    if (w !== undefined) match(name, shapeOf(at(k)), w);
  }
  const bias = shapeOf(at(AttentionInput.bias));
  if (bias && bias.length > 4) problems.push(`bias has rank ${bias.length}, at most 4 broadcasts to [batch, heads, query, key]`);
  const past = (what: string, v: Value | undefined, head: Dim, label: string) =>
    match(what, shapeOf(v), { dims: [BATCH, p.kvNumHeads, PAST, head], labels: ['batch', 'kvNumHeads', 'past length', label] });
  const { d, dv } = headDims(p);
  past('past key', at(AttentionInput.pastKey), d, 'headDim');
  past('past value', at(AttentionInput.pastValue), dv, 'vHeadDim');
  match('output Y', shapeOf(node.outputs[0]), want.y!);
  return problems;
}

// Attention(Q, K, V) whose parameters are invalid or whose static dims contradict them -> attention
export const attentionRule: NodeRule = {
  rule: 'attention',
  check(node) {
    if (!isAttention(node)) return [];
    let p: AttentionParams;
    try {
      p = attentionParams(node);
    } catch (e) {
      return [(e as Error).message.replace(`${node.describe()}: `, '')];
    }
    return shapeProblems(node, p);
  },
};
