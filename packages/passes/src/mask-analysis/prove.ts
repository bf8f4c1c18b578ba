// From a symbolic keep-predicate to a spec of the mask algebra, for every length:
//   j - i <= 0                          -> causal(top-left)
//   j - i <= S_k - S_q                  -> causal(bottom-right)
//   -l <= j - i <= r                    -> window(l, r)
//   j <= c - 1  ∨  band                 -> union(sinks(c), band)
// Each step is an identity of predicates over integers, so the spec keeps exactly the pairs the bias keeps;
// a numeric cross-check at two lengths guards the translation itself.

import {
  type Align,
  causal,
  difference,
  intersect,
  keeps,
  type MaskSpec,
  printSpec,
  sinks,
  slidingWindow,
  ONNX_DOMAIN,
  union,
  type Value,
} from '@attnopt/ir';
import {
  asFormula,
  type AbstractValue,
  type EvalContext,
  evaluate,
  type Formula,
  isMaskedFill,
  newContext,
  type Sym,

  symAdd,
  symConst,
  symEq,
  symEval,
  symIsConst,
  symSub,
  symToString,
} from './symbolic.js';
import { simplifySpec } from './simplify.js';

/** The query and key lengths of the site, symbolic where the model is. */
export interface SiteDims {
  readonly nq?: Sym;
  readonly nk?: Sym;
  /** Cached keys before this call's keys (the site's past_key length), for `past` alignment. */
  readonly past?: Sym;
}

export interface MaskProof {
  /** The proven structural part; undefined when nothing could be proven. */
  readonly spec: MaskSpec | undefined;
  /** True when the bias is fully explained by `spec` (0 where kept, masked elsewhere): dropping it is exact. */
  readonly exact: boolean;
  /** The data-dependent part that must stay as the bias (a keep-mask when `residualIsBool`). */
  readonly residual: Value | undefined;
  readonly notes: readonly string[];
  /** Nodes read by the analysis. */
  readonly visited: ReadonlySet<import('@attnopt/ir').Node>;
  /** The structural keep formula the spec was read from (NNF), when proven. */
  readonly keep?: Formula;
  /** The evaluator's reading of every value it visited (for restricting the residual: key-rows.ts), proven or not. */
  readonly readings?: ReadonlyMap<Value, AbstractValue>;
}

class NotProven extends Error {}
const stop = (why: string): never => {
  throw new NotProven(why);
};

/** Negation pushed to the atoms: ¬(e >= 0) <=> -e - 1 >= 0 over the integers. */
export function nnf(f: Formula, neg = false): Formula {
  switch (f.op) {
    case 'const':
      return { op: 'const', value: f.value !== neg };
    case 'lin':
      return neg ? { op: 'lin', ci: -f.ci, cj: -f.cj, c: symSub(symConst(-1), f.c) } : f;
    case 'not':
      return nnf(f.x, !neg);
    case 'data': {
      if (!neg) return f;
      if (f.negated) return { op: 'data', value: f.value, reason: f.reason };
      // ¬Not(m) is m: a keep-mask the model negated itself (masked = causal | Not(attention_mask))
      const not = f.value.producer;
      if (not?.op === 'Not' && not.domain === ONNX_DOMAIN && not.inputs[0]) return { op: 'data', value: not.inputs[0], reason: f.reason };
      // else the complement of m, which no value holds: it stays data, and the whole bias will be the residual
      return { op: 'data', value: f.value, reason: f.reason, negated: true };
    }
    case 'and':
    case 'or': {
      const op = (f.op === 'and') !== neg ? 'and' : 'or';
      return { op, parts: f.parts.map((p) => nnf(p, neg)) };
    }
  }
}

function conjuncts(f: Formula): Formula[] {
  return f.op === 'and' ? f.parts.flatMap(conjuncts) : [f];
}

interface Bounds {
  lo?: Sym; // j - i >= lo
  hi?: Sym; // j - i <= hi
  jHi?: Sym; // j <= jHi
  jLo?: Sym; // j >= jLo
}

function tighter(a: Sym | undefined, b: Sym, max: boolean): Sym {
  if (!a) return b;
  const d = symSub(a, b);
  if (!symIsConst(d)) return stop(`bounds ${symToString(a)} and ${symToString(b)} cannot be ordered for every length`);
  return (d.c > 0) === max ? a : b;
}

/** Each alignment the site's lengths can name, with the query offset it adds (for every length). */
function alignBases(dims: SiteDims): [Align, Sym][] {
  const out: [Align, Sym][] = [['top-left', symConst(0)]];
  if (dims.nq && dims.nk) out.push(['bottom-right', symSub(dims.nk, dims.nq)]);
  if (dims.past) out.push(['past', dims.past]);
  return out;
}

/**
 * Writes band edges (bounds on j - i) as constants relative to one alignment: the first alignment that makes
 * every edge constant and puts the first at 0 (j <= i + S_k - S_q -> causal(bottom-right)), else the first
 * that makes every edge constant.
 */
function alignEdges(edges: Sym[], dims: SiteDims): { ks: number[]; align: Align } {
  const fits = alignBases(dims).flatMap(([align, base]) => {
    const d = edges.map((e) => symSub(e, base));
    return d.every(symIsConst) ? [{ align, ks: d.map((x) => x.c) }] : [];
  });
  const pick = fits.find((f) => f.ks[0] === 0) ?? fits[0];
  return pick ?? stop(`the band's offsets ${edges.map(symToString).join(', ')} are neither constant nor S_k - S_q${dims.past ? ' nor the past length' : ''}`);
}

function boundsSpec(b: Bounds, dims: SiteDims): MaskSpec {
  const parts: MaskSpec[] = [];
  // j - i <= k, k an edge aligned to the lengths
  const upTo = (edge: Sym): MaskSpec => {
    const { ks: [k], align } = alignEdges([edge], dims);
    if (k === 0) return causal(align);
    return k! > 0 ? union(causal(align), slidingWindow(0, k!, align)) : difference(causal(align), slidingWindow(-k! - 1, 0, align));
  };
  if (b.hi && b.lo) {
    const { ks: [hi, lo], align } = alignEdges([b.hi, b.lo], dims);
    parts.push(hi! < lo! ? { kind: 'empty' } : slidingWindow(-lo!, hi!, align));
  } else if (b.hi) {
    parts.push(upTo(b.hi));
  } else if (b.lo) {
    // j - i >= lo: every key but those with j - i <= lo - 1 (the keys after a causal diagonal)
    parts.push(difference({ kind: 'dense' }, upTo(symAdd(b.lo, symConst(-1)))));
  }
  if (b.jHi) {
    if (!symIsConst(b.jHi)) stop(`key bound j <= ${symToString(b.jHi)} depends on the length`);
    parts.push(sinks(Math.max(0, b.jHi.c + 1)));
  }
  // j >= jLo: every key but the first jLo (the keys after the sinks)
  if (b.jLo && b.jLo.c > 0) parts.push(difference({ kind: 'dense' }, sinks(b.jLo.c)));
  if (parts.length === 0) return { kind: 'dense' };
  return parts.length === 1 ? parts[0]! : intersect(...parts);
}

/** A structural (data-free) formula in NNF as a spec. */
export function formulaToSpec(f: Formula, dims: SiteDims): MaskSpec {
  switch (f.op) {
    case 'const':
      return f.value ? { kind: 'dense' } : { kind: 'empty' };
    case 'or': {
      const parts = f.parts.map((p) => formulaToSpec(p, dims));
      if (parts.some((p) => p.kind === 'dense')) return { kind: 'dense' };
      const kept = parts.filter((p) => p.kind !== 'empty');
      return kept.length === 0 ? { kind: 'empty' } : kept.length === 1 ? kept[0]! : union(...kept);
    }
    case 'lin':
    case 'and': {
      const b: Bounds = {};
      const others: MaskSpec[] = [];
      for (const p of conjuncts(f)) {
        if (p.op === 'const') {
          if (!p.value) return { kind: 'empty' };
          continue;
        }
        if (p.op !== 'lin') {
          others.push(formulaToSpec(p, dims));
          continue;
        }
        const { ci, cj, c } = p;
        if (ci === -cj && cj > 0 && (cj === 1 || symIsConst(c))) {
          // cj (j - i) + c >= 0  <=>  j - i >= ceil(-c / cj)
          b.lo = tighter(b.lo, cj === 1 ? symSub(symConst(0), c) : symConst(Math.ceil(-c.c / cj)), true);
        } else if (ci === -cj && ci > 0 && (ci === 1 || symIsConst(c))) {
          // ci (i - j) + c >= 0  <=>  j - i <= floor(c / ci)
          b.hi = tighter(b.hi, ci === 1 ? c : symConst(Math.floor(c.c / ci)), false);
        } else if (ci === 0 && cj < 0 && (cj === -1 || symIsConst(c))) {
          b.jHi = tighter(b.jHi, cj === -1 ? c : symConst(Math.floor(c.c / -cj)), false);
        } else if (ci === 0 && cj > 0 && symIsConst(c)) {
          // cj·j + c >= 0  <=>  j >= ceil(-c / cj)
          b.jLo = tighter(b.jLo, symConst(Math.ceil(-c.c / cj)), true);
        } else if (ci === 0 && cj === 0) {
          if (!symIsConst(c)) stop(`a condition ${symToString(c)} >= 0 on the lengths alone`);
          if (c.c < 0) return { kind: 'empty' };
        } else {
          stop(`the index condition ${ci}·i + ${cj}·j + ${symToString(c)} >= 0 is not a band, causal or sink bound`);
        }
      }
      const base = boundsSpec(b, dims);
      const all = [...(base.kind === 'dense' ? [] : [base]), ...others];
      return all.length === 0 ? { kind: 'dense' } : all.length === 1 ? all[0]! : intersect(...all);
    }
    default:
      return stop(`unexpected ${f.op} in a structural mask`);
  }
}

function evalFormula(f: Formula, i: number, j: number, env: Record<string, number>): boolean {
  switch (f.op) {
    case 'const':
      return f.value;
    case 'lin': {
      const c = symEval(f.c, env);
      if (c === undefined) throw new NotProven('unbound symbol');
      return f.ci * i + f.cj * j + c >= 0;
    }
    case 'and':
      return f.parts.every((p) => evalFormula(p, i, j, env));
    case 'or':
      return f.parts.some((p) => evalFormula(p, i, j, env));
    case 'not':
      return !evalFormula(f.x, i, j, env);
    case 'data':
      throw new NotProven('data');
  }
}

function symbolsOf(f: Formula, out = new Set<string>()): Set<string> {
  if (f.op === 'lin') Object.keys(f.c.t).forEach((k) => out.add(k));
  if (f.op === 'and' || f.op === 'or') f.parts.forEach((p) => symbolsOf(p, out));
  if (f.op === 'not') symbolsOf(f.x, out);
  return out;
}

/** Checks spec against the formula at two assignments of the symbols (a guard on the translation). */
function crossCheck(f: Formula, spec: MaskSpec, dims: SiteDims): void {
  const names = new Set(symbolsOf(f));
  if (dims.nq) Object.keys(dims.nq.t).forEach((k) => names.add(k));
  if (dims.nk) Object.keys(dims.nk.t).forEach((k) => names.add(k));
  if (dims.past) Object.keys(dims.past.t).forEach((k) => names.add(k));
  for (const n of [5, 11]) {
    const env: Record<string, number> = {};
    let k = 0;
    for (const s of names) env[s] = n + 2 * k++;
    const nq = (dims.nq && symEval(dims.nq, env)) ?? n;
    const nk = (dims.nk && symEval(dims.nk, env)) ?? n;
    const past = dims.past && symEval(dims.past, env);
    if (nq > 512 || nk > 512) continue;
    for (let i = 0; i < nq; i++) {
      for (let j = 0; j < nk; j++) {
        let want: boolean;
        try {
          want = evalFormula(f, i, j, env);
        } catch {
          return;
        }
        if (want !== keeps(spec, i, j, { nq, nk, ...(past !== undefined ? { past } : {}) })) stop(`internal: ${printSpec(spec)} disagrees with the mask at (${i}, ${j}) for ${nq} x ${nk}`);
      }
    }
  }
}

/**
 * A structural formula (NNF) as a spec, checked against the formula on small lengths as a proof's spec is;
 * undefined when it has no spec form (a region of the keys a proven mask drops: unkept-rows.ts).
 */
export function regionSpec(f: Formula, dims: SiteDims): MaskSpec | undefined {
  try {
    const spec = simplifySpec(formulaToSpec(f, dims));
    crossCheck(f, spec, dims);
    return spec;
  } catch (e) {
    if (e instanceof NotProven) return undefined;
    throw e;
  }
}

/** Splits a keep-formula into its structural conjuncts and its data-dependent keep-masks. */
function splitData(f: Formula): { structural: Formula; data: { value: Value; reason: string; negated?: boolean }[] } {
  const cs = conjuncts(f);
  const data = cs.filter((c): c is Formula & { op: 'data' } => c.op === 'data').map((c) => ({ value: c.value, reason: c.reason, ...(c.negated ? { negated: true } : {}) }));
  const rest = cs.filter((c) => c.op !== 'data');
  const structural: Formula = rest.length === 0 ? { op: 'const', value: true } : rest.length === 1 ? rest[0]! : { op: 'and', parts: rest };
  return { structural, data };
}

/**
 * The data-dependent part that stays as the bias: the one data value where there is one; where there are
 * several (a padding keep-mask and an ALiBi or position bias, two padding masks), the whole bias, which keeps
 * no more than the structural part does, so bias + spec is the original exactly:
 *   Where(causal ∧ pad, alibi, -inf)  ->  spec causal, bias Where(causal ∧ pad, alibi, -inf)
 */
function residualOf(data: readonly { value: Value; reason: string; negated?: boolean }[], bias: Value, moved = false): { data?: Value; reason?: string } {
  if (data.length === 0) return {};
  if (data.length === 1 && moved) return { data: bias, reason: `the data-dependent part ${JSON.stringify(data[0]!.value.name)} is moved to other axes on its way to the bias: the whole ${JSON.stringify(bias.name)} stays as bias` };
  if (data.length === 1 && data[0]!.negated) return { data: bias, reason: `the bias keeps where the data-dependent mask ${JSON.stringify(data[0]!.value.name)} does not, and no value holds that complement: the whole ${JSON.stringify(bias.name)} stays as bias` };
  if (data.length === 1) return { data: data[0]!.value, reason: data[0]!.reason };
  return { data: bias, reason: `${data.length} data-dependent parts (${data.map((d) => JSON.stringify(d.value.name)).join(', ')}): the whole ${JSON.stringify(bias.name)} stays as bias` };
}

/** Reads an evaluated bias as keep-formula + residual data value. */
function readBias(av: AbstractValue, ctx: EvalContext, bias: Value): { keep: Formula; data?: Value; reason?: string } {
  switch (av.kind) {
    case 'fail':
      return stop(av.reason);
    case 'opaque':
      return stop(av.reason);
    case 'pred': {
      const s = splitData(nnf(av.formula));
      return { keep: s.structural, ...residualOf(s.data, bias, ctx.movedData) };
    }
    case 'table': {
      if (av.table.bool) return { keep: asFormula(av, ctx) };
      const fills = [...new Set(av.table.data)].filter((x) => x !== 0);
      if (!fills.every(isMaskedFill)) stop(`constant bias ${av.table.name} holds values other than 0 and a masking fill (it is a bias, not a mask)`);
      return { keep: asFormula({ ...av, table: { ...av.table, data: av.table.data.map((x) => (x === 0 ? 1 : 0)), bool: true } }, ctx) };
    }
    case 'bias': {
      const keeps: Formula[] = [];
      for (const t of av.terms) if (t.kind === 'mask') keeps.push(t.keep);
      const keep = nnf(keeps.length === 0 ? { op: 'const', value: true } : keeps.length === 1 ? keeps[0]! : { op: 'and', parts: keeps });
      // a data-dependent keep-mask inside a mask term (causal | padding filled once) is split off like a pred's
      const s = splitData(keep);
      const added = av.terms.flatMap((t) => (t.kind === 'data' ? [{ value: t.value, reason: t.reason }] : []));
      return { keep: s.structural, ...residualOf([...s.data, ...added], bias, ctx.movedData) };
    }
    case 'ints':
      if (av.values.length === 1 && symIsConst(av.values[0]!) && av.values[0]!.c === 0) return { keep: { op: 'const', value: true } };
      return stop('a constant bias that is not 0');
    default:
      return stop(`the bias is ${/^[aeiou]/.test(av.kind) ? 'an' : 'a'} ${av.kind} (a value that varies with the positions), not a mask`);
  }
}

/**
 * Proves what the bias `biasValue` keeps, for every length: the structural part as a spec, and whether the
 * bias is fully explained by it (then dropping it is exact). `dims` names the site's query/key lengths
 * (needed to recognize bottom-right alignment).
 */
export function proveMaskSpec(biasValue: Value, dims: SiteDims = {}): MaskProof {
  const ctx = newContext();
  const notes: string[] = [];
  try {
    const av = evaluate(biasValue, ctx);
    const { keep, data, reason } = readBias(av, ctx, biasValue);
    const spec = simplifySpec(formulaToSpec(keep, dims));
    crossCheck(keep, spec, dims);
    notes.push(`bias ${JSON.stringify(biasValue.name)} keeps exactly ${printSpec(spec)} for every length`);
    for (const p of new Set(ctx.preconditions)) notes.push(`precondition: ${p}`);
    if (data) notes.push(reason ?? `the data-dependent part ${JSON.stringify(data.name)} stays as bias`);
    return { spec, exact: data === undefined, residual: data, notes, visited: ctx.visited, keep, readings: ctx.memo };
  } catch (e) {
    if (!(e instanceof NotProven) && !(e instanceof Error)) throw e;
    notes.push(`not proven: ${(e as Error).message}`);
    return { spec: undefined, exact: false, residual: undefined, notes, visited: ctx.visited, readings: ctx.memo };
  }
}

