// The emitted vector math against float64 Math: exp2's relative error over its whole range (the bound
// the attention kernels' error budget uses), its exact zero below -127, and the transpose-reductions.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ModuleBuilder, sharedMemory } from './emitter.js';
import { EXP2_MAX_REL_ERROR, emitExp2, emitSplatLane, emitTransposeReduce } from './simd-math.js';

const memory = sharedMemory(1 << 22);
const F = new Float32Array(memory.buffer);

/** map(src, dst, n): dst[k..k+3] = op(src[k..k+3]) for k < n, step 4 (byte addresses). */
function vectorMap(emit: (f: ReturnType<ModuleBuilder['func']>) => void): (src: number, dst: number, n: number) => void {
  const m = new ModuleBuilder('map');
  const f = m.func('map', { src: 'i32', dst: 'i32', n: 'i32' });
  f.forRange('k', 0, 'n', 4, (g) => {
    g.get('dst').get('k').i32(4).i32Mul().i32Add();
    g.get('src').get('k').i32(4).i32Mul().i32Add().v128Load();
    emit(g);
    g.v128Store();
  });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(m.build()), { env: { memory } });
  return inst.exports['map'] as (src: number, dst: number, n: number) => void;
}

function exp2Of(xs: readonly number[], clampHigh: boolean): Float32Array {
  const n = Math.ceil(xs.length / 4) * 4;
  F.fill(0, 0, 2 * n);
  F.set(xs, 0);
  vectorMap((g) => emitExp2(g, 'e', clampHigh))(0, n * 4, n);
  return F.slice(n, n + xs.length);
}

describe('emitExp2', () => {
  it(`has relative error below ${EXP2_MAX_REL_ERROR} on [-126, 0] and, clamped, on [0, 127]`, () => {
    for (const [lo, hi, clampHigh] of [[-126, 0, false], [-126, 127, true]] as const) {
      const xs: number[] = [];
      for (let k = 0; k <= 200_000; k++) xs.push(Math.fround(lo + ((hi - lo) * k) / 200_000));
      // around every integer, where the reduction switches k
      for (let i = lo; i <= hi; i++) xs.push(Math.fround(i - 0.5), Math.fround(i - 0.4999), Math.fround(i), Math.fround(i + 0.4999));
      const got = exp2Of(xs, clampHigh);
      let worst = 0;
      xs.forEach((x, k) => {
        if (x < -126 || x > 127) return;
        const want = 2 ** x;
        worst = Math.max(worst, Math.abs(got[k]! - want) / want);
      });
      expect(worst).toBeLessThan(EXP2_MAX_REL_ERROR);
    }
  });

  it('is exactly 0 at and below -127 (masked scores), and 1 at 0', () => {
    const got = exp2Of([-127, -128, -1000, -1.4e30, -3e38, 0, -0], false);
    expect(Array.from(got)).toEqual([0, 0, 0, 0, 0, 1, 1]);
  });

  it('is finite and close to 2^127 above 127 when clamped', () => {
    const got = exp2Of([127, 200, 1e30], true);
    for (const y of got) expect(Math.abs(y - 2 ** 127) / 2 ** 127).toBeLessThan(EXP2_MAX_REL_ERROR);
  });
});

describe('emitTransposeReduce and emitSplatLane', () => {
  const m = new ModuleBuilder('reduce');
  for (const op of ['add', 'max'] as const) {
    const f = m.func(op, { src: 'i32', dst: 'i32' });
    for (let k = 0; k < 4; k++) f.local(`a${k}`, 'v128').get('src').v128Load(16 * k).set(`a${k}`);
    f.get('dst');
    emitTransposeReduce(f, op, ['a0', 'a1', 'a2', 'a3'], 't');
    f.v128Store();
  }
  const s = m.func('splat', { src: 'i32', dst: 'i32', lane: 'i32' });
  s.local('v', 'v128').get('src').v128Load().set('v');
  for (let lane = 0; lane < 4; lane++) {
    s.get('lane').i32(lane).i32Sub().i32Eqz().if((t) => {
      t.get('dst');
      emitSplatLane(t, 'v', lane);
      t.v128Store();
    });
  }
  const inst = new WebAssembly.Instance(new WebAssembly.Module(m.build()), { env: { memory } });
  const call = (name: string, ...args: number[]) => (inst.exports[name] as (...a: number[]) => void)(...args);

  it('reduce lane r of the result over the 4 lanes of input r', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 16, maxLength: 16 }), (vals) => {
        F.set(vals, 0);
        call('add', 0, 256);
        call('max', 0, 512);
        for (let r = 0; r < 4; r++) {
          const row = vals.slice(4 * r, 4 * r + 4).map(Math.fround);
          const sum = row.reduce((a, b) => a + b, 0);
          expect(Math.abs(F[64 + r]! - sum)).toBeLessThanOrEqual(1e-5 * (1 + row.reduce((a, b) => a + Math.abs(b), 0)));
          // + 0 makes -0 and +0 one value: the reduction's max need not order signed zeros
          expect(F[128 + r]! + 0).toBe(Math.max(...row) + 0);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('splats one lane', () => {
    F.set([1.5, -2, 3.25, 7], 0);
    for (let lane = 0; lane < 4; lane++) {
      call('splat', 0, 64, lane);
      expect(Array.from(F.subarray(16, 20))).toEqual(new Array(4).fill(F[lane]));
    }
  });
});
