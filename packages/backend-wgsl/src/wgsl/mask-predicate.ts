// The spec's keep(i, j) predicate as WGSL, generated from the spec tree (one table entry per leaf kind):
//   causal(a)          -> j <= i + off(a)
//   window(l, r, a)    -> p - l <= j && j <= p + r,                 p = i + off(a)
//   dilated(l, r, d, a)-> window && (p - j) % d == 0
//   sinks(n)           -> j < n
//   global(T, a)       -> j in T || p in T                           (a const token table)
//   blocks(bq, bk, R)  -> j / bk in R[i / bq]                         (const CSR tables)
//   union / intersect / diff -> || / && / && !
//   lsh(R rounds, chunk 0)  -> some round r: hq[r][i] == hk[r][j]     (bucket codes in `data_codes`)
//   lsh(R rounds, chunk c)  -> some round r: ck[r][j] in {cq[r][i], cq[r][i] - 1}   (chunk codes)
//   topkBlocks(block)       -> kept[i / block][j / block] != 0          (per query head, in `data_codes`)
// off(top-left) = 0, off(bottom-right) = nk - nq (`off_br`), off(past) = the batch's past length (`past`).
// Data-dependent leaves read per-head codes from the storage buffer `data_codes` at the offsets given by the
// uniforms `leaf<n>_q` / `leaf<n>_k` (query head qh = b * H + h, key/value head kh = b * G + g); the runtime
// fills them before the attention dispatch (src/data-leaves.ts: LSH hashed on the device, top-k on the host).

import type { Align, DataDependentSpec, MaskSpec } from '@attnopt/ir';

export interface MaskPredicate {
  /**
   * Module-scope WGSL: `fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool` and its
   * tables.
   */
  readonly code: string;
  /** True when every pair is kept (dense): the kernel needs no predicate at all. */
  readonly always: boolean;
  /** The data-dependent leaves in the order of their `leaf<n>_q` / `leaf<n>_k` uniforms. */
  readonly dataLeaves: readonly DataDependentSpec[];
}

/** The uniforms a predicate with `count` data leaves reads (offsets into `data_codes`). */
export function dataLeafUniforms(count: number): string[] {
  const out: string[] = [];
  for (let n = 0; n < count; n++) out.push(`leaf${n}_q`, `leaf${n}_k`);
  return out;
}

const offset = (a: Align): string => (a === 'top-left' ? '0' : a === 'bottom-right' ? 'off_br' : 'past');
const int = (x: number): string => `${Math.trunc(x)}`;
const pos = (a: Align): string => `(i + ${offset(a)})`;

/**
 * WGSL for the keep predicate of a mask spec. Data-dependent leaves read `data_codes` and the uniforms
 * u.leaf<n>_q, u.leaf<n>_k, u.nq and u.nk, which the kernel must declare (see dataLeafUniforms).
 */
export function maskPredicate(spec: MaskSpec): MaskPredicate {
  const decls: string[] = [];
  const dataLeaves: DataDependentSpec[] = [];
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
      case 'lsh': {
        const n = dataLeaves.length;
        dataLeaves.push(s);
        const R = int(s.hashes);
        const hit = s.chunk === 0 ? 'a == c' : '(c == a || c + 1u == a)';
        decls.push(
          `fn leaf${n}_keeps(i: i32, j: i32, qh: u32, kh: u32) -> bool {\n` +
            `  for (var r = 0u; r < ${R}u; r++) {\n` +
            `    let a = data_codes[u.leaf${n}_q + (qh * ${R}u + r) * u.nq + u32(i)];\n` +
            `    let c = data_codes[u.leaf${n}_k + (kh * ${R}u + r) * u.nk + u32(j)];\n` +
            `    if (${hit}) { return true; }\n  }\n  return false;\n}`,
        );
        return `leaf${n}_keeps(i, j, qh, kh)`;
      }
      case 'topkBlocks': {
        const n = dataLeaves.length;
        dataLeaves.push(s);
        const B = int(s.block);
        decls.push(
          `fn leaf${n}_keeps(i: i32, j: i32, qh: u32) -> bool {\n` +
            `  let nqb = (u.nq + ${B}u - 1u) / ${B}u;\n  let nkb = (u.nk + ${B}u - 1u) / ${B}u;\n` +
            `  return data_codes[u.leaf${n}_q + (qh * nqb + u32(i) / ${B}u) * nkb + u32(j) / ${B}u] != 0u;\n}`,
        );
        return `leaf${n}_keeps(i, j, qh)`;
      }
    }
  };
  const body = expr(spec);
  if (spec.kind === 'dense') return { code: '', always: true, dataLeaves };
  // off_br, past, qh and kh are parameters of every predicate; a leaf that does not use them leaves them unread.
  const fn =
    'fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool {\n' +
    `  _ = off_br;\n  _ = past;\n  _ = qh;\n  _ = kh;\n  return ${body};\n}`;
  return { code: [...decls, fn].join('\n'), always: false, dataLeaves };
}
