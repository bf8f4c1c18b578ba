// Symbolic integer expressions for dims and shape-tensor values, in one canonical form so that equal
// expressions are the same object: a polynomial (sum of coefficient x monomial) over atoms, where an atom is
// a symbol (a graph input's named dim, or a fresh one for a size known only at run time) or an operation the
// polynomial form cannot absorb (truncating division, modulo, min, max). Constants may be any float64 (float
// scalars computed from shapes); symbolic terms have integer coefficients wherever the graph computes sizes.
// `(batch*seq*256) / (batch*seq*4)` simplifies to 64; `min(seq, seq + past)` to seq (symbols are sizes >= 0).

/** An atom: a symbol or an operation kept opaque. */
export type Atom = { readonly key: string } & (
  | { readonly kind: 'symbol'; readonly name: string; readonly fresh: boolean; readonly nonneg: boolean }
  | { readonly kind: 'div' | 'mod' | 'min' | 'max'; readonly args: readonly Expr[] }
);

/** A product of atoms with positive exponents, sorted by atom key. */
interface Monomial {
  readonly key: string;
  readonly factors: readonly (readonly [Atom, number])[];
}

interface Term {
  readonly mono: Monomial;
  readonly coef: number;
}

// Hash-consing: while an expression is alive, building an equal one returns it, so equal expressions are `===`.
// Entries are weak, so expressions of graphs no longer analyzed are collected.
const interned = new Map<string, WeakRef<Expr>>();
const collected = new FinalizationRegistry<string>((key) => {
  if (interned.get(key)?.deref() === undefined) interned.delete(key);
});
const ONE: Monomial = { key: '', factors: [] };

export class Expr {
  private constructor(
    /** Terms sorted by monomial key; the constant term (key '') first; no zero coefficients. */
    readonly terms: readonly Term[],
    readonly key: string,
  ) {}

  /** @internal */
  static make(terms: Term[]): Expr {
    terms.sort((a, b) => (a.mono.key < b.mono.key ? -1 : a.mono.key > b.mono.key ? 1 : 0));
    const kept = terms.filter((t) => t.coef !== 0);
    const key = kept.length === 0 ? '0' : kept.map((t) => (t.mono.key === '' ? numKey(t.coef) : t.coef === 1 ? t.mono.key : t.coef === -1 ? `-${t.mono.key}` : `${numKey(t.coef)}*${t.mono.key}`)).join(' + ');
    let e = interned.get(key)?.deref();
    if (e === undefined) {
      e = new Expr(kept, key);
      interned.set(key, new WeakRef(e));
      collected.register(e, key);
    }
    return e;
  }

  /** The number this expression is, when it has no atoms. */
  get constant(): number | undefined {
    if (this.terms.length === 0) return 0;
    return this.terms.length === 1 && this.terms[0]!.mono.key === '' ? this.terms[0]!.coef : undefined;
  }

  /** The symbol this expression is exactly (coefficient 1, one atom of degree 1), if any. */
  get symbol(): (Atom & { kind: 'symbol' }) | undefined {
    if (this.terms.length !== 1) return undefined;
    const t = this.terms[0]!;
    if (t.coef !== 1 || t.mono.factors.length !== 1 || t.mono.factors[0]![1] !== 1) return undefined;
    const a = t.mono.factors[0]![0];
    return a.kind === 'symbol' ? a : undefined;
  }

  /** Every atom the expression reads, nested ones included, by key. */
  atoms(into = new Map<string, Atom>()): Map<string, Atom> {
    for (const t of this.terms) {
      for (const [a] of t.mono.factors) {
        if (into.has(a.key)) continue;
        into.set(a.key, a);
        if (a.kind !== 'symbol') a.args.forEach((x) => x.atoms(into));
      }
    }
    return into;
  }

  private freshMemo: boolean | undefined;
  /** @internal memo of isNonneg */
  nonnegMemo: boolean | undefined;

  /** Whether a fresh symbol (a size known only at run time) appears anywhere. */
  get hasFresh(): boolean {
    if (this.freshMemo === undefined) {
      this.freshMemo = false;
      for (const a of this.atoms().values()) if (a.kind === 'symbol' && a.fresh) this.freshMemo = true;
    }
    return this.freshMemo;
  }

  /** The expression as messages spell it (`batch*seq + 1`, `?3` for a size known only at run time). */
  toString(): string {
    return this.key.replace(/\$/g, '');
  }
}

const numKey = (x: number): string => (Object.is(x, -0) ? '0' : String(x));

function atomExpr(atom: Atom): Expr {
  return Expr.make([{ mono: { key: atom.key, factors: [[atom, 1]] }, coef: 1 }]);
}

export function constant(x: number): Expr {
  return Expr.make(x === 0 ? [] : [{ mono: ONE, coef: x }]);
}

/** A named symbol (a graph input's dim_param). Sizes are >= 0. */
export function symbol(name: string): Expr {
  return atomExpr({ key: `$${name}`, kind: 'symbol', name, fresh: false, nonneg: true });
}

let freshCount = 0;
/** A new symbol for a value known only at run time; `nonneg` for sizes, not for arbitrary integers. */
export function fresh(nonneg = true): Expr {
  const name = `?${++freshCount}`;
  return atomExpr({ key: name, kind: 'symbol', name, fresh: true, nonneg });
}

function mulMono(a: Monomial, b: Monomial): Monomial {
  if (a.factors.length === 0) return b;
  if (b.factors.length === 0) return a;
  const m = new Map<string, [Atom, number]>(a.factors.map(([x, e]) => [x.key, [x, e]]));
  for (const [x, e] of b.factors) m.set(x.key, [x, (m.get(x.key)?.[1] ?? 0) + e]);
  return monomial([...m.values()]);
}

function monomial(factors: [Atom, number][]): Monomial {
  factors.sort((x, y) => (x[0].key < y[0].key ? -1 : x[0].key > y[0].key ? 1 : 0));
  return { key: factors.map(([a, e]) => (e === 1 ? a.key : `${a.key}^${e}`)).join('*'), factors };
}

/** a / b for monomials when every factor of b divides a's, else undefined. */
function divMono(a: Monomial, b: Monomial): Monomial | undefined {
  const m = new Map<string, [Atom, number]>(a.factors.map(([x, e]) => [x.key, [x, e]]));
  for (const [x, e] of b.factors) {
    const have = m.get(x.key)?.[1] ?? 0;
    if (have < e) return undefined;
    if (have === e) m.delete(x.key);
    else m.set(x.key, [x, have - e]);
  }
  return monomial([...m.values()]);
}

export function add(a: Expr, b: Expr): Expr {
  const ca = a.constant;
  const cb = b.constant;
  if (ca !== undefined && cb !== undefined) return constant(ca + cb);
  const m = new Map<string, { mono: Monomial; coef: number }>();
  for (const t of [...a.terms, ...b.terms]) {
    const cur = m.get(t.mono.key);
    m.set(t.mono.key, { mono: t.mono, coef: (cur?.coef ?? 0) + t.coef });
  }
  return Expr.make([...m.values()]);
}

export function neg(a: Expr): Expr {
  return Expr.make(a.terms.map((t) => ({ mono: t.mono, coef: -t.coef })));
}

export function sub(a: Expr, b: Expr): Expr {
  return add(a, neg(b));
}

export function mul(a: Expr, b: Expr): Expr {
  const ca = a.constant;
  const cb = b.constant;
  if (ca !== undefined && cb !== undefined) return constant(ca * cb);
  const m = new Map<string, { mono: Monomial; coef: number }>();
  for (const x of a.terms) {
    for (const y of b.terms) {
      const mono = mulMono(x.mono, y.mono);
      const cur = m.get(mono.key);
      m.set(mono.key, { mono, coef: (cur?.coef ?? 0) + x.coef * y.coef });
    }
  }
  return Expr.make([...m.values()]);
}

export function product(xs: readonly Expr[]): Expr {
  return xs.reduce(mul, constant(1));
}

/** Whether the expression is >= 0 for every binding of its symbols to sizes (a sufficient test). */
export function isNonneg(e: Expr): boolean {
  if (e.nonnegMemo === undefined) {
    const c = e.constant;
    e.nonnegMemo = c !== undefined ? c >= 0 : e.terms.every((t) => t.coef >= 0 && t.mono.factors.every(([a]) => atomNonneg(a)));
  }
  return e.nonnegMemo;
}

function atomNonneg(a: Atom): boolean {
  switch (a.kind) {
    case 'symbol':
      return a.nonneg;
    case 'div': {
      // a / b truncating, b > 0: >= 0 as soon as a > -b
      const b = a.args[1]!.constant;
      return b !== undefined && b > 0 ? isNonneg(add(a.args[0]!, constant(b - 1))) : a.args.every(isNonneg);
    }
    case 'min':
      return a.args.every(isNonneg);
    case 'mod':
      return isNonneg(a.args[1]!);
    case 'max':
      return a.args.some(isNonneg);
  }
}

const isInt = (x: number) => Number.isInteger(x);

/** The exact quotient a / b when b divides a as polynomials (a single-term b, or a = m * b). */
export function exactDiv(a: Expr, b: Expr): Expr | undefined {
  if (b.terms.length === 0) return undefined;
  if (a.terms.length === 0) return a;
  const cb = b.constant;
  if (cb !== undefined) {
    return a.terms.every((t) => isInt(t.coef / cb)) ? Expr.make(a.terms.map((t) => ({ mono: t.mono, coef: t.coef / cb }))) : undefined;
  }
  if (b.terms.length === 1) {
    const tb = b.terms[0]!;
    const out: Term[] = [];
    for (const t of a.terms) {
      const mono = divMono(t.mono, tb.mono);
      if (!mono || !isInt(t.coef / tb.coef)) return undefined;
      out.push({ mono, coef: t.coef / tb.coef });
    }
    return Expr.make(out);
  }
  // a = m * b with m a single term: read m off the last terms (highest keys), then check
  const ta = a.terms[a.terms.length - 1]!;
  const tb = b.terms[b.terms.length - 1]!;
  const mono = divMono(ta.mono, tb.mono);
  if (!mono || !isInt(ta.coef / tb.coef)) return undefined;
  const m = Expr.make([{ mono, coef: ta.coef / tb.coef }]);
  return mul(m, b) === a ? m : undefined;
}

/** Integer division truncating toward zero (ONNX Div on integers); undefined when b may be 0 and is constant 0. */
export function div(a: Expr, b: Expr): Expr | undefined {
  const ca = a.constant;
  const cb = b.constant;
  if (cb === 0) return undefined;
  if (ca !== undefined && cb !== undefined) return constant(Math.trunc(ca / cb));
  if (cb === 1) return a;
  const exact = exactDiv(a, b);
  if (exact) return exact;
  if (cb !== undefined && cb > 0 && isInt(cb) && isNonneg(a) && a.terms.every((t) => isInt(t.coef))) {
    // (c*q + r) / c = q + r / c for a >= 0: split every coefficient
    const q: Term[] = [];
    const r: Term[] = [];
    for (const t of a.terms) {
      const k = Math.floor(t.coef / cb);
      if (k !== 0) q.push({ mono: t.mono, coef: k });
      if (t.coef - k * cb !== 0) r.push({ mono: t.mono, coef: t.coef - k * cb });
    }
    const rest = Expr.make(r);
    const qe = Expr.make(q);
    if (rest.constant !== undefined) return add(qe, constant(Math.floor(rest.constant / cb)));
    if (q.length > 0) return add(qe, opaque('div', [rest, b]));
  }
  return opaque('div', [a, b]);
}

/** ONNX Mod with fmod = 0 on integers: the result takes the divisor's sign. */
export function mod(a: Expr, b: Expr): Expr | undefined {
  const ca = a.constant;
  const cb = b.constant;
  if (cb === 0) return undefined;
  if (ca !== undefined && cb !== undefined) return constant(((ca % cb) + cb) % cb);
  if (exactDiv(a, b)) return constant(0);
  return opaque('mod', [a, b]);
}

export function min(a: Expr, b: Expr): Expr {
  return minMax('min', a, b);
}

export function max(a: Expr, b: Expr): Expr {
  return minMax('max', a, b);
}

function minMax(kind: 'min' | 'max', a: Expr, b: Expr): Expr {
  if (a === b) return a;
  const ca = a.constant;
  const cb = b.constant;
  if (ca !== undefined && cb !== undefined) return constant(kind === 'min' ? Math.min(ca, cb) : Math.max(ca, cb));
  const d = sub(a, b);
  if (isNonneg(d)) return kind === 'min' ? b : a; // a >= b
  if (isNonneg(neg(d))) return kind === 'min' ? a : b; // a <= b
  return opaque(kind, a.key < b.key ? [a, b] : [b, a]);
}

function opaque(kind: 'div' | 'mod' | 'min' | 'max', args: Expr[]): Expr {
  return atomExpr({ key: `${kind}(${args.map((x) => x.key).join(', ')})`, kind, args });
}

/** The value at a binding of symbol names to sizes, or undefined when a symbol is not bound. */
export function evaluate(e: Expr, binding: ReadonlyMap<string, number>): number | undefined {
  let sum = 0;
  for (const t of e.terms) {
    let p = t.coef;
    for (const [a, exp] of t.mono.factors) {
      const v = evaluateAtom(a, binding);
      if (v === undefined) return undefined;
      p *= v ** exp;
    }
    sum += p;
  }
  return sum;
}

function evaluateAtom(a: Atom, binding: ReadonlyMap<string, number>): number | undefined {
  if (a.kind === 'symbol') return binding.get(a.name);
  const xs = a.args.map((x) => evaluate(x, binding));
  if (xs.some((x) => x === undefined)) return undefined;
  const [x, y] = xs as number[];
  switch (a.kind) {
    case 'div':
      return y === 0 ? undefined : Math.trunc(x! / y!);
    case 'mod':
      return y === 0 ? undefined : ((x! % y!) + y!) % y!;
    case 'min':
      return Math.min(x!, y!);
    case 'max':
      return Math.max(x!, y!);
  }
}

/** Replaces symbols by expressions (used to apply recorded dim equalities). */
export function substitute(e: Expr, map: ReadonlyMap<string, Expr>): Expr {
  if (map.size === 0) return e;
  let out = constant(0);
  for (const t of e.terms) {
    let p = constant(t.coef);
    for (const [a, exp] of t.mono.factors) {
      let f: Expr;
      if (a.kind === 'symbol') f = map.get(a.name) ?? atomExpr(a);
      else {
        const args = a.args.map((x) => substitute(x, map));
        const [x, y] = args as [Expr, Expr];
        f = a.kind === 'div' ? (div(x, y) ?? opaque('div', args)) : a.kind === 'mod' ? (mod(x, y) ?? opaque('mod', args)) : minMax(a.kind, x, y);
      }
      for (let i = 0; i < exp; i++) p = mul(p, f);
    }
    out = add(out, p);
  }
  return out;
}
