// The spec's keep(i, j) predicate as WGSL: @attnopt/ir's keep expression written out through a table of
// op -> WGSL (i32 arithmetic, && / || / !), one straight-line expression per spec tree. Constant sets and block
// layouts become const tables with a lookup function:
//   in(x, T)               -> global<n>_has(x)                    (a const token table)
//   rowHas(R, i / bq, j / bk) -> blocks<n>_keeps(i / bq, j / bk)   (const CSR tables)
// Data-dependent leaves:
//   lsh(R rounds, chunk 0)  -> some round r: hq[r][i] == hk[r][j]     (bucket codes in `data_codes`)
//   lsh(R rounds, chunk c)  -> some round r: ck[r][j] in {cq[r][i], cq[r][i] - 1}   (chunk codes)
//   topkBlocks(block)       -> kept[i / block][j / block] != 0          (per query head, in `data_codes`)
// off(top-left) = 0, off(bottom-right) = nk - nq (`off_br`), off(past) = the batch's past length (`past`).
// Data-dependent leaves read per-head codes from the storage buffer `data_codes` at the offsets given by the
// uniforms `leaf<n>_q` / `leaf<n>_k` (query head qh = b * H + h, key/value head kh = b * G + g); the runtime
// fills them before the attention dispatch (src/data-leaves.ts: LSH hashed on the device, top-k on the host).

import { type DataDependentSpec, emitKeep, type KeepExpr, keepExpr, type KeepTable, type KeepVar, type MaskSpec } from '@attnopt/ir';

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

const VARS: Record<KeepVar, string> = { i: 'i', j: 'j', offBR: 'off_br', past: 'past' };
const int = (x: number): string => `${Math.trunc(x)}`;

interface Context {
  readonly sub: (e: KeepExpr) => string;
  /** Declares the tables and helper of a constant set or block layout once; returns its name prefix. */
  readonly table: (source: object, prefix: string, declare: (name: string) => string[]) => string;
  readonly decls: string[];
  readonly dataLeaves: DataDependentSpec[];
}

/** One entry per op of the keep expression: how it reads in WGSL (i32 arithmetic). */
const WGSL: KeepTable<Context, string> = {
  bool: (e) => `${e.value}`,
  int: (e) => int(e.value),
  var: (e) => VARS[e.name],
  add: (e, { sub }) => `(${sub(e.a)} + ${sub(e.b)})`,
  sub: (e, { sub }) => `(${sub(e.a)} - ${sub(e.b)})`,
  div: (e, { sub }) => `(${sub(e.a)} / ${sub(e.b)})`,
  mod: (e, { sub }) => `(${sub(e.a)} % ${sub(e.b)})`,
  lt: (e, { sub }) => `(${sub(e.a)} < ${sub(e.b)})`,
  le: (e, { sub }) => `(${sub(e.a)} <= ${sub(e.b)})`,
  ge: (e, { sub }) => `(${sub(e.a)} >= ${sub(e.b)})`,
  eq: (e, { sub }) => `(${sub(e.a)} == ${sub(e.b)})`,
  and: (e, { sub }) => `(${e.parts.map(sub).join(' && ')})`,
  or: (e, { sub }) => `(${e.parts.map(sub).join(' || ')})`,
  not: (e, { sub }) => `!${sub(e.a)}`,
  in: (e, { sub, table }) => {
    const values = e.set.values;
    const t = table(e.set, e.set.label, (name) => [
      `const ${name}_tokens = array<i32, ${values.length}>(${values.map(int).join(', ')});`,
      `fn ${name}_has(x: i32) -> bool {\n  for (var t = 0u; t < ${values.length}u; t++) {\n    if (${name}_tokens[t] == x) { return true; }\n  }\n  return false;\n}`,
    ]);
    return `${t}_has(${sub(e.x)})`;
  },
  rowHas: (e, { sub, table }) => {
    const rows = e.table.rows;
    const t = table(e.table, 'blocks', (name) => {
      const starts = [0];
      const cols: number[] = [];
      for (const r of rows) {
        cols.push(...r);
        starts.push(cols.length);
      }
      return [
        `const ${name}_start = array<u32, ${starts.length}>(${starts.map((x) => `${x}u`).join(', ')});`,
        `const ${name}_cols = array<i32, ${cols.length}>(${cols.map(int).join(', ')});`,
        `fn ${name}_keeps(row: i32, c: i32) -> bool {\n  let r = u32(row);\n  if (r >= ${rows.length}u) { return false; }\n  for (var t = ${name}_start[r]; t < ${name}_start[r + 1u]; t++) {\n    if (${name}_cols[t] == c) { return true; }\n  }\n  return false;\n}`,
      ];
    });
    return `${t}_keeps(${sub(e.row)}, ${sub(e.col)})`;
  },
  leaf: (e, { decls, dataLeaves }) => {
    const n = dataLeaves.push(e.spec) - 1;
    const s = e.spec;
    if (s.kind === 'lsh') {
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
    const B = int(s.block);
    decls.push(
      `fn leaf${n}_keeps(i: i32, j: i32, qh: u32) -> bool {\n` +
        `  let nqb = (u.nq + ${B}u - 1u) / ${B}u;\n  let nkb = (u.nk + ${B}u - 1u) / ${B}u;\n` +
        `  return data_codes[u.leaf${n}_q + (qh * nqb + u32(i) / ${B}u) * nkb + u32(j) / ${B}u] != 0u;\n}`,
    );
    return `leaf${n}_keeps(i, j, qh)`;
  },
};

/**
 * WGSL for the keep predicate of a mask spec. Data-dependent leaves read `data_codes` and the uniforms
 * u.leaf<n>_q, u.leaf<n>_k, u.nq and u.nk, which the kernel must declare (see dataLeafUniforms).
 */
export function maskPredicate(spec: MaskSpec): MaskPredicate {
  const expr = keepExpr(spec);
  if (expr.op === 'bool' && expr.value) return { code: '', always: true, dataLeaves: [] };
  let counter = 0;
  const prefixes = new Map<object, string>();
  const cx: Context = {
    sub: (e) => emitKeep(WGSL, e, cx),
    table: (source, prefix, declare) => {
      let name = prefixes.get(source);
      if (name === undefined) {
        prefixes.set(source, (name = `${prefix}${counter++}`));
        cx.decls.push(...declare(name));
      }
      return name;
    },
    decls: [],
    dataLeaves: [],
  };
  const body = cx.sub(expr);
  // off_br, past, qh and kh are parameters of every predicate; a leaf that does not use them leaves them unread.
  const fn =
    'fn keep(i: i32, j: i32, off_br: i32, past: i32, qh: u32, kh: u32) -> bool {\n' +
    `  _ = off_br;\n  _ = past;\n  _ = qh;\n  _ = kh;\n  return ${body};\n}`;
  return { code: [...cx.decls, fn].join('\n'), always: false, dataLeaves: cx.dataLeaves };
}
