// Einsum attention in any letter spelling: the two equations are parsed into roles (batch letters, query,
// key, head size, value size) instead of matched against a list of spellings.
//   Einsum(Q, K, "bqhd,bkhd->bhqk") -> scores [b, h, q, k] from Q, K read as [b, h, q, d] and [b, h, k, d]
//   Einsum(K, Q, "bkhd,bqhd->bhqk") -> the same, the operands' roles swapped
//   Einsum(P, V, "bhqk,bkhd->bqhd") -> Y [b, q, h, d] from V read as [b, h, k, d] and Y4 [b, h, q, d]
//   Einsum(Q, K, "...qhd,...khd->...hqk") -> the ellipsis spelled out from the operands' ranks first
// A role's axis order is a permutation of the operand's axes; the rule applies it as a Transpose (none when
// it is the identity). The scores must come out as [batch..., query, key] (the softmax axis last).

import type { Node } from '@attnopt/ir';
import { type MatchResult, matched, noMatch } from '@attnopt/rewrite';
import { inferRank } from '../../shape-inference/shapes.js';

/** A parsed two-operand equation: each operand's letters and the output's, one letter per axis. */
export interface Equation {
  readonly a: string;
  readonly b: string;
  readonly out: string;
}

/**
 * Q·Kᵀ as an Einsum: permutations turning Q into [batch..., S, D] and K into [batch..., T, D]. `swapped`: the
 * first operand is K and the second Q (the output's last axis is the first operand's free axis).
 */
export interface ScoresEinsum {
  readonly batch: number;
  readonly swapped: boolean;
  readonly qPerm: readonly number[];
  readonly kPerm: readonly number[];
}

/** P·V as an Einsum: V into [batch..., T, Dv]; Y read back from Y4 = [batch..., S, Dv] by `yPerm`. */
export interface OutputEinsum {
  readonly vPerm: readonly number[];
  readonly yPerm: readonly number[];
}

/**
 * `ab,cd->ef` with explicit output, each letter once per operand. An ellipsis (`...qhd,...khd->...hqk`, as
 * Flax and einops-style PyTorch write it) stands for the operand's leading axes, as many as its rank (read from
 * the shape engine) leaves; they are spelled with letters of their own, aligned to the right as einsum
 * broadcasts them, and the output's ellipsis takes the longest.
 */
export function parseEquation(n: Node): MatchResult<Equation> {
  const attr = n.attrs.get('equation');
  if (attr?.type !== 'string') return noMatch(`${n.describe()} has no equation`);
  const eq = attr.value.replace(/\s+/g, '');
  const m = /^((?:\.\.\.)?[A-Za-z]*),((?:\.\.\.)?[A-Za-z]*)->((?:\.\.\.)?[A-Za-z]*)$/.exec(eq);
  if (!m) return noMatch(`${n.describe()}'s equation "${attr.value}" is not two operands with an explicit output`);
  const ellipsis = withoutEllipsis(n, [m[1]!, m[2]!, m[3]!]);
  if (!ellipsis.ok) return ellipsis;
  const [a, b, out] = ellipsis.value;
  if ([a, b, out].some((s) => new Set(s).size !== s.length)) return noMatch(`${n.describe()}'s equation "${attr.value}" repeats a letter within one operand (a diagonal)`);
  return matched({ a, b, out });
}

/** The three terms with each leading `...` replaced by letters the equation does not use (see parseEquation). */
function withoutEllipsis(n: Node, terms: readonly [string, string, string]): MatchResult<readonly [string, string, string]> {
  if (!terms.some((t) => t.startsWith('...'))) return matched(terms);
  const free = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'].filter((c) => !terms.some((t) => t.includes(c)));
  const counts: number[] = [];
  for (const k of [0, 1] as const) {
    if (!terms[k].startsWith('...')) continue;
    const rank = inferRank(n.inputs[k]);
    if (rank === undefined) return noMatch(`${n.describe()}'s equation has an ellipsis over operand ${k}, whose rank is not known`);
    const count = rank - (terms[k].length - 3);
    if (count < 0) return noMatch(`${n.describe()}'s equation names more axes than operand ${k}'s ${rank}`);
    counts[k] = count;
  }
  const longest = Math.max(0, ...counts.filter((c) => c !== undefined));
  const leading = free.slice(0, longest).join('');
  // an operand with fewer ellipsis axes than another takes the last of them (broadcast from the right)
  const spell = (t: string, count: number) => (t.startsWith('...') ? leading.slice(longest - count) + t.slice(3) : t);
  return matched([spell(terms[0], counts[0] ?? 0), spell(terms[1], counts[1] ?? 0), spell(terms[2], longest)] as const);
}

const only = (s: string, keep: (c: string) => boolean) => [...s].filter(keep);
const permOf = (from: string, to: readonly string[]) => to.map((c) => from.indexOf(c));

/** Q·Kᵀ: one contracted letter (head size), one query letter, one key letter (last in the output), batch letters shared. */
export function scoresEinsum(n: Node): MatchResult<ScoresEinsum> {
  const e = parseEquation(n);
  if (!e.ok) return e;
  const { a, b, out } = e.value;
  const d = only(a, (c) => b.includes(c) && !out.includes(c));
  const i = only(a, (c) => !b.includes(c));
  const j = only(b, (c) => !a.includes(c));
  const batch = only(out, (c) => a.includes(c) && b.includes(c));
  const what = `${n.describe()} ("${a},${b}->${out}")`;
  if (d.length !== 1) return noMatch(`${what} contracts ${d.length} letters, not one head-size axis: not Q · Kᵀ`);
  if (i.length !== 1 || j.length !== 1) return noMatch(`${what} does not keep exactly one query and one key axis: not Q · Kᵀ`);
  // Einsum(K, Q, "bkhd,bqhd->bhqk") is the same product with the operands' roles swapped
  const swapped = out === [...batch, j[0], i[0]].join('');
  if (!swapped && out !== [...batch, i[0], j[0]].join('')) return noMatch(`${what} does not write the scores as [batch..., query, key] of its operands either way`);
  if (a.length !== batch.length + 2 || b.length !== batch.length + 2) return noMatch(`${what} sums over a batch axis`);
  const [q, k, qi, kj] = swapped ? [b, a, j[0]!, i[0]!] : [a, b, i[0]!, j[0]!];
  return matched({ batch: batch.length, swapped, qPerm: permOf(q, [...batch, qi, d[0]!]), kPerm: permOf(k, [...batch, kj, d[0]!]) });
}

/** P·V: P's axes are the scores' [batch..., query, key] in order; the key letter contracted against V. */
export function outputEinsum(n: Node, scoresRank: number): MatchResult<OutputEinsum> {
  const e = parseEquation(n);
  if (!e.ok) return e;
  const { a: p, b: v, out: y } = e.value;
  const what = `${n.describe()} ("${p},${v}->${y}")`;
  if (p.length !== scoresRank) return noMatch(`${what} reads the probabilities with ${p.length} axes, the scores have ${scoresRank}`);
  const batch = [...p.slice(0, -2)];
  const [i, j] = [p.at(-2)!, p.at(-1)!];
  const e2 = only(v, (c) => !p.includes(c));
  if (!v.includes(j) || y.includes(j)) return noMatch(`${what} does not contract the key axis of the probabilities with V: not probabilities · V`);
  if (v.includes(i) || !y.includes(i)) return noMatch(`${what} does not keep the query axis: not probabilities · V`);
  if (e2.length !== 1 || !y.includes(e2[0]!)) return noMatch(`${what} does not keep exactly one value axis of V: not probabilities · V`);
  if (!batch.every((c) => v.includes(c) && y.includes(c)) || v.length !== batch.length + 2 || y.length !== batch.length + 2) {
    return noMatch(`${what} does not share the batch axes of the probabilities with V and the output: not probabilities · V`);
  }
  const y4 = [...batch, i, e2[0]!].join('');
  return matched({ vPerm: permOf(v, [...batch, j, e2[0]!]), yPerm: permOf(y4, [...y]) });
}

export const isIdentity = (perm: readonly number[]) => perm.every((x, k) => x === k);
