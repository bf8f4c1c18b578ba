// The chosen form of a site read back from optimize's text: one spec for every head ("window(...)"), or head
// groups, each with its own spec ("heads 0-1: window(...) | head 2: dense").

import { type AttentionSpec, parseSpec } from '@attnopt/ir';

export interface HeadGroupSpec {
  /** Query heads, ascending. */
  readonly heads: readonly number[];
  readonly spec: AttentionSpec;
}

const GROUP = /^heads? (\d+)(?:-(\d+))?: (.+)$/;

/** The groups of the chosen form (one group of every head for a single spec); undefined when unreadable. */
export function chosenGroups(text: string, numHeads: number): HeadGroupSpec[] | undefined {
  try {
    if (!/^heads? \d/.test(text)) return [{ heads: Array.from({ length: numHeads }, (_, h) => h), spec: parseSpec(text) }];
    return text.split(' | ').map((part) => {
      const m = GROUP.exec(part.trim());
      if (m === null) throw new Error(`not a head group: ${part}`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      return { heads: Array.from({ length: hi - lo + 1 }, (_, k) => lo + k), spec: parseSpec(m[3]!) };
    });
  } catch {
    return undefined;
  }
}

/** The spec head h computes under `groups`. */
export const specOfHead = (groups: readonly HeadGroupSpec[], h: number): AttentionSpec | undefined => groups.find((g) => g.heads.includes(h))?.spec;
