// What the banded lowerings (banded.ts: MatMul, Add, Softmax, MatMul; banded-native.ts: one Attention op per
// block batch) share: the query blocks, which key granules each block reads, and the additive bias over them.
//
//   keys K'' = [X extra rows | F zeros | K | zeros], read as granules of g keys: the X extra rows are a zero
//   "empty row" key, the E fixed extra keys (sinks, global tokens) and zeros; F = (-shift) mod g aligns the band
//   start shift = offset + lo to a granule; block r reads the X extra rows, then the L keys
//   [r·b + shift, r·b + shift + L) (L = b + hi - lo rounded up to g): W = X + L keys.
// The bias [nBlocks, b, W] (0 kept, -inf dropped): away from the sequence ends (a band past every absolute term
// of the spec, all keys inside [0, T)) a block's whole row depends on the query-key distance alone (its extra
// keys all lie before its band; checked at build time, see middleRow): one constant [b, W] evaluated here,
// expanded, with the few other blocks (head and tail) computed from the spec at run time and scattered in. The
// extra keys' columns are masked where the band already holds the key, so no key counts twice. The empty-row
// key gets bias 0 exactly on rows that keep no key: its zero key and value make such a row's softmax finite and
// its output 0, as the IR defines. With kvLength (valid keys per batch), without a band, or where the extra
// keys' columns differ between such blocks, every block is computed from the spec ([B, 1, nBlocks, b, W] with
// kvLength).

import { absoluteReach, bandGranule, type DType, keeps, type KeySupport, type MaskSpec, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';
import { specMask } from './mask.js';

/** The widths of the banded form: X extra rows (empty-row key + extra keys, whole granules), L band keys (bandedKeysPerQuery = X + L). */
export function bandedWidths(s: KeySupport, blockSize: number): { granule: number; extraRows: number; band: number; width: number } {
  const g = bandGranule(blockSize);
  const extraRows = Math.ceil((s.extra.length + 1) / g) * g;
  const band = s.lo <= s.hi ? Math.ceil((blockSize + s.hi - s.lo) / g) * g : 0;
  return { granule: g, extraRows, band, width: extraRows + band };
}

/** The band's keep-pattern [b, L] away from the sequence ends: query i of a block, key t of its band. */
export function bandPattern(spec: MaskSpec, s: KeySupport, blockSize: number, band: number): boolean[] {
  const p0 = absoluteReach(spec) - Math.min(s.lo, 0);
  const n = p0 + blockSize + band + Math.abs(s.lo) + Math.abs(s.hi) + 1;
  const dims = { nq: n, nk: n, past: 0 };
  const out: boolean[] = [];
  for (let i = 0; i < blockSize; i++) for (let t = 0; t < band; t++) out.push(keeps(spec, p0 + i, p0 + s.lo + t, dims));
  return out;
}

/** The largest distance any relative term (window, dilated) of the spec reaches from its query. */
function relativeExtent(spec: MaskSpec): number {
  switch (spec.kind) {
    case 'window':
    case 'dilated':
      return Math.max(Math.abs(spec.left), Math.abs(spec.right));
    case 'union':
    case 'intersect':
      return Math.max(0, ...spec.parts.map(relativeExtent));
    case 'diff':
      return Math.max(relativeExtent(spec.base), relativeExtent(spec.minus));
    default:
      return 0;
  }
}

/**
 * The whole bias row pattern [b, W] (kept = true) shared by every block away from the sequence ends: the
 * empty-row key (kept only on rows that keep nothing), the extra keys, the pad columns, the band (bandPattern);
 * or undefined when the extra keys' columns are not the same for all such blocks. Such a block's band starts at
 * or past the spec's absolute reach, so every extra key lies before it and in none of its bands; whether a query
 * keeps an extra key can still depend on the query through a relative term (window 300 ∖ ... of a sink), so it
 * is checked for every query from the first such block until every relative term is out of reach (past that,
 * causal terms keep the key, window terms do not, query-side global terms do not: nothing changes).
 */
export function middleRow(spec: MaskSpec, s: KeySupport, blockSize: number): boolean[] | undefined {
  const { extraRows: X, band: L } = bandedWidths(s, blockSize);
  const band = bandPattern(spec, s, blockSize, L);
  const reach = absoluteReach(spec);
  const p0 = reach - Math.min(s.lo, 0);
  const last = p0 + reach + relativeExtent(spec) + 2 * blockSize;
  if (!Number.isFinite(last)) return undefined;
  const dims = { nq: last + 1, nk: last + 1, past: 0 };
  const extraAt = (q: number) => s.extra.map((e) => keeps(spec, q, e, dims));
  const extra = extraAt(p0);
  for (let q = p0 + 1; q <= last; q++) if (extraAt(q).some((k, u) => k !== extra[u])) return undefined;
  const out: boolean[] = [];
  for (let i = 0; i < blockSize; i++) {
    const row = band.slice(i * L, (i + 1) * L);
    out.push(!extra.some(Boolean) && !row.some(Boolean), ...extra, ...Array<boolean>(X - 1 - s.extra.length).fill(false), ...row);
  }
  return out;
}

export interface BandFrameInputs {
  readonly spec: MaskSpec;
  readonly support: KeySupport;
  readonly blockSize: number;
  /** Queries and present keys (int64 scalars). */
  readonly S: Value;
  readonly T: Value;
  /** The dtype of the bias (the softmax's). */
  readonly dtype: DType;
  /** T - S and the cached key count (scalars; undefined = 0). */
  readonly bottomRight: Value;
  readonly past?: Value;
  /** [B] int64 valid key counts. */
  readonly kvLength?: Value;
}

export interface BandFrame {
  /** Query blocks ceil(S / b) (scalar) and their indices [nBlocks]. */
  readonly nBlocks: Value;
  readonly blockIndex: Value;
  /** The zero rows before and after the keys in K'' (scalars); undefined without a band. */
  readonly front?: Value;
  readonly back?: Value;
  /** The granule rows of K'' each block reads: [nBlocks, W / g] (without a band: [1, X / g], read by every block). */
  readonly granules: Value;
  /** [nBlocks, b, W], or [B, 1, nBlocks, b, W] with kvLength. */
  readonly bias: Value;
  /** The query position offset of the spec's alignment (scalar): query i sits at i + offset. */
  readonly offset: Value;
}

const tensorI64 = (shape: number[], values: number[]) => Tensor.fromValues('i64', shape, values.map((v) => BigInt(v)));

/** The query blocks, the key granules each block reads and the bias over them (see the comment at the top). */
export function bandFrame(b: NodeBuilder, x: BandFrameInputs): BandFrame {
  const { support: s, blockSize: bs, S, T } = x;
  const sm = x.dtype;
  const { granule: g, extraRows: X, band: L } = bandedWidths(s, bs);
  const E = s.extra.length;
  const axis = (a: number) => ({ axis: { type: 'int', value: BigInt(a) } }) as const;
  const i64 = (n: number, what: string) => b.scalar(what, 'i64', n);
  const vec = (t: Value, what: string) => b.reshape(t, [1], what);
  const and = (ms: (Value | undefined)[], what: string): Value | undefined => {
    const defined = ms.filter((m): m is Value => m !== undefined);
    return defined.length === 0 ? undefined : defined.reduce((acc, m) => b.op('And', [acc, m], what));
  };
  const ge = (p: Value, q: Value, what: string) => b.op('Not', [b.op('Less', [p, q], `${what}_lt`)], what);
  const clamp = (v: Value, lo: Value, hi: Value, what: string) => b.op('Min', [b.op('Max', [v, lo], `${what}_max`), hi], what);
  const zero = i64(0, 'band_zero');
  const align = s.aligns[0] ?? 'top-left';
  const off = (align === 'bottom-right' ? x.bottomRight : align === 'past' ? x.past : undefined) ?? zero;
  const kvLen5 = x.kvLength ? b.reshape(x.kvLength, [-1, 1, 1, 1, 1], 'band_kv_length') : undefined;
  const ix = (rows: Value, cols: Value) => ({ rows, cols, bottomRight: x.bottomRight, ...(x.past ? { past: x.past } : {}) });
  const negInf = b.scalar('band_minus_inf', sm, -Infinity);
  const zeroF = b.scalar('band_zero_bias', sm, 0);
  const toBias = (keep: Value, what: string) => b.op('Where', [keep, zeroF, negInf], what);

  // query blocks
  const nBlocks = b.op('Div', [b.op('Add', [S, i64(bs - 1, 'band_round')], 'band_nq_up'), i64(bs, 'band_block')], 'band_blocks');
  const blockIndex = b.op('Range', [zero, nBlocks, i64(1, 'band_r1')], 'band_block_index');
  const inBlock = b.constant('band_in_block', tensorI64([1, bs, 1], Array.from({ length: bs }, (_, t) => t)));
  /** Query indices [m, b, 1] of the blocks `blocks` [m]. */
  const queryRows = (blocks: Value, what: string) =>
    b.op('Add', [b.reshape(b.op('Mul', [blocks, i64(bs, `${what}_b`)], `${what}_start`), [-1, 1, 1], `${what}_start_3d`), inBlock], what);

  // K'': the extra rows, then the keys shifted so that every band starts on a granule
  const shift = L > 0 ? b.op('Add', [off, i64(s.lo, 'band_lo')], 'band_shift') : undefined;
  const front = shift ? b.op('Mod', [b.op('Neg', [shift], 'band_minus_shift'), i64(g, 'band_granule')], 'band_front') : undefined;
  const back = front ? b.op('Mod', [b.op('Neg', [b.op('Add', [T, front], 'band_keys_front')], 'band_minus_keys'), i64(g, 'band_granule2')], 'band_back') : undefined;
  // granule indices [nBlocks, W / g] (without a band: [1, X / g], read by every block)
  const extraGranules = b.constant('band_extra_granules', tensorI64([1, X / g], Array.from({ length: X / g }, (_, u) => u)));
  let granules = extraGranules;
  if (shift && front) {
    const nG = b.op('Add', [b.op('Div', [b.op('Add', [b.op('Add', [T, front], 'band_t_front'), back!], 'band_rows_total'), i64(g, 'band_granule3')], 'band_key_granules'), i64(X / g, 'band_extra_granule_count')], 'band_granule_count');
    const first = b.op(
      'Add',
      [b.op('Div', [b.op('Add', [b.op('Mul', [blockIndex, i64(bs, 'band_block4')], 'band_block_start'), b.op('Add', [shift, front], 'band_aligned_shift')], 'band_key_start'), i64(g, 'band_granule4')], 'band_first_granule'), i64(X / g, 'band_granule_base')],
      'band_first_granule_row',
    );
    const bandGranules = b.op('Add', [b.reshape(first, [-1, 1], 'band_first_col'), b.constant('band_granule_steps', tensorI64([1, L / g], Array.from({ length: L / g }, (_, u) => u)))], 'band_granule_index');
    const clamped = clamp(bandGranules, zero, b.op('Sub', [nG, i64(1, 'band_one2')], 'band_last_granule'), 'band_granule_clamped');
    const target = b.op('Concat', [vec(nBlocks, 'band_blocks_1'), b.ints('band_extra_granule_width', [X / g])], 'band_extra_granule_shape', axis(0));
    granules = b.op('Concat', [b.op('Expand', [extraGranules, target], 'band_extra_granules_all'), clamped], 'band_granules', axis(1));
  }

  // the bias, shared by batch and heads: [nBlocks, b, W], or [B, 1, nBlocks, b, W] with kvLength
  const extraCols = E > 0 ? b.constant('band_extra_cols', tensorI64([E], [...s.extra])) : undefined;
  const ones = (n: number, what: string) => b.constant(what, Tensor.fromValues(sm, [n, 1], Array(n).fill(1)));
  /** The exact bias rows [m, b, W] (with kvLength [B, 1, m, b, W]) of the blocks `blocks` [m], from the spec. */
  const exactRows = (blocks: Value, what: string): Value => {
    const rows = queryRows(blocks, `${what}_query_index`);
    const count = b.op('Shape', [blocks], `${what}_count`);
    let extraBias: Value | undefined;
    if (extraCols) {
      const keyStart = shift ? b.op('Add', [b.op('Mul', [b.reshape(blocks, [-1, 1, 1], `${what}_blocks_3d`), i64(bs, `${what}_b5`)], `${what}_band_start0`), shift], `${what}_band_start`) : undefined;
      const inBand = keyStart
        ? b.op('And', [ge(extraCols, keyStart, `${what}_extra_ge_band`), b.op('Less', [extraCols, b.op('Add', [keyStart, i64(L, `${what}_width`)], `${what}_band_end`)], `${what}_extra_lt_band`)], `${what}_extra_in_band`)
        : undefined;
      const keep = and(
        [
          specMask(b, x.spec, ix(rows, extraCols)),
          b.op('Less', [extraCols, T], `${what}_extra_lt_nk`),
          kvLen5 ? b.op('Less', [extraCols, kvLen5], `${what}_extra_kv_length_mask`) : undefined,
          inBand ? b.op('Not', [inBand], `${what}_extra_outside_band`) : undefined,
        ],
        `${what}_extra_keep`,
      );
      const shape = b.op('Concat', [count, b.ints(`${what}_extra_dims`, [bs, E])], `${what}_extra_shape`, axis(0));
      extraBias = b.op('Expand', [toBias(keep ?? b.constant(`${what}_extra_all`, Tensor.fromValues('bool', [1], [1])), `${what}_extra_keep_bias`), shape], `${what}_extra_bias`);
    }
    let bandBias: Value | undefined;
    if (shift) {
      const cols = b.op(
        'Add',
        [b.op('Add', [b.reshape(b.op('Mul', [blocks, i64(bs, `${what}_b`)], `${what}_start`), [-1, 1, 1], `${what}_start_3d`), shift], `${what}_key_start`), b.constant(`${what}_steps`, tensorI64([1, 1, L], Array.from({ length: L }, (_, t) => t)))],
        `${what}_key_index`,
      );
      const keep = and(
        [
          specMask(b, x.spec, ix(rows, cols)),
          ge(cols, zero, `${what}_key_ge0`),
          b.op('Less', [cols, T], `${what}_key_lt_nk`),
          kvLen5 ? b.op('Less', [cols, kvLen5], `${what}_kv_length_mask`) : undefined,
        ],
        `${what}_keep`,
      )!;
      const shape = b.op('Concat', [count, b.ints(`${what}_dims`, [bs, L])], `${what}_shape`, axis(0));
      bandBias = b.op('Expand', [toBias(keep, `${what}_keep_bias`), shape], `${what}_band_bias`);
    }
    // the empty-row key: bias 0 on rows that keep no key, -inf elsewhere
    const counts = [extraBias ? b.op('MatMul', [b.op('Exp', [extraBias], `${what}_extra_kept`), ones(E, `${what}_extra_ones`)], `${what}_extra_count`) : undefined, bandBias ? b.op('MatMul', [b.op('Exp', [bandBias], `${what}_band_kept`), ones(L, `${what}_band_ones`)], `${what}_band_count`) : undefined].filter(
      (c): c is Value => c !== undefined,
    );
    const kept = counts.length === 1 ? counts[0]! : b.op('Add', counts, `${what}_kept_count`);
    const emptyBias = b.op('Where', [b.op('Less', [kept, b.scalar(`${what}_half`, sm, 0.5)], `${what}_row_empty`), zeroF, negInf], `${what}_empty_bias`);
    const parts: Value[] = [emptyBias];
    if (extraBias) parts.push(extraBias);
    if (X - 1 - E > 0) {
      const padShape = b.op('Concat', [b.op('Slice', [b.op('Shape', [emptyBias], `${what}_empty_shape`), b.ints(`${what}_ps_start`, [0]), b.ints(`${what}_ps_end`, [-1]), b.ints(`${what}_ps_axis`, [0])], `${what}_empty_lead`), b.ints(`${what}_pad_cols`, [X - 1 - E])], `${what}_pad_shape`, axis(0));
      parts.push(b.op('Expand', [negInf, padShape], `${what}_pad_bias`));
    }
    if (bandBias) parts.push(bandBias);
    return b.op('Concat', parts, `${what}_bias`, axis(-1));
  };
  let bias: Value;
  const middle = kvLen5 || !shift ? undefined : middleRow(x.spec, s, bs);
  if (!shift || !middle) {
    bias = exactRows(blockIndex, 'band_exact');
  } else {
    // head blocks read keys before the spec's absolute reach (or below 0), tail blocks keys at or past T;
    // every other block reads the constant row [b, W] (its extra keys all lie before its band: constant too)
    const reach = absoluteReach(x.spec);
    const low = s.lo < 0 ? shift : off;
    const head = b.op('Min', [b.op('Div', [b.op('Max', [b.op('Sub', [i64(reach + bs - 1, 'band_reach'), low], 'band_head_num'), zero], 'band_head_pos'), i64(bs, 'band_block6')], 'band_head_div'), nBlocks], 'band_head_blocks');
    const tailNum = b.op('Add', [b.op('Sub', [T, shift], 'band_t_minus_shift'), i64(bs - L, 'band_tail_shift')], 'band_tail_num');
    const tail = clamp(b.op('Div', [b.op('Max', [tailNum, zero], 'band_tail_pos'), i64(bs, 'band_block7')], 'band_tail_div'), head, nBlocks, 'band_tail_start');
    const odd = b.op('Concat', [b.op('Range', [zero, head, i64(1, 'band_r2')], 'band_head_index'), b.op('Range', [tail, nBlocks, i64(1, 'band_r3')], 'band_tail_index')], 'band_edge_blocks', axis(0));
    const constant = b.constant('band_pattern', Tensor.fromValues(sm, [1, bs, X + L], middle.map((k) => (k ? 0 : -Infinity))));
    const full = b.op('Expand', [constant, b.op('Concat', [vec(nBlocks, 'band_blocks_2'), b.ints('band_pattern_dims', [bs, X + L])], 'band_pattern_shape', axis(0))], 'band_pattern_full');
    bias = b.op('ScatterND', [full, b.reshape(odd, [-1, 1], 'band_edge_index'), exactRows(odd, 'band_edge')], 'band_bias');
  }
  return { nBlocks, blockIndex, ...(front && back ? { front, back } : {}), granules, bias, offset: off };
}
