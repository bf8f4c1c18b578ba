// The outcome of a match: the matched value, or the reason it failed in words a user can read.

import type { Node } from '@attnopt/ir';

export type MatchResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string; readonly node?: Node };

export const matched = <T>(value: T): MatchResult<T> => ({ ok: true, value });

export const noMatch = <T = never>(reason: string, node?: Node): MatchResult<T> =>
  node === undefined ? { ok: false, reason } : { ok: false, reason, node };

/** Chains a second step onto a successful match. */
export function andThen<T, U>(r: MatchResult<T>, next: (value: T) => MatchResult<U>): MatchResult<U> {
  return r.ok ? next(r.value) : r;
}
