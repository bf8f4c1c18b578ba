import { describe, expect, it } from 'vitest';
import { ModuleBuilder, sharedMemory } from './emitter.js';
import { wasmAttentionKernel } from '../kernels.js';

describe('ModuleBuilder', () => {
  it('emits a valid module that computes a SIMD dot product over shared memory', () => {
    const m = new ModuleBuilder('dot');
    const f = m.func('dot', { a: 'i32', b: 'i32', n: 'i32' }, ['f32']);
    f.local('acc', 'v128').local('t', 'v128').f32x4Const(0).set('acc');
    f.forRange('i', 0, 'n', 16, (g) => {
      g.get('acc').get('a').get('i').i32Add().v128Load().get('b').get('i').i32Add().v128Load().f32x4Mul().f32x4Add().set('acc');
    });
    f.get('acc').set('t').get('t').f32x4ExtractLane(0).get('t').f32x4ExtractLane(1).f32Add();
    f.get('t').f32x4ExtractLane(2).get('t').f32x4ExtractLane(3).f32Add().f32Add();
    const bytes = m.build();
    expect(WebAssembly.validate(bytes)).toBe(true);
    const memory = sharedMemory(1 << 16);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const F = new Float32Array(memory.buffer);
    for (let k = 0; k < 8; k++) {
      F[k] = k;
      F[16 + k] = 2;
    }
    expect((inst.exports['dot'] as (a: number, b: number, n: number) => number)(0, 64, 32)).toBe(56);
  });

  it('rejects kernel shapes the generator cannot tile', () => {
    const ok = { blockQ: 8, blockK: 8, dPad: 4, dvPad: 8, softcap: 0 };
    expect(() => wasmAttentionKernel({ ...ok, blockQ: 6 })).toThrow(/blockQ/);
    expect(() => wasmAttentionKernel({ ...ok, dvOut: 12 })).toThrow(/dvOut/);
    expect(() => wasmAttentionKernel({ ...ok, kStride: 6 })).toThrow(/kStride/);
    expect(() => wasmAttentionKernel({ ...ok, scale: 0 })).toThrow(/scale/);
  });

  it('rejects unbalanced or unknown locals', () => {
    const m = new ModuleBuilder('bad');
    expect(() => m.func('f', {}).get('nope')).toThrow(/unknown local/);
  });

  it('emits valid attention kernels with a cache key per shape', () => {
    for (const s of [
      { blockQ: 4, blockK: 8, dPad: 4, dvPad: 8, softcap: 0 },
      { blockQ: 64, blockK: 64, dPad: 64, dvPad: 64, softcap: 0 },
      { blockQ: 32, blockK: 64, dPad: 128, dvPad: 128, softcap: 30 },
      { blockQ: 64, blockK: 64, dPad: 64, dvPad: 64, softcap: 0, scale: 0.125, qStride: 512, kStride: 256, vStride: 256, oStride: 512, dvOut: 64 },
      { blockQ: 8, blockK: 16, dPad: 80, dvPad: 24, softcap: 5, scale: 0.3, qStride: 720, kStride: 720, vStride: 720, oStride: 180, dvOut: 20 },
    ]) {
      const k = wasmAttentionKernel(s);
      expect(WebAssembly.validate(k.bytes)).toBe(true);
      expect(k.cacheKey).toContain(`d${s.dPad}`);
    }
  });
});
