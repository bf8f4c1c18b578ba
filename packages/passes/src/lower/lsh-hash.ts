// Angular LSH as ONNX ops, exactly as @attnopt/ir's semantics (spec/semantics/lsh.ts) defines it:
//   bucket ids:  ArgMax over [x R_r ; -x R_r] (first maximum wins, as ONNX ArgMax's default), R the
//                rotations lshRotations draws from the seed, a constant [hashes, d, buckets/2];
//   sort order:  rows sorted by (bucket, index): TopK (ascending) over the distinct int64 keys
//                bucket · n + index, so no two keys tie and the order is the semantics' stable one;
//   positions:   the inverse permutation (ScatterElements of 0..n-1 at the sorted rows);
//   keep-mask:   the dense [B, H, nq, nk] mask of a leaf (same bucket, or own / previous chunk, in some
//                round) for the dense lowering of specs that combine LSH otherwise.

import { type DType, type Lsh, lshRotations, Tensor, type Value } from '@attnopt/ir';
import type { NodeBuilder } from '@attnopt/rewrite';

const int = (x: number) => ({ type: 'int', value: BigInt(x) }) as const;

/** Bucket ids [B, H, hashes, n] (int64) of the rows of x [B, H, n, d]. */
export function lshBucketIds(b: NodeBuilder, leaf: Lsh, x: Value, d: number, dtype: DType, what: string): Value {
  const half = leaf.buckets / 2;
  const rot = b.constant(`${what}_rotations`, Tensor.fromValues(dtype, [leaf.hashes, d, half], Array.from(lshRotations(leaf, d))));
  const proj = b.op('MatMul', [b.reshape(x, [0, 0, 1, -1, d], `${what}_rows`), rot], `${what}_proj`); // [B, H, hashes, n, half]
  const both = b.op('Concat', [proj, b.op('Neg', [proj], `${what}_proj_neg`)], `${what}_proj_both`, { axis: int(-1) });
  return b.op('ArgMax', [both], `${what}_bucket`, { axis: int(-1), keepdims: int(0) });
}

export interface LshOrder {
  /** perm[.., r, p]: the row at sorted position p in round r, [B, H, hashes, n] int64. */
  readonly perm: Value;
  /** pos[.., r, i]: the sorted position of row i (the inverse permutation), [B, H, hashes, n] int64. */
  readonly pos: Value;
}

/** The (bucket, index) sort of every round, and its inverse; n is the row count (int64 scalar). */
export function lshOrder(b: NodeBuilder, ids: Value, n: Value, what: string): LshOrder {
  const index = b.op('Range', [b.scalar(`${what}_r0`, 'i64', 0), n, b.scalar(`${what}_r1`, 'i64', 1)], `${what}_index`);
  const key = b.op('Add', [b.op('Mul', [ids, n], `${what}_bucket_major`), index], `${what}_sort_key`);
  const top = b.node({ op: 'TopK', inputs: [key, b.reshape(n, [1], `${what}_count`)], attrs: { axis: int(-1), largest: int(0), sorted: int(1) } }, `${what}_sorted`, 2);
  const perm = top[1]!;
  const ranks = b.op('Expand', [index, b.op('Shape', [perm], `${what}_perm_shape`)], `${what}_ranks`);
  const pos = b.op('ScatterElements', [b.op('Mul', [ranks, b.scalar(`${what}_zero`, 'i64', 0)], `${what}_zeros`), perm, ranks], `${what}_position`, { axis: int(-1) });
  return { perm, pos };
}

export interface LshMaskInputs {
  /** [B, H, nq, d] and [B, H, nk, d]: heads already repeated for GQA. */
  readonly q: Value;
  readonly k: Value;
  readonly headDim: number;
  readonly dtype: DType;
  /**
   * The keys the spec's selection reads (the keys' buckets) when they differ from `k`: the raw keys, padding
   * included, as the IR defines the selection; `k` has padding out of reach (padding.ts). Default `k`.
   */
  readonly selectionK?: Value;
}

/**
 * The leaf's keep-mask [B, H, nq, nk]: chunk 0, query i and key j share a bucket in some round; chunk c > 0
 * (nq == nk), key j's chunk (sorted position / c) is query i's or the one before it in some round.
 */
export function lshKeepMask(b: NodeBuilder, leaf: Lsh, x: LshMaskInputs, what = 'lsh_mask'): Value {
  const hq = lshBucketIds(b, leaf, x.q, x.headDim, x.dtype, `${what}_q`);
  const hk = lshBucketIds(b, leaf, x.selectionK ?? x.k, x.headDim, x.dtype, `${what}_k`);
  let gq = hq;
  let gk = hk;
  if (leaf.chunk > 0) {
    const len = (t: Value, w: string) => b.op('Gather', [b.op('Shape', [t], `${w}_shape`), b.scalar(`${w}_axis`, 'i64', 2)], w, { axis: int(0) });
    const c = b.scalar(`${what}_chunk`, 'i64', leaf.chunk);
    gq = b.op('Div', [lshOrder(b, hq, len(x.q, `${what}_nq`), `${what}_q`).pos, c], `${what}_q_chunk`);
    gk = b.op('Div', [lshOrder(b, hk, len(x.k, `${what}_nk`), `${what}_k`).pos, c], `${what}_k_chunk`);
  }
  const rows = b.reshape(gq, [0, 0, 0, -1, 1], `${what}_rows`); // [B, H, hashes, nq, 1]
  const cols = b.reshape(gk, [0, 0, 0, 1, -1], `${what}_cols`); // [B, H, hashes, 1, nk]
  let hit = b.op('Equal', [rows, cols], `${what}_same`);
  if (leaf.chunk > 0) {
    const prev = b.op('Sub', [rows, b.scalar(`${what}_one`, 'i64', 1)], `${what}_prev_chunk`);
    hit = b.op('Or', [hit, b.op('Equal', [prev, cols], `${what}_previous`)], `${what}_hit`);
  }
  const rounds = Array.from({ length: leaf.hashes }, (_, r) => b.op('Gather', [hit, b.scalar(`${what}_round${r}`, 'i64', r)], `${what}_round${r}_keep`, { axis: int(2) }));
  return rounds.reduce((acc, m) => b.op('Or', [acc, m], `${what}_any_round`));
}
