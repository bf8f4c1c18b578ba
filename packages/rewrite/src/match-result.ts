// The outcome of a match: the matched value, or the reason it failed in words a user can read.

import type { Node } from '@attnopt/ir';

export type MatchResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string; readonly node?: Node; readonly quiet?: true };

export const matched = <T>(value: T): MatchResult<T> => ({ ok: true, value });

export const noMatch = <T = never>(reason: string, node?: Node): MatchResult<T> =>
  node === undefined ? { ok: false, reason } : { ok: false, reason, node };

/**
 * The root is not what the rule looks for at all (a rule rooted at a common op, such as Div, offered every Div):
 * no match, and no note about it.
 */
export const notThisPattern = <T = never>(): MatchResult<T> => ({ ok: false, reason: '', quiet: true });

/** Chains a second step onto a successful match. */
export function andThen<T, U>(r: MatchResult<T>, next: (value: T) => MatchResult<U>): MatchResult<U> {
  return r.ok ? next(r.value) : r;
}
