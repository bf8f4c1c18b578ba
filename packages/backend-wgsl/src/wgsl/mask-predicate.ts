// The spec's keep(i, j) predicate as WGSL, generated from the spec tree (one table entry per leaf kind):
//   causal(a)          -> j <= i + off(a)
//   window(l, r, a)    -> p - l <= j && j <= p + r,                 p = i + off(a)
//   dilated(l, r, d, a)-> window && (p - j) % d == 0
//   sinks(n)           -> j < n
//   global(T, a)       -> j in T || p in T                           (a const token table)
//   blocks(bq, bk, R)  -> j / bk in R[i / bq]                         (const CSR tables)
//   union / intersect / diff -> || / && / && !
// off(top-left) = 0, off(bottom-right) = nk - nq (`off_br`), off(past) = the batch's past length (`past`).
// Data-dependent leaves (top-k blocks, LSH) have no index predicate: the host resolves them (see README).

import type { Align, MaskSpec } from '@attnopt/ir';

export interface MaskPredicate {
  /** Module-scope WGSL: `fn keep(i: i32, j: i32, off_br: i32, past: i32) -> bool` and its tables. */
  readonly code: string;
  /** True when every pair is kept (dense): the kernel needs no predicate at all. */
  readonly always: boolean;
}

const offset = (a: Align): string => (a === 'top-left' ? '0' : a === 'bottom-right' ? 'off_br' : 'past');
const int = (x: number): string => `${Math.trunc(x)}`;
const pos = (a: Align): string => `(i + ${offset(a)})`;

/** WGSL for the keep predicate of an index-only mask spec. Throws for data-dependent leaves. */
export function maskPredicate(spec: MaskSpec): MaskPredicate {
  const decls: string[] = [];
  let counter = 0;
  const expr = (s: MaskSpec): string => {
    switch (s.kind) {
      case 'dense':
        return 'true';
      case 'empty':
        return 'false';
      case 'causal':
        return `(j <= ${pos(s.align)})`;
      case 'window':
        return `(j >= ${pos(s.align)} - ${int(s.left)} && j <= ${pos(s.align)} + ${int(s.right)})`;
      case 'dilated':
        return `(j >= ${pos(s.align)} - ${int(s.left)} && j <= ${pos(s.align)} + ${int(s.right)} && (${pos(s.align)} - j) % ${int(s.dilation)} == 0)`;
      case 'sinks':
        return `(j < ${int(s.count)})`;
      case 'global': {
        if (s.tokens.length === 0) return 'false';
        const n = counter++;
        decls.push(
          `const global${n}_tokens = array<i32, ${s.tokens.length}>(${s.tokens.map(int).join(', ')});`,
          `fn global${n}_has(x: i32) -> bool {\n  for (var t = 0u; t < ${s.tokens.length}u; t++) {\n    if (global${n}_tokens[t] == x) { return true; }\n  }\n  return false;\n}`,
        );
        return `(global${n}_has(j) || global${n}_has(${pos(s.align)}))`;
      }
      case 'blocks': {
        const rows = s.rows;
        if (rows.every((r) => r.length === 0)) return 'false';
        const n = counter++;
        const starts = [0];
        const cols: number[] = [];
        for (const r of rows) {
          cols.push(...r);
          starts.push(cols.length);
        }
        decls.push(
          `const blocks${n}_start = array<u32, ${starts.length}>(${starts.map((x) => `${x}u`).join(', ')});`,
          `const blocks${n}_cols = array<i32, ${cols.length}>(${cols.map(int).join(', ')});`,
          `fn blocks${n}_keeps(i: i32, j: i32) -> bool {\n  let r = u32(i / ${int(s.blockQ)});\n  if (r >= ${rows.length}u) { return false; }\n  let c = j / ${int(s.blockK)};\n  for (var t = blocks${n}_start[r]; t < blocks${n}_start[r + 1u]; t++) {\n    if (blocks${n}_cols[t] == c) { return true; }\n  }\n  return false;\n}`,
        );
        return `blocks${n}_keeps(i, j)`;
      }
      case 'union':
        return `(${s.parts.map(expr).join(' || ')})`;
      case 'intersect':
        return `(${s.parts.map(expr).join(' && ')})`;
      case 'diff':
        return `(${expr(s.base)} && !${expr(s.minus)})`;
      case 'topkBlocks':
      case 'lsh':
        throw new Error(
          `WGSL backend: spec ${s.kind} is data-dependent and has no index predicate; resolve its key sets on the host ` +
            `(e.g. @attnopt/reference's dataLeafResolver) and pass them as a boolean bias with a dense spec`,
        );
    }
  };
  const body = expr(spec);
  if (spec.kind === 'dense') return { code: '', always: true };
  // off_br and past are parameters of every predicate; a leaf that does not use them leaves them unread.
  const fn = `fn keep(i: i32, j: i32, off_br: i32, past: i32) -> bool {\n  _ = off_br;\n  _ = past;\n  return ${body};\n}`;
  return { code: [...decls, fn].join('\n'), always: false };
}
