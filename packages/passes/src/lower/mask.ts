// The spec as a boolean keep-mask built from index arithmetic at run time: query positions i + offset
// ([.., S, 1]) against key indices j ([T]), sequence lengths read from the scores' shape.

import { type AttentionSpec, type Lsh, type MaskSpec, printSpec, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '../recognize/fused/common.js';

export interface MaskIndices {
  /** Key indices j, int64 [T]. */
  readonly cols: Value;
  /** Query indices i, int64 [S, 1]. */
  readonly rows: Value;
  /** nk - nq as an int64 scalar. */
  readonly bottomRight: Value;
  /** The cached key count per `past` alignment: a scalar, or [B, 1, 1, 1]; undefined = 0. */
  readonly past?: Value;
  /** The keep-mask of a data-dependent LSH leaf (from Q and K), broadcastable like the others. */
  readonly lsh?: (leaf: Lsh) => Value;
}

/** A spec the lowering cannot express with index arithmetic yet. */
export function unsupportedSpec(spec: AttentionSpec): string | undefined {
  switch (spec.kind) {
    case 'blocks':
    case 'topkBlocks':
    case 'nystrom':
    case 'linformer':
    case 'performer':
      return `not lowered yet: ${printSpec(spec)}`;
    case 'union':
    case 'intersect':
      return spec.parts.map(unsupportedSpec).find((x) => x !== undefined);
    case 'diff':
      return unsupportedSpec(spec.base) ?? unsupportedSpec(spec.minus);
    default:
      return undefined;
  }
}

/** Keep-mask of `spec` (undefined: keeps everything), broadcastable to [B, H, S, T]. */
export function specMask(b: NodeBuilder, spec: MaskSpec, ix: MaskIndices): Value | undefined {
  const pos = (align: 'top-left' | 'bottom-right' | 'past'): Value => {
    if (align === 'top-left' || (align === 'past' && ix.past === undefined)) return ix.rows;
    return b.op('Add', [ix.rows, align === 'bottom-right' ? ix.bottomRight : ix.past!], `pos_${align}`);
  };
  const k = (x: number, what: string) => b.scalar(what, 'i64', x);
  // LessOrEqual/GreaterOrEqual need opset 12: Not(Greater)/Not(Less) read the same from opset 11
  const le = (x: Value, y: Value, what: string) => b.op('Not', [b.op('Greater', [x, y], `${what}_gt`)], what);
  const ge = (x: Value, y: Value, what: string) => b.op('Not', [b.op('Less', [x, y], `${what}_lt`)], what);
  const all = (): Value => ge(ix.cols, k(0, 'zero'), 'all_keys');
  switch (spec.kind) {
    case 'dense':
      return undefined;
    case 'empty':
      return b.op('Less', [ix.cols, k(0, 'zero')], 'no_keys');
    case 'causal':
      return le(ix.cols, pos(spec.align), 'causal');
    case 'window':
    case 'dilated': {
      const p = pos(spec.align);
      const lo = ge(ix.cols, b.op('Sub', [p, k(spec.left, 'window_left')], 'window_lo'), 'window_ge');
      const hi = le(ix.cols, b.op('Add', [p, k(spec.right, 'window_right')], 'window_hi'), 'window_le');
      const band = b.op('And', [lo, hi], 'window');
      if (spec.kind === 'window') return band;
      const dist = b.op('Mod', [b.op('Sub', [p, ix.cols], 'dilation_dist'), k(spec.dilation, 'dilation')], 'dilation_mod');
      return b.op('And', [band, b.op('Equal', [dist, k(0, 'zero')], 'dilation_hit')], 'dilated');
    }
    case 'sinks':
      return b.op('Less', [ix.cols, k(spec.count, 'sinks_count')], 'sinks');
    case 'lsh':
      if (ix.lsh === undefined) throw new Error(`${printSpec(spec)}: the LSH keep-mask needs Q and K (no lsh hook given)`);
      return ix.lsh(spec);
    case 'global': {
      if (spec.tokens.length === 0) return b.op('Less', [ix.cols, k(0, 'zero')], 'no_keys');
      const isIn = (x: Value, what: string) =>
        spec.tokens
          .map((t) => b.op('Equal', [x, k(t, `global_${t}`)], `${what}_${t}`))
          .reduce((acc, m) => b.op('Or', [acc, m], what));
      return b.op('Or', [isIn(ix.cols, 'global_key'), isIn(pos(spec.align), 'global_query')], 'global');
    }
    case 'union':
    case 'intersect': {
      const parts = spec.parts.map((p) => specMask(b, p, ix));
      if (spec.kind === 'union' && parts.some((p) => p === undefined)) return undefined;
      const defined = parts.filter((p): p is Value => p !== undefined);
      if (defined.length === 0) return undefined;
      return defined.reduce((acc, p) => b.op(spec.kind === 'union' ? 'Or' : 'And', [acc, p], spec.kind));
    }
    case 'diff': {
      const base = specMask(b, spec.base, ix) ?? all();
      const minus = specMask(b, spec.minus, ix);
      return minus === undefined ? b.op('Less', [ix.cols, k(0, 'zero')], 'no_keys') : b.op('And', [base, b.op('Not', [minus], 'diff_not')], 'diff');
    }
    default:
      throw new Error(unsupportedSpec(spec) ?? `not lowered yet: ${spec.kind}`);
  }
}
