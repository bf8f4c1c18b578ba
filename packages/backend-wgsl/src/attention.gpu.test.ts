// The generated kernels (tiled and subgroup) on a real WebGPU adapter (lavapipe without a GPU) against the
// float64 reference, on property-generated problems. Tolerances: f32 storage atol 1e-5, rtol 1e-4; f16
// storage (f32 accumulation, inputs rounded to f16 before the reference runs, Y stored as f16) atol 1e-2,
// rtol 1e-2. The subgroup kernel FAILS (never skips) when the adapter offers no `subgroups`.

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AttentionParams,
  type AttentionSpec,
  blockSparse,
  causal,
  dense,
  difference,
  dilatedWindow,
  floatToHalf,
  globalTokens,
  halfToFloat,
  intersect,
  lshBuckets,
  type MaskSpec,
  sinks,
  slidingWindow,
  topkBlocks,
  union,
} from '@attnopt/ir';
import { compareArrays, referenceAttention, type ReferenceInputs, type Tensor64, type Tolerance } from '@attnopt/reference';
import { attentionProblemArbitrary, defaultKernelSpecs, KERNEL_TOLERANCES, maskSpecArbitrary, seededValues } from '@attnopt/properties';
import {
  attentionProgram,
  DEFAULT_LIMITS,
  DEFAULT_WORKGROUP_STORAGE,
  kernelConfig,
  type KernelLimits,
  type StorageDType,
} from './attention-program.js';
import { planAttention, prepareAttention, runAttention } from './attention.js';
import { lshChunkProgram, lshHashProgram } from './kernels/lsh.js';
import { matmulProgram } from './kernels/matmul.js';
import { performerFeaturesProgram } from './kernels/performer-features.js';
import { rowDivideProgram } from './kernels/row-divide.js';
import { softmaxRowsProgram } from './kernels/softmax-rows.js';
import { WgslCompileError, type WgslRuntime } from './runtime.js';
import { ShaderBuilder } from './wgsl/builder.js';
import { testRuntime } from './testing/gpu.js';

/** WebGPU's default maxStorageBuffersPerShaderStage. */
const DEFAULT_STORAGE_BUFFERS = 8;
const TOL: Record<StorageDType, Tolerance> = { f32: KERNEL_TOLERANCES.float32, f16: KERNEL_TOLERANCES.float16 };
// 12 runs per property by default keeps the file near 90 s on a loaded 2-core lavapipe machine;
// CI (.ci/run) sets WGSL_NUM_RUNS=24: each run compiles its own pipeline, slow on lavapipe.
const NUM_RUNS = Number(process.env.WGSL_NUM_RUNS ?? 12);
/** Property tests compile one pipeline per generated problem: up to ~10 s each on a loaded lavapipe machine. */
const PROPERTY_TIMEOUT = 600_000;

let rt: WgslRuntime;
beforeAll(async () => {
  rt = await testRuntime();
});

const rounder = (dtype: StorageDType) => (dtype === 'f32' ? Math.fround : (x: number) => halfToFloat(floatToHalf(x)));

/** The inputs rounded to the storage dtype, so kernel and reference see the same numbers (bias stays f32). */
function roundInputs(inputs: ReferenceInputs, dtype: StorageDType): ReferenceInputs {
  const r = rounder(dtype);
  const t = (x: Tensor64 | undefined): Tensor64 | undefined => (x === undefined ? x : { shape: x.shape, data: x.data.map(r) });
  const bias = inputs.bias;
  return {
    q: t(inputs.q)!,
    ...(inputs.k ? { k: t(inputs.k)! } : {}),
    ...(inputs.v ? { v: t(inputs.v)! } : {}),
    ...(bias ? { bias: bias.data instanceof Float64Array ? { shape: bias.shape, data: bias.data.map(Math.fround) } : bias } : {}),
    ...(inputs.pastKey && inputs.pastValue ? { pastKey: t(inputs.pastKey)!, pastValue: t(inputs.pastValue)! } : {}),
    ...(inputs.kvLength ? { kvLength: inputs.kvLength } : {}),
  };
}

type KernelKind = 'tiled' | 'subgroup';

async function expectMatchesReference(
  params: AttentionParams,
  raw: ReferenceInputs,
  dtype: StorageDType,
  kernel: KernelKind,
  limits?: KernelLimits,
): Promise<void> {
  const inputs = roundInputs(raw, dtype);
  const expected = referenceAttention(params, inputs).y.data;
  const subgroups = kernel === 'subgroup';
  const prepared = await prepareAttention(rt, params, inputs, { dtype, subgroups, ...(limits ? { limits } : {}) });
  try {
    expect(prepared.plan?.program.name).toBe(subgroups ? 'attention_subgroup' : 'attention');
    await prepared.run();
    const actual = await prepared.read();
    const cmp = compareArrays(actual, expected, TOL[dtype]);
    if (!cmp.ok) {
      throw new Error(`${dtype} ${kernel} kernel differs from the reference (max abs error ${cmp.maxAbsError}): ${JSON.stringify(cmp.mismatches)}`);
    }
  } finally {
    prepared.release();
  }
}

function needSubgroups(kernel: KernelKind): void {
  if (kernel === 'subgroup' && !rt.features.subgroups) {
    expect.fail(`adapter ${rt.adapterDescription} does not offer subgroups; lavapipe (Mesa 25) does`);
  }
}

/** Problems with head dims 32/64/80/96/128, GQA, odd lengths, any index spec, optional bias with masked rows. */
function headDimProblem(maxLen: number, specs: fc.Arbitrary<AttentionSpec> = defaultKernelSpecs(maxLen) as fc.Arbitrary<AttentionSpec>) {
  return fc
    .record({
      d: fc.constantFrom(32, 64, 80, 96, 128),
      group: fc.integer({ min: 1, max: 4 }),
      kvHeads: fc.integer({ min: 1, max: 2 }),
      batch: fc.integer({ min: 1, max: 2 }),
      nq: fc.integer({ min: 1, max: maxLen }),
      nk: fc.integer({ min: 1, max: maxLen }),
      softcap: fc.oneof(fc.constant(0), fc.double({ min: 1, max: 20, noNaN: true })),
      maskedRow: fc.boolean(),
      seed: fc.integer({ min: 0, max: 2 ** 30 }),
      spec: specs,
    })
    .map((r) => {
      const H = r.group * r.kvHeads;
      const params: AttentionParams = {
        numHeads: H,
        kvNumHeads: r.kvHeads,
        headDim: r.d,
        vHeadDim: r.d,
        scale: 1 / Math.sqrt(r.d),
        softcap: r.softcap,
        layout: 'bhsd',
        spec: r.spec,
      };
      const t = (salt: number, shape: number[]): Tensor64 => ({ shape, data: seededValues(r.seed * 4 + salt, shape.reduce((a, b) => a * b), 1) });
      // A boolean mask [nq, nk] whose first row is fully masked when maskedRow.
      const mask = Uint8Array.from({ length: r.nq * r.nk }, (_, x) => (r.maskedRow && x < r.nk ? 0 : 1));
      const inputs: ReferenceInputs = {
        q: t(0, [r.batch, H, r.nq, r.d]),
        k: t(1, [r.batch, r.kvHeads, r.nk, r.d]),
        v: t(2, [r.batch, r.kvHeads, r.nk, r.d]),
        ...(r.maskedRow ? { bias: { shape: [r.nq, r.nk], data: mask } } : {}),
      };
      return { params, inputs };
    });
}

describe.each(['tiled', 'subgroup'] as const)('%s attention kernel vs the float64 reference (f32 storage, atol 1e-5, rtol 1e-4)', (kernel) => {
  it('any index spec, layout, GQA, head dims 1..96, bias, past K/V, fully masked rows', async () => {
    needSubgroups(kernel);
    await fc.assert(
      fc.asyncProperty(attentionProblemArbitrary({ range: 1, maxLen: 16, spec: defaultKernelSpecs(16) }), async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('head dims 32/64/80/96/128 with GQA, softcap and fully masked rows', async () => {
    needSubgroups(kernel);
    await fc.assert(
      fc.asyncProperty(headDimProblem(24), async ({ params, inputs }) => {
        await expectMatchesReference(params, inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('kvLength (per-batch valid keys) with any index spec', async () => {
    needSubgroups(kernel);
    const arb = attentionProblemArbitrary({ range: 1, maxLen: 16, past: false, spec: defaultKernelSpecs(16) }).chain((p) => {
      const batch = p.bhsd.q.shape[0]!;
      const nk = p.bhsd.k.shape[2]!;
      return fc.array(fc.integer({ min: 0, max: nk }), { minLength: batch, maxLength: batch }).map((kvLength) => ({ ...p, inputs: { ...p.inputs, kvLength } }));
    });
    await fc.assert(
      fc.asyncProperty(arb, async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('kvLength whose padding keys and values hold NaN (unwritten KV cache slots): no row reads them', async () => {
    needSubgroups(kernel);
    await fc.assert(
      fc.asyncProperty(attentionProblemArbitrary({ range: 1, maxLen: 16, past: false, spec: defaultKernelSpecs(16), kvLength: true }), async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('under a fake small-limit adapter (1 workgroup per dimension, 4 invocations): split dispatches give the same result', async () => {
    needSubgroups(kernel);
    const tiny: KernelLimits = { ...DEFAULT_LIMITS, maxComputeWorkgroupsPerDimension: 1, maxComputeInvocationsPerWorkgroup: 4, maxComputeWorkgroupSizeX: 4 };
    let split = 0;
    await fc.assert(
      fc.asyncProperty(attentionProblemArbitrary({ range: 1, maxLen: 24, spec: defaultKernelSpecs(24) }), async (p) => {
        if (planAttention(p.params, p.inputs, { dtype: 'f32', limits: tiny }).dispatches.length > 1) split++;
        await expectMatchesReference(p.params, p.inputs, 'f32', kernel, tiny);
      }),
      { numRuns: NUM_RUNS },
    );
    expect(split).toBeGreaterThan(0);
  }, PROPERTY_TIMEOUT);

  it('data-dependent leaves (LSH buckets and chunks, top-k blocks) alone and combined, self-attention', async () => {
    needSubgroups(kernel);
    const arb = attentionProblemArbitrary({
      range: 1,
      maxLen: 16,
      selfAttention: true,
      spec: maskSpecArbitrary({ maxLen: 16, dataDependent: true }) as fc.Arbitrary<AttentionSpec>,
    });
    await fc.assert(
      fc.asyncProperty(arb, async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('LSH and top-k at head dims 32..128, GQA, odd lengths, cross-attention (chunk 0)', async () => {
    needSubgroups(kernel);
    const specs = fc.oneof(
      fc.record({ h: fc.integer({ min: 1, max: 3 }), b: fc.constantFrom(2, 4, 8), s: fc.nat(1000) }).map((r) => lshBuckets(r.h, r.b, r.s) as AttentionSpec),
      fc.record({ blk: fc.integer({ min: 1, max: 8 }), k: fc.integer({ min: 1, max: 3 }), quest: fc.boolean() }).map(
        (r) => topkBlocks(r.blk, r.k, r.quest ? 'quest' : 'mean') as AttentionSpec,
      ),
      fc.nat(1000).map((s) => union(causal('bottom-right'), lshBuckets(2, 4, s)) as AttentionSpec),
    );
    await fc.assert(
      fc.asyncProperty(headDimProblem(24, specs), async ({ params, inputs }) => {
        await expectMatchesReference(params, inputs, 'f32', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);

  it('known values: one query, two keys, causal bottom-right', async () => {
    needSubgroups(kernel);
    const params: AttentionParams = { numHeads: 1, kvNumHeads: 1, headDim: 1, vHeadDim: 1, scale: 1, softcap: 0, layout: 'bhsd', spec: causal('bottom-right') };
    const y = await runAttention(
      rt,
      params,
      {
        q: { shape: [1, 1, 1, 1], data: [Math.log(3)] },
        k: { shape: [1, 1, 2, 1], data: [0, 1] },
        v: { shape: [1, 1, 2, 1], data: [10, 20] },
      },
      { subgroups: kernel === 'subgroup' },
    );
    // softmax([0, ln 3]) = [1/4, 3/4]
    expect(y[0]).toBeCloseTo(17.5, 4);
  });
});

describe.each(['tiled', 'subgroup'] as const)('%s attention kernel with f16 storage (f32 accumulation; atol 1e-2, rtol 1e-2)', (kernel) => {
  it('any index spec, layout, GQA, head dims 32..128, bias', async () => {
    needSubgroups(kernel);
    if (!rt.features.f16) {
      expect.fail(`adapter ${rt.adapterDescription} does not offer shader-f16; lavapipe (Mesa 25) does`);
    }
    await fc.assert(
      fc.asyncProperty(fc.oneof(attentionProblemArbitrary({ range: 1, maxLen: 16, spec: defaultKernelSpecs(16) }), headDimProblem(16)), async (p) => {
        await expectMatchesReference(p.params, p.inputs, 'f16', kernel);
      }),
      { numRuns: NUM_RUNS },
    );
  }, PROPERTY_TIMEOUT);
});

describe('generated WGSL', () => {
  const specs: [string, MaskSpec][] = [
    ['dense', dense],
    ['causal', causal()],
    ['causal bottom-right', causal('bottom-right')],
    ['window past', slidingWindow(3, 1, 'past')],
    ['dilated', dilatedWindow(6, 2, 3)],
    ['sinks', sinks(2)],
    ['global', globalTokens([0, 5, 9])],
    ['global empty', globalTokens([])],
    ['blocks', blockSparse(4, 4, [[0], [0, 1], [], [2, 3]])],
    ['union', union(causal(), sinks(1))],
    ['intersect', intersect(slidingWindow(4, 4), causal())],
    ['diff', difference(causal(), dilatedWindow(8, 0, 2))],
  ];
  const base: AttentionParams = { numHeads: 4, kvNumHeads: 2, headDim: 64, vHeadDim: 64, scale: 0.125, softcap: 0, layout: 'bhsd', spec: dense };

  specs.push(['lsh', lshBuckets(2, 4, 1)], ['lsh chunked', lshBuckets(1, 2, 3, 4)], ['topk', topkBlocks(4, 2)], ['union lsh', union(causal(), lshBuckets(1, 2, 5))]);

  it.each(specs)('%s compiles without errors or warnings, both kernels, f32 and f16, with softcap and bias', async (_, spec) => {
    expect(rt.features.subgroups, 'the adapter offers subgroups').toBe(true);
    for (const subgroups of [false, true]) {
      for (const dtype of rt.features.f16 ? (['f32', 'f16'] as const) : (['f32'] as const)) {
        for (const extra of [{ softcap: 0, bias: false }, { softcap: 30, bias: true }]) {
          const program = attentionProgram(kernelConfig({ ...base, spec, softcap: extra.softcap }, { dtype, bias: extra.bias, limits: rt.limits, subgroups }));
          const messages = await rt.compilationMessages(program);
          expect(messages.map((m) => `${m.type} ${m.lineNum}: ${m.message}`)).toEqual([]);
          expect(program.storage.length).toBeLessThanOrEqual(DEFAULT_STORAGE_BUFFERS);
        }
      }
    }
  });

  it('the sequence kernels (matmul, softmax, features, row divide, LSH) compile without messages, f32 and f16', async () => {
    const programs = [softmaxRowsProgram(), lshChunkProgram()];
    for (const t of rt.features.f16 ? (['f32', 'f16'] as const) : (['f32'] as const)) {
      programs.push(
        matmulProgram({ a: t, b: 'f32', c: 'f32' }),
        matmulProgram({ a: 'f32', b: t, c: 'f32' }),
        matmulProgram({ a: 'f32', b: 'f32', c: t }),
        rowDivideProgram(t),
        performerFeaturesProgram(t, 80),
        lshHashProgram(t, 96, 8),
      );
    }
    for (const program of programs) {
      const messages = await rt.compilationMessages(program);
      expect(messages.map((m) => `${program.name} ${m.type} ${m.lineNum}: ${m.message}`)).toEqual([]);
      await rt.pipeline(program);
    }
  });

  it("kernels stay within the device's limits and the tiled kernel within WebGPU's default 16 KiB", () => {
    for (const d of [32, 64, 80, 96, 128]) {
      for (const dtype of ['f32', 'f16'] as const) {
        for (const subgroups of [false, true]) {
          const p = { ...base, headDim: d, vHeadDim: d, numHeads: 8, kvNumHeads: 1 };
          const plan = planAttention(p, { q: { shape: [1, 8, 5, d], data: new Float32Array(40 * d) }, k: { shape: [1, 1, 5, d], data: new Float32Array(5 * d) }, v: { shape: [1, 1, 5, d], data: new Float32Array(5 * d) } }, { dtype, limits: rt.limits, subgroups });
          expect(plan.program.workgroupBytes).toBeLessThanOrEqual(Math.min(rt.limits.maxComputeWorkgroupStorageSize, DEFAULT_WORKGROUP_STORAGE));
          if (subgroups) expect(plan.program.workgroupBytes).toBe(4);
          expect(plan.program.workgroupSize).toBeLessThanOrEqual(Math.min(rt.limits.maxComputeInvocationsPerWorkgroup, rt.limits.maxComputeWorkgroupSizeX));
        }
      }
    }
  });

  it('every generated spec compiles without messages (property)', async () => {
    await fc.assert(
      fc.asyncProperty(maskSpecArbitrary({ maxLen: 24, dataDependent: true }), fc.boolean(), async (spec, subgroups) => {
        const program = attentionProgram(kernelConfig({ ...base, spec }, { dtype: 'f32', bias: true, limits: rt.limits, subgroups }));
        const messages = await rt.compilationMessages(program);
        expect(messages.map((m) => `${m.type} ${m.lineNum}: ${m.message}`)).toEqual([]);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('emits only the helpers a shader uses', () => {
    const plain = attentionProgram(kernelConfig(base, { dtype: 'f32', bias: false, limits: DEFAULT_LIMITS }));
    const capped = attentionProgram(kernelConfig({ ...base, softcap: 5 }, { dtype: 'f32', bias: false, limits: DEFAULT_LIMITS }));
    expect(plain.code).not.toContain('safe_tanh');
    expect(plain.code).not.toContain('fn keep');
    expect(capped.code).toContain('fn safe_tanh');
    expect(capped.cacheKey).not.toBe(plain.cacheKey);
  });

  it('the pipeline cache compiles a program once per cache key', async () => {
    const program = attentionProgram(kernelConfig({ ...base, spec: sinks(3) }, { dtype: 'f32', bias: false, limits: rt.limits }));
    const before = rt.compiled;
    const [a, b] = await Promise.all([rt.pipeline(program), rt.pipeline(program)]);
    expect(a).toBe(b);
    expect(await rt.pipeline(program)).toBe(a);
    expect(rt.compiled - before).toBeLessThanOrEqual(1);
  });

  it('a WGSL compile error is an exception naming the kernel and the line', async () => {
    const b = new ShaderBuilder('broken_kernel');
    b.storageArray('out', 'f32', 'read_write');
    const program = b.build({ workgroupSize: 1, body: '  out[0] = undefined_name;', keyParts: ['test'] });
    const line = program.code.split('\n').findIndex((l) => l.includes('undefined_name')) + 1;
    const err = await rt.pipeline(program).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WgslCompileError);
    expect((err as Error).message).toContain('broken_kernel');
    expect((err as Error).message).toContain(`line ${line}:`);
  });
});
