// Attention nodes: valid parameters, and Q/K/V/bias/past/output shapes consistent with them and the layout.

import { type AttentionLayout, type AttentionParams, attentionParams, AttentionInput, isAttention } from '../attention.js';
import type { Node, Value } from '../graph.js';
import type { Dim, Shape } from '../shape.js';
import { DimUnifier, showDim, showShape } from './dims.js';
import type { NodeRule } from './issue.js';

// Placeholders for sizes the parameters do not fix; they bind to the first dim they meet.
const BATCH = '\u0000batch';
const SQ = '\u0000query length';
const SK = '\u0000key length';
const PAST = '\u0000past length';

const LABELS: Record<string, string> = { [BATCH]: 'batch', [SQ]: 'query length', [SK]: 'key length', [PAST]: 'past length' };

interface Expected {
  readonly dims: readonly Dim[];
  /** What each dim is, for messages. */
  readonly labels: readonly string[];
}

/** Expected shapes of Q, K, V and Y per layout. */
function layoutShapes(p: AttentionParams): Record<'q' | 'k' | 'v' | 'y', Expected | undefined> {
  const { numHeads: h, kvNumHeads: kvh, headDim: d, vHeadDim: dv } = p;
  const e = (dims: Dim[], labels: string[]): Expected => ({ dims, labels });
  const table: Record<AttentionLayout, () => Record<'q' | 'k' | 'v' | 'y', Expected | undefined>> = {
    bsd: () => ({
      q: e([BATCH, SQ, h * d], ['batch', 'query length', `numHeads*headDim = ${h}*${d}`]),
      k: e([BATCH, SK, kvh * d], ['batch', 'key length', `kvNumHeads*headDim = ${kvh}*${d}`]),
      v: e([BATCH, SK, kvh * dv], ['batch', 'key length', `kvNumHeads*vHeadDim = ${kvh}*${dv}`]),
      y: e([BATCH, SQ, h * dv], ['batch', 'query length', `numHeads*vHeadDim = ${h}*${dv}`]),
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
      q: e([BATCH, SQ, (h + 2 * kvh) * d], ['batch', 'query length', `(numHeads + 2*kvNumHeads)*headDim = (${h} + 2*${kvh})*${d}`]),
      k: undefined,
      v: undefined,
      y: e([BATCH, SQ, h * d], ['batch', 'query length', `numHeads*headDim = ${h}*${d}`]),
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
  const past = (what: string, v: Value | undefined, head: number, label: string) =>
    match(what, shapeOf(v), { dims: [BATCH, p.kvNumHeads, PAST, head], labels: ['batch', 'kvNumHeads', 'past length', label] });
  past('past key', at(AttentionInput.pastKey), p.headDim, 'headDim');
  past('past value', at(AttentionInput.pastValue), p.vHeadDim, 'vHeadDim');
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
