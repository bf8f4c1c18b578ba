// Attention specs as text: `causal(align=bottom-right)`, `union(sinks(4), window(left=128, right=0))`.

import {
  type Align,
  type AttentionSpec,
  blockSparse,
  type BlockScore,
  causal,
  dense,
  difference,
  dilatedWindow,
  empty,
  globalTokens,
  intersect,
  isLowRank,
  linformer,
  lshBuckets,
  type MaskSpec,
  nystrom,
  performer,
  sinks,
  slidingWindow,
  topkBlocks,
  union,
  validateSpec,
} from '../spec/spec.js';
import { type Token, TokenStream } from './lexer.js';

const alignArg = (align: Align): string[] => (align === 'top-left' ? [] : [`align=${align}`]);
const list = (xs: readonly number[]): string => `[${xs.join(', ')}]`;
const call = (name: string, args: readonly string[]): string => (args.length ? `${name}(${args.join(', ')})` : name);

/** The canonical spelling of a spec: named parameters, defaults omitted. */
export function printSpec(spec: AttentionSpec): string {
  switch (spec.kind) {
    case 'dense':
    case 'empty':
      return spec.kind;
    case 'causal':
      return call('causal', alignArg(spec.align));
    case 'window':
      return call('window', [`left=${spec.left}`, `right=${spec.right}`, ...alignArg(spec.align)]);
    case 'dilated':
      return call('dilated', [`left=${spec.left}`, `right=${spec.right}`, `dilation=${spec.dilation}`, ...alignArg(spec.align)]);
    case 'sinks':
      return `sinks(${spec.count})`;
    case 'global':
      return call('global', [list(spec.tokens), ...alignArg(spec.align)]);
    case 'blocks':
      return `blocks(q=${spec.blockQ}, k=${spec.blockK}, [${spec.rows.map(list).join(', ')}])`;
    case 'topkBlocks':
      return call('topk_blocks', [`block=${spec.block}`, `k=${spec.k}`, ...(spec.score === 'quest' ? [] : [`score=${spec.score}`]), ...(spec.causal === undefined ? [] : [`causal=${spec.causal}`])]);
    case 'lsh':
      return call('lsh', [
        `hashes=${spec.hashes}`,
        `buckets=${spec.buckets}`,
        ...(spec.chunk > 0 ? [`chunk=${spec.chunk}`] : []),
        `seed=${spec.seed}`,
      ]);
    case 'union':
    case 'intersect':
      return `${spec.kind}(${spec.parts.map(printSpec).join(', ')})`;
    case 'diff':
      return `diff(${printSpec(spec.base)}, ${printSpec(spec.minus)})`;
    case 'nystrom':
      return `nystrom(landmarks=${spec.landmarks})`;
    case 'linformer':
      return `linformer(rank=${spec.rank}, seed=${spec.seed})`;
    case 'performer':
      return call('performer', [`features=${spec.features}`, `seed=${spec.seed}`, ...(spec.orthogonal ? [] : ['orthogonal=false'])]);
  }
}

/** A parsed argument: a nested spec, a number, a word, or a (nested) list of numbers. */
type Arg =
  | { readonly kind: 'spec'; readonly spec: AttentionSpec; readonly at: Token }
  | { readonly kind: 'int'; readonly value: number; readonly at: Token }
  | { readonly kind: 'word'; readonly value: string; readonly at: Token }
  | { readonly kind: 'list'; readonly value: readonly number[]; readonly at: Token }
  | { readonly kind: 'lists'; readonly value: readonly (readonly number[])[]; readonly at: Token };

/** The arguments of one term, positional and named, consumed by the term's builder. */
class Args {
  private readonly used = new Set<string>();
  private nextPositional = 0;

  constructor(
    private readonly ts: TokenStream,
    private readonly term: Token,
    private readonly positional: readonly Arg[],
    private readonly named: ReadonlyMap<string, Arg>,
  ) {}

  private take(name: string): Arg | undefined {
    this.used.add(name);
    return this.named.get(name);
  }

  int(name: string, fallback?: number): number {
    const a = this.take(name);
    if (a === undefined) {
      if (fallback === undefined) this.ts.failAt(this.term, `${this.term.text}: missing parameter ${name}`);
      return fallback;
    }
    if (a.kind !== 'int') this.ts.failAt(a.at, `${this.term.text}: parameter ${name} must be an integer`);
    return a.value;
  }

  word<W extends string>(name: string, allowed: readonly W[], fallback: W): W {
    const a = this.take(name);
    if (a === undefined) return fallback;
    if (a.kind !== 'word' || !(allowed as readonly string[]).includes(a.value)) {
      this.ts.failAt(a.at, `${this.term.text}: parameter ${name} must be one of ${allowed.join(', ')}`);
    }
    return a.value as W;
  }

  /** The next positional argument, which must be of `kind`. */
  pos<K extends Arg['kind']>(kind: K, what: string): Extract<Arg, { kind: K }> {
    const a = this.positional[this.nextPositional++];
    if (a === undefined) this.ts.failAt(this.term, `${this.term.text}: missing ${what}`);
    if (a.kind !== kind && !(kind === 'lists' && a.kind === 'list' && a.value.length === 0)) {
      this.ts.failAt(a.at, `${this.term.text}: expected ${what}`);
    }
    return (a.kind === 'list' && kind === 'lists' ? { kind: 'lists', value: [], at: a.at } : a) as Extract<Arg, { kind: K }>;
  }

  /** The remaining positional arguments as mask specs. */
  masks(): MaskSpec[] {
    const out: MaskSpec[] = [];
    while (this.nextPositional < this.positional.length) {
      const a = this.pos('spec', 'a spec');
      if (isLowRank(a.spec)) this.ts.failAt(a.at, `${this.term.text}: ${a.spec.kind} is a low-rank form, not a key set`);
      out.push(a.spec as MaskSpec);
    }
    return out;
  }

  /** Fails on arguments the term did not read. */
  done(): void {
    const extra = this.positional[this.nextPositional];
    if (extra) this.ts.failAt(extra.at, `${this.term.text}: unexpected argument`);
    for (const [name, a] of this.named) {
      if (!this.used.has(name)) this.ts.failAt(a.at, `${this.term.text}: unknown parameter ${name}`);
    }
  }
}

const ALIGNS: readonly Align[] = ['top-left', 'bottom-right', 'past'];
const SCORES: readonly BlockScore[] = ['quest', 'mean'];
const BOOLS = ['true', 'false'] as const;

/** Builders per term name: read the arguments, construct with spec.ts's constructors. */
const TERMS: Record<string, (a: Args) => AttentionSpec> = {
  dense: () => dense,
  empty: () => empty,
  causal: (a) => causal(a.word('align', ALIGNS, 'top-left')),
  window: (a) => slidingWindow(a.int('left'), a.int('right', 0), a.word('align', ALIGNS, 'top-left')),
  dilated: (a) => dilatedWindow(a.int('left'), a.int('right', 0), a.int('dilation'), a.word('align', ALIGNS, 'top-left')),
  sinks: (a) => sinks(a.pos('int', 'a count').value),
  global: (a) => globalTokens(a.pos('list', 'a list of tokens').value, a.word('align', ALIGNS, 'top-left')),
  blocks: (a) => blockSparse(a.int('q'), a.int('k'), a.pos('lists', 'a list of key-block rows').value),
  topk_blocks: (a) => {
    const ranked = a.word('causal', [...ALIGNS, 'none'], 'none');
    return topkBlocks(a.int('block'), a.int('k'), a.word('score', SCORES, 'quest'), ranked === 'none' ? undefined : ranked);
  },
  lsh: (a) => lshBuckets(a.int('hashes'), a.int('buckets'), a.int('seed'), a.int('chunk', 0)),
  union: (a) => union(...a.masks()),
  intersect: (a) => intersect(...a.masks()),
  diff: (a) => {
    const [base, minus, ...rest] = a.masks();
    if (base === undefined || minus === undefined || rest.length > 0) throw new Error('diff takes exactly two specs');
    return difference(base, minus);
  },
  nystrom: (a) => nystrom(a.int('landmarks')),
  linformer: (a) => linformer(a.int('rank'), a.int('seed')),
  performer: (a) => performer(a.int('features'), a.int('seed'), a.word('orthogonal', BOOLS, 'true') === 'true'),
};

function parseIntToken(ts: TokenStream): number {
  const t = ts.peek();
  if (t.kind !== 'number' || !/^-?\d+$/.test(t.text) || !Number.isSafeInteger(Number(t.text))) ts.fail('an integer');
  ts.next();
  return Number(t.text);
}

function parseIntList(ts: TokenStream): number[] {
  ts.expect('[');
  const out: number[] = [];
  while (!ts.at(']')) {
    out.push(parseIntToken(ts));
    if (!ts.eat(',')) break;
  }
  ts.expect(']');
  return out;
}

function parseArg(ts: TokenStream): Arg {
  const at = ts.peek();
  if (at.kind === 'number') return { kind: 'int', value: parseIntToken(ts), at };
  if (ts.at('[')) {
    if (ts.peek(1).kind === 'punct' && ts.peek(1).text === '[') {
      ts.next();
      const rows: number[][] = [];
      while (!ts.at(']')) {
        rows.push(parseIntList(ts));
        if (!ts.eat(',')) break;
      }
      ts.expect(']');
      return { kind: 'lists', value: rows, at };
    }
    return { kind: 'list', value: parseIntList(ts), at };
  }
  if (at.kind === 'word' && !(at.text in TERMS)) {
    ts.next();
    return { kind: 'word', value: at.text, at };
  }
  return { kind: 'spec', spec: parseSpecTerm(ts), at };
}

/** Parses one spec term at the cursor (used inside `spec<...>` attributes too). */
export function parseSpecTerm(ts: TokenStream): AttentionSpec {
  const term = ts.peek();
  if (term.kind !== 'word' || !Object.prototype.hasOwnProperty.call(TERMS, term.text)) {
    ts.fail(`a spec (${Object.keys(TERMS).join(', ')})`);
  }
  ts.next();
  const positional: Arg[] = [];
  const named = new Map<string, Arg>();
  if (ts.eat('(')) {
    while (!ts.at(')')) {
      const t = ts.peek();
      if (t.kind === 'word' && ts.at('=', 1)) {
        ts.next();
        ts.next();
        if (named.has(t.text)) ts.failAt(t, `${term.text}: parameter ${t.text} given twice`);
        named.set(t.text, parseArg(ts));
      } else {
        positional.push(parseArg(ts));
      }
      if (!ts.eat(',')) break;
    }
    ts.expect(')');
  }
  const args = new Args(ts, term, positional, named);
  try {
    const spec = TERMS[term.text]!(args);
    args.done();
    return validateSpec(spec);
  } catch (e) {
    const msg = (e as Error).message;
    if (/^\d+:\d+: /.test(msg)) throw e;
    return ts.failAt(term, msg);
  }
}

/** Parses a spec written by printSpec (or any spelling of the same grammar). */
export function parseSpec(text: string): AttentionSpec {
  const ts = new TokenStream(text);
  const spec = parseSpecTerm(ts);
  ts.expectEnd();
  return spec;
}
