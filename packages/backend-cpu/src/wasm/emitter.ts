// A small WebAssembly binary emitter: a module of functions over one imported shared memory, built from
// TypeScript with named locals. Only the instructions the generated kernels use (i32, f32, SIMD128 f32x4).
//
// Code-generation note for V8 (Node 20, TurboFan): within one basic block the scheduler issues every
// memory load as early as it can, so a long unrolled block of loads and arithmetic keeps all loaded
// vectors live at once and spills them (16 xmm registers). Hot kernels are therefore written as loops
// whose body is one small step (a few loads, their arithmetic), not as fully unrolled straight-line code.
//
//   const m = new ModuleBuilder('dot4');
//   const f = m.func('dot', { a: 'i32', b: 'i32' }, ['f32']);
//   f.get('a').v128Load().get('b').v128Load().f32x4Mul().f32x4ExtractLane(0);
//   const bytes = m.build();   // WebAssembly.validate(bytes) === true

import './webassembly-types.js';
export type ValType = 'i32' | 'f32' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

function uleb(out: number[], x: number): void {
  do {
    let byte = x & 0x7f;
    x = Math.floor(x / 128);
    if (x !== 0) byte |= 0x80;
    out.push(byte);
  } while (x !== 0);
}

function sleb(out: number[], x: number): void {
  x |= 0;
  for (;;) {
    const byte = x & 0x7f;
    x >>= 7;
    if ((x === 0 && (byte & 0x40) === 0) || (x === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

function append(out: number[], xs: readonly number[] | Uint8Array): void {
  for (let k = 0; k < xs.length; k++) out.push(xs[k]!);
}

function name(out: number[], s: string): void {
  const bytes = new TextEncoder().encode(s);
  uleb(out, bytes.length);
  append(out, bytes);
}

const f32Bytes = new Uint8Array(4);
const f32View = new DataView(f32Bytes.buffer);

/** SIMD opcodes (after the 0xfd prefix). */
const SIMD = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Store: 0x0b,
  i8x16Shuffle: 0x0d,
  f32x4Splat: 0x13,
  f32x4ExtractLane: 0x1f,
  f32x4Gt: 0x44,
  f32x4Ge: 0x46,
  v128Not: 0x4d,
  f32x4Abs: 0xe0,
  f32x4Sqrt: 0xe3,
  v128And: 0x4e,
  v128Or: 0x50,
  v128Bitselect: 0x52,
  v128AnyTrue: 0x53,
  f32x4Nearest: 0x6a,
  i32x4Shl: 0xab,
  i32x4Add: 0xae,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f32x4Min: 0xe8,
  f32x4Max: 0xe9,
  f32x4Pmin: 0xea,
  f32x4Pmax: 0xeb,
  i32x4TruncSatF32x4S: 0xf8,
  i32x4Splat: 0x11,
} as const;

/** One function body: named params and locals, instructions appended in stack-machine order. */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly localIndex = new Map<string, number>();
  private readonly localTypes: ValType[] = [];
  private depth = 0;

  constructor(
    readonly name: string,
    readonly params: readonly (readonly [string, ValType])[],
    readonly results: readonly ValType[],
  ) {
    params.forEach(([n], k) => this.localIndex.set(n, k));
  }

  /** Declares (or returns) a named local of type `t`. */
  local(n: string, t: ValType): this {
    if (!this.localIndex.has(n)) {
      this.localIndex.set(n, this.params.length + this.localTypes.length);
      this.localTypes.push(t);
    }
    return this;
  }

  private idx(n: string): number {
    const k = this.localIndex.get(n);
    if (k === undefined) throw new Error(`wasm function ${this.name}: unknown local ${n}`);
    return k;
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  private simd(op: number): this {
    this.code.push(0xfd);
    uleb(this.code, op);
    return this;
  }

  private mem(align: number, offset: number): this {
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  get(n: string): this {
    this.code.push(0x20);
    uleb(this.code, this.idx(n));
    return this;
  }
  set(n: string): this {
    this.code.push(0x21);
    uleb(this.code, this.idx(n));
    return this;
  }
  tee(n: string): this {
    this.code.push(0x22);
    uleb(this.code, this.idx(n));
    return this;
  }

  i32(x: number): this {
    this.code.push(0x41);
    sleb(this.code, x);
    return this;
  }
  f32(x: number): this {
    f32View.setFloat32(0, x, true);
    return this.op(0x43, ...f32Bytes);
  }

  i32Load(offset = 0): this {
    return this.op(0x28).mem(2, offset);
  }
  f32Load(offset = 0): this {
    return this.op(0x2a).mem(2, offset);
  }
  i32Store(offset = 0): this {
    return this.op(0x36).mem(2, offset);
  }
  f32Store(offset = 0): this {
    return this.op(0x38).mem(2, offset);
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32Sub(): this {
    return this.op(0x6b);
  }
  i32Mul(): this {
    return this.op(0x6c);
  }
  i32ShrU(): this {
    return this.op(0x76);
  }
  i32And(): this {
    return this.op(0x71);
  }
  i32Eqz(): this {
    return this.op(0x45);
  }
  i32LtS(): this {
    return this.op(0x48);
  }
  i32GeS(): this {
    return this.op(0x4e);
  }
  f32Lt(): this {
    return this.op(0x5d);
  }
  f32Gt(): this {
    return this.op(0x5e);
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Sub(): this {
    return this.op(0x93);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  f32Div(): this {
    return this.op(0x95);
  }
  f32Max(): this {
    return this.op(0x97);
  }
  f32Min(): this {
    return this.op(0x96);
  }
  f32Sqrt(): this {
    return this.op(0x91);
  }
  f32Le(): this {
    return this.op(0x5f);
  }
  f32Ge(): this {
    return this.op(0x60);
  }
  i32GtS(): this {
    return this.op(0x4a);
  }
  i32Or(): this {
    return this.op(0x72);
  }
  /** Calls the module's function number `index` (the order of ModuleBuilder.func calls). */
  call(index: number): this {
    this.code.push(0x10);
    uleb(this.code, index);
    return this;
  }

  v128Load(offset = 0): this {
    return this.simd(SIMD.v128Load).mem(4, offset);
  }
  v128Load32Splat(offset = 0): this {
    return this.simd(SIMD.v128Load32Splat).mem(2, offset);
  }
  v128Store(offset = 0): this {
    return this.simd(SIMD.v128Store).mem(4, offset);
  }
  /** i8x16.shuffle of the two popped vectors by 16 byte-lane indices (0-15 first, 16-31 second). */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31)) throw new Error(`wasm function ${this.name}: i8x16.shuffle needs 16 lanes in 0..31`);
    this.simd(SIMD.i8x16Shuffle);
    this.code.push(...lanes);
    return this;
  }
  /** Pops a vector, pushes its 32-bit lane `lane` in all four lanes (a shuffle). */
  f32x4SplatLane(lane: number): this {
    const b = Array.from({ length: 4 }, (_, k) => 4 * lane + k);
    return this.local('__dup', 'v128').tee('__dup').get('__dup').i8x16Shuffle([...b, ...b, ...b, ...b]);
  }
  f32x4Splat(): this {
    return this.simd(SIMD.f32x4Splat);
  }
  i32x4Splat(): this {
    return this.simd(SIMD.i32x4Splat);
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(SIMD.f32x4ExtractLane).op(lane);
  }
  f32x4Add(): this {
    return this.simd(SIMD.f32x4Add);
  }
  f32x4Sub(): this {
    return this.simd(SIMD.f32x4Sub);
  }
  f32x4Mul(): this {
    return this.simd(SIMD.f32x4Mul);
  }
  f32x4Div(): this {
    return this.simd(SIMD.f32x4Div);
  }
  /** |x| per lane (clears the sign bit: NaN stays NaN). */
  f32x4Abs(): this {
    return this.simd(SIMD.f32x4Abs);
  }
  f32x4Min(): this {
    return this.simd(SIMD.f32x4Min);
  }
  f32x4Max(): this {
    return this.simd(SIMD.f32x4Max);
  }
  /** Pseudo-min `b < a ? b : a` (one minps on x64; f32x4.min is NaN-propagating and costs several). */
  f32x4Pmin(): this {
    return this.simd(SIMD.f32x4Pmin);
  }
  /** Pseudo-max `a < b ? b : a` (one maxps on x64). */
  f32x4Pmax(): this {
    return this.simd(SIMD.f32x4Pmax);
  }
  f32x4Gt(): this {
    return this.simd(SIMD.f32x4Gt);
  }
  f32x4Ge(): this {
    return this.simd(SIMD.f32x4Ge);
  }
  v128Not(): this {
    return this.simd(SIMD.v128Not);
  }
  f32x4Sqrt(): this {
    return this.simd(SIMD.f32x4Sqrt);
  }
  /** i32.trunc_f32_s */
  i32TruncF32(): this {
    return this.op(0xa8);
  }
  /** f32.convert_i32_s */
  f32ConvertI32(): this {
    return this.op(0xb2);
  }
  f32x4Nearest(): this {
    return this.simd(SIMD.f32x4Nearest);
  }
  v128And(): this {
    return this.simd(SIMD.v128And);
  }
  v128Or(): this {
    return this.simd(SIMD.v128Or);
  }
  /** Pops v1, v2, c: pushes (v1 & c) | (v2 & ~c), bit by bit. */
  v128Bitselect(): this {
    return this.simd(SIMD.v128Bitselect);
  }
  /** Pops a vector, pushes i32 1 if any bit is set, else 0. */
  v128AnyTrue(): this {
    return this.simd(SIMD.v128AnyTrue);
  }
  i32x4Add(): this {
    return this.simd(SIMD.i32x4Add);
  }
  i32x4Shl(): this {
    return this.simd(SIMD.i32x4Shl);
  }
  i32x4TruncSatF32x4S(): this {
    return this.simd(SIMD.i32x4TruncSatF32x4S);
  }
  /** f32x4.splat of a constant. */
  f32x4Const(x: number): this {
    return this.f32(x).f32x4Splat();
  }

  /** block ... end: `br 0` inside jumps past the end. */
  block(body: (f: this) => void): this {
    this.op(0x02, 0x40);
    this.depth++;
    body(this);
    this.depth--;
    return this.op(0x0b);
  }
  /** loop ... end: `br 0` inside jumps back to the start. */
  loop(body: (f: this) => void): this {
    this.op(0x03, 0x40);
    this.depth++;
    body(this);
    this.depth--;
    return this.op(0x0b);
  }
  /** if (pops an i32) ... [else ...] end. */
  if(then: (f: this) => void, otherwise?: (f: this) => void): this {
    this.op(0x04, 0x40);
    this.depth++;
    then(this);
    if (otherwise) {
      this.op(0x05);
      otherwise(this);
    }
    this.depth--;
    return this.op(0x0b);
  }
  br(label: number): this {
    this.code.push(0x0c);
    uleb(this.code, label);
    return this;
  }
  brIf(label: number): this {
    this.code.push(0x0d);
    uleb(this.code, label);
    return this;
  }

  /** `for (v = from; v < to; v += step) body` over i32 local v (to: a local name or a constant). */
  forRange(v: string, from: number | string, to: number | string, step: number, body: (f: this) => void): this {
    this.local(v, 'i32');
    typeof from === 'number' ? this.i32(from) : this.get(from);
    this.set(v);
    return this.block((f) => {
      const bound = () => (typeof to === 'number' ? f.i32(to) : f.get(to));
      f.get(v);
      bound();
      f.i32GeS().brIf(0);
      f.loop((g) => {
        body(g);
        g.get(v).i32(step).i32Add().tee(v);
        bound();
        g.i32LtS().brIf(0);
      });
    });
  }

  /** The body as a code-section entry (locals grouped by type, then the instructions, then end). */
  encode(): number[] {
    if (this.depth !== 0) throw new Error(`wasm function ${this.name}: unbalanced blocks`);
    const body: number[] = [];
    const groups: [number, ValType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(body, groups.length);
    for (const [n, t] of groups) {
      uleb(body, n);
      body.push(VALTYPE[t]);
    }
    append(body, this.code);
    body.push(0x0b);
    const out: number[] = [];
    uleb(out, body.length);
    append(out, body);
    return out;
  }
}

/** A module importing one shared memory `env.memory` and exporting its functions. */
export class ModuleBuilder {
  private readonly funcs: FunctionBuilder[] = [];

  /** `cacheKey` names what the module is specialized to; equal keys mean byte-identical modules. */
  constructor(readonly cacheKey: string, readonly memory: { readonly minPages: number; readonly maxPages: number } = { minPages: 1, maxPages: 65536 }) {}

  func(fname: string, params: Record<string, ValType>, results: readonly ValType[] = []): FunctionBuilder {
    const f = new FunctionBuilder(fname, Object.entries(params), results);
    this.funcs.push(f);
    return f;
  }

  build(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]) => {
      out.push(id);
      uleb(out, content.length);
      append(out, content);
    };
    // type section: one type per function
    const types: number[] = [];
    uleb(types, this.funcs.length);
    for (const f of this.funcs) {
      types.push(0x60);
      uleb(types, f.params.length);
      for (const [, t] of f.params) types.push(VALTYPE[t]);
      uleb(types, f.results.length);
      for (const t of f.results) types.push(VALTYPE[t]);
    }
    section(1, types);
    // import section: env.memory, shared, with a maximum
    const imports: number[] = [];
    uleb(imports, 1);
    name(imports, 'env');
    name(imports, 'memory');
    imports.push(0x02, 0x03);
    uleb(imports, this.memory.minPages);
    uleb(imports, this.memory.maxPages);
    section(2, imports);
    const fsec: number[] = [];
    uleb(fsec, this.funcs.length);
    this.funcs.forEach((_, k) => uleb(fsec, k));
    section(3, fsec);
    const exp: number[] = [];
    uleb(exp, this.funcs.length);
    this.funcs.forEach((f, k) => {
      name(exp, f.name);
      exp.push(0x00);
      uleb(exp, k);
    });
    section(7, exp);
    const code: number[] = [];
    uleb(code, this.funcs.length);
    for (const f of this.funcs) append(code, f.encode());
    section(10, code);
    return new Uint8Array(out);
  }
}

/** A shared memory of at least `bytes` bytes, importable by modules from ModuleBuilder. */
export function sharedMemory(bytes: number, maxPages = 65536): WebAssembly.Memory {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  return new WebAssembly.Memory({ initial: pages, maximum: maxPages, shared: true });
}
