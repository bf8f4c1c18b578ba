// compile: one attention site -> the generated kernel of a backend, and a manifest entry saying what it
// computes (spec in IR text form, shapes, layout, dtype, bindings), so a runtime can call it without
// reading the generator.
//   Attention(Q, K, V, spec=S) -> WGSL flash-attention program (backend-wgsl), or
//                              -> WebAssembly SIMD block kernel + JavaScript kernel + keep predicate (backend-cpu)
//   Attention(Q, K, V, spec=S, guard) -> the guarded kernel of the target (compile-guarded.ts), or its exact
//                                        baseline where the guarded kernel does not cover the site (manifest says why)

import { jsAttentionKernelSource, wasmAttentionKernel } from '@attnopt/backend-cpu';
import { attentionProgram, DEFAULT_LIMITS, kernelConfig } from '@attnopt/backend-wgsl';
import {
  AttentionInput,
  type AttentionParams,
  attentionParams,
  isAttention,
  isLowRank,
  type MaskSpec,
  type Node,
  printSpec,
  validateAttentionParams,
  hasRuntimeHeadDim,
  RUNTIME_HEAD_DIM_REASON,
} from '@attnopt/ir';
import { inferDtype } from '@attnopt/passes';
import { cpuGuardedKernel, guardedKernelGap, wgslGuardedKernel } from './compile-guarded.js';
import {
  common,
  type CompiledKernel,
  DATA_CODES,
  type CompileOptions,
  type CompileTarget,
  cpuKernelShape,
  type KernelBinding,
  type KernelFile,
  keepPredicateModule,
  programBindings,
} from './compile-manifest.js';

export type { CompileOptions, CompileTarget, CompiledKernel, KernelBinding, KernelFile, KernelGuard, KernelManifestEntry } from './compile-manifest.js';

/** A site as `attentionSites` lists it, or an Attention node (named by its node name then). */
export type CompileSite = Node | { readonly id: string; readonly node: Node };

function siteOf(site: CompileSite): { id: string; node: Node } {
  return 'node' in site ? site : { id: site.name || 'attention', node: site };
}

function wgslKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const modelDtype = inferDtype(node.inputs[AttentionInput.q]) ?? '?';
  const dtype = options.dtype ?? (modelDtype === 'f16' ? 'f16' : 'f32');
  const bias = node.inputs[AttentionInput.bias] !== undefined;
  const config = kernelConfig(p, { dtype, bias, limits: options.limits ?? DEFAULT_LIMITS });
  const program = attentionProgram(config);
  const file = `${id}.wgsl`;
  const storageText: Readonly<Record<string, string>> = {
    Q: `queries in layout ${p.layout}`,
    K: 'keys',
    V: 'values',
    Y: 'the output, in the layout of Q (packed-qkv: bsd)',
    bias: 'additive bias broadcast to [batch, heads, nq, nk], read at b · bias_sb + h · bias_sh + i · bias_si + j (a key bias [.., 1, nk]: bias_si = 0, never expanded; boolean masks as 0 / -inf)',
    data_codes: DATA_CODES,
  };
  const hostPlan = 'computed by the host from the spec (planAttention in @attnopt/backend-wgsl): the non-empty key blocks of each query block';
  const bindings = programBindings(program, storageText, hostPlan);
  return {
    files: [{ name: file, contents: program.code, description: 'WGSL compute shader, entry point main, bind group 0' }],
    manifest: {
      ...common(id, node, p, 'wgsl', bias),
      modelDtype,
      dtype,
      entryPoint: 'main',
      cacheKey: program.cacheKey,
      files: [file],
      bindings,
      workgroupSize: program.workgroupSize,
      workgroupBytes: program.workgroupBytes,
      features: program.features,
      tiling: { headsPerWorkgroup: config.headsPerWorkgroup, blockQ: config.blockQ, blockK: config.blockK },
    },
  };
}

function cpuKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const spec = p.spec as MaskSpec;
  const shape = cpuKernelShape(p, options);
  const wasm = wasmAttentionKernel(shape);
  const bias = node.inputs[AttentionInput.bias] !== undefined;
  const files: KernelFile[] = [
    {
      name: `${id}.wasm`,
      contents: wasm.bytes,
      description: 'WebAssembly SIMD128 module: imports env.memory (shared), exports attend(q, out, blocks, nBlocks, scratch, rows)',
    },
    {
      name: `${id}.attend.js`,
      contents: jsAttentionKernelSource(shape, p.headDim, p.vHeadDim),
      description:
        'the same kernel in portable JavaScript: new Function(source)() returns attend(F, I, q, out, blocks, nBlocks, scratch, rows), ' +
        'F and I the Float32Array and Int32Array views of the memory',
    },
    {
      name: `${id}.keep.js`,
      contents: keepPredicateModule(spec),
      description: 'ES module exporting keep(i, j, oTL, oBR, oPast, L): the spec as a predicate, evaluated on partial key blocks to fill their mask tiles',
    },
  ];
  const arg = (name: string, description: string): KernelBinding => ({ name, kind: 'argument', type: 'i32', description });
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP } = shape;
  return {
    files,
    manifest: {
      ...common(id, node, p, 'cpu', bias),
      modelDtype: inferDtype(node.inputs[AttentionInput.q]) ?? '?',
      dtype: 'f32',
      entryPoint: 'attend',
      cacheKey: wasm.cacheKey,
      files: files.map((f) => f.name),
      bindings: [
        { name: 'env.memory', kind: 'import', type: 'memory (shared)', description: 'the linear memory holding every block; all addresses below are byte offsets, 16-byte aligned' },
        arg('q', `Q block: ${BQ} rows of ${DP} f32 (one query head, unscaled: the kernel applies the scale), columns past the head size 0`),
        arg('out', `Y block: the first \`rows\` rows of ${DVP} f32 are written, normalized; a row that keeps no key is 0`),
        arg('blocks', `key-block list: nBlocks entries of 3 i32: K block (${BK} rows of ${DP} f32), V block (${BK} rows of ${DVP} f32), mask tile ([${BQ}][${BK}] f32 added to the scores, -1e30 masks; 0: a full block, no mask work)`),
        arg('nBlocks', 'entries in the list: the non-empty key blocks of this query block under the spec'),
        arg('scratch', `${(BQ * DVP + BQ * BK + 2 * BQ) * 4} bytes: the P V accumulator, scores, running max and running sum`),
        arg('rows', `query rows of this block to write (at most ${BQ})`),
      ],
      tiling: { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP },
    },
  };
}

/**
 * Generates the kernel of one attention site for `options.target`. A guarded site gets the target's guarded
 * kernel (the manifest's `guard` says what it promises), or, where that kernel does not cover the site, its exact
 * baseline, with `guardedAsBaseline` saying why. Throws an error naming the site, its node and the problem when
 * the backend has no kernel for it (low-rank forms).
 */
export function compile(site: CompileSite, options: CompileOptions): CompiledKernel {
  const { id, node } = siteOf(site);
  const target: CompileTarget = options.target;
  const fail = (problem: string): never => {
    throw new Error(`${id} (${node.describe()}): no ${target === 'wgsl' ? 'WGSL' : 'CPU'} kernel: ${problem}`);
  };
  if (!isAttention(node)) fail('not an attnopt::Attention node (run recognize first)');
  if (target !== 'wgsl' && target !== 'cpu') fail(`unknown target ${String(target)}: wgsl or cpu`);
  const params = validateAttentionParams(attentionParams(node));
  if (hasRuntimeHeadDim(params)) fail(`${RUNTIME_HEAD_DIM_REASON}: a kernel needs a static head size`);
  if (isLowRank(params.spec)) fail(`the low-rank form ${printSpec(params.spec)} has no generated kernel yet`);
  const plain = (p: AttentionParams) => (target === 'wgsl' ? wgslKernel(id, p, node, options) : cpuKernel(id, p, node, options));
  try {
    if (params.guard === undefined) return plain(params);
    const gap = guardedKernelGap(params);
    if (gap === undefined) return target === 'wgsl' ? wgslGuardedKernel(id, params, node, options) : cpuGuardedKernel(id, params, node, options);
    // guarded -> its exact baseline where the guarded kernel does not apply: never the sparse form without its certificate
    const baseline: AttentionParams = { ...params, spec: params.guard.baseline, guard: undefined };
    const kernel = plain(baseline);
    const why =
      `the site is guarded (${printSpec(params.spec)}, budget ${params.guard.budget}) but the guarded ${target === 'wgsl' ? 'WGSL' : 'CPU'} kernel does not cover it: ` +
      `${gap}; this kernel computes its exact baseline ${printSpec(baseline.spec)} (error 0)`;
    return { ...kernel, manifest: { ...kernel.manifest, guardedAsBaseline: why } };
  } catch (e) {
    return fail((e as Error).message);
  }
}
