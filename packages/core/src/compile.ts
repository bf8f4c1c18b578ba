// compile: one attention site -> the generated kernel of a backend, and a manifest entry saying what it
// computes (spec in IR text form, shapes, layout, dtype, bindings), so a runtime can call it without
// reading the generator.
//   Attention(Q, K, V, spec=S) -> WGSL flash-attention program (backend-wgsl), or
//                              -> WebAssembly SIMD block kernel + JavaScript kernel + keep predicate (backend-cpu)

import {
  type KernelShape,
  jsAttentionKernelSource,
  maskPredicateSource,
  wasmAttentionKernel,
} from '@attnopt/backend-cpu';
import { attentionProgram, DEFAULT_LIMITS, type KernelLimits, kernelConfig, type StorageDType } from '@attnopt/backend-wgsl';
import {
  AttentionInput,
  type AttentionParams,
  attentionParams,
  type DataDependentSpec,
  isAttention,
  isLowRank,
  type MaskSpec,
  type Node,
  printShape,
  printSpec,
  validateAttentionParams,
  hasRuntimeHeadDim,
  RUNTIME_HEAD_DIM_REASON,
} from '@attnopt/ir';
import { inferDtype, inferShape } from '@attnopt/passes';

export type CompileTarget = 'wgsl' | 'cpu';

export interface CompileOptions {
  readonly target: CompileTarget;
  /** WGSL: storage dtype of Q, K, V and Y (default: f16 when the model's Q is f16, else f32; accumulation is f32). */
  readonly dtype?: StorageDType;
  /** WGSL: the adapter limits to plan for (default: WebGPU's default limits, which every adapter offers). */
  readonly limits?: KernelLimits;
  /** CPU: query rows per block (multiple of 4) and keys per block (multiple of 8); default 64 each. */
  readonly blockQ?: number;
  readonly blockK?: number;
}

/** A site as `attentionSites` lists it, or an Attention node (named by its node name then). */
export type CompileSite = Node | { readonly id: string; readonly node: Node };

/** One generated file: its name (relative, starting with the site id) and contents. */
export interface KernelFile {
  readonly name: string;
  readonly contents: string | Uint8Array;
  /** What the file holds and how a host loads it. */
  readonly description: string;
}

/** An input or output of a kernel as its host binds it. */
export interface KernelBinding {
  readonly name: string;
  /** `storage` and `uniform` (WGSL bind group 0), `argument` (a CPU kernel's parameter), `import` (CPU memory). */
  readonly kind: 'storage' | 'uniform' | 'argument' | 'import';
  /** WGSL element type, or the WebAssembly value type of an argument. */
  readonly type: string;
  readonly binding?: number;
  readonly access?: 'read' | 'read_write';
  readonly description: string;
}

/** What a generated kernel computes and how to call it. */
export interface KernelManifestEntry {
  readonly site: string;
  readonly node: string;
  readonly target: CompileTarget;
  /** The computation in words. */
  readonly computes: string;
  /** The spec the kernel applies, in IR text form: which keys each query sees. */
  readonly spec: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vHeadDim: number;
  readonly scale: number;
  readonly softcap: number;
  readonly layout: string;
  /** Element type of the model's Q (`?` when unknown) and the kernel's storage type of Q, K, V and Y. */
  readonly modelDtype: string;
  readonly dtype: string;
  /** Shapes of Q, K, V, bias and Y in IR text form (symbolic dims by name); absent inputs are null. */
  readonly shapes: { readonly q: string; readonly k: string | null; readonly v: string | null; readonly bias: string | null; readonly y: string };
  readonly entryPoint: string;
  readonly cacheKey: string;
  readonly files: readonly string[];
  readonly bindings: readonly KernelBinding[];
  /** WGSL: threads per workgroup, workgroup memory, device features needed, tiling. */
  readonly workgroupSize?: number;
  readonly workgroupBytes?: number;
  readonly features?: readonly string[];
  /** Tiling: query rows and keys per block (WGSL: also query heads per workgroup). */
  readonly tiling: Readonly<Record<string, number>>;
  /**
   * Present when the site is guarded: generated kernels do not carry the run-time certificate yet, so the
   * kernel computes the site's exact baseline spec (error 0) instead of the guarded sparse form, and this says so.
   */
  readonly guardedAsBaseline?: string;
}

export interface CompiledKernel {
  readonly files: readonly KernelFile[];
  readonly manifest: KernelManifestEntry;
}

function siteOf(site: CompileSite): { id: string; node: Node } {
  return 'node' in site ? site : { id: site.name || 'attention', node: site };
}

function describeComputation(p: AttentionParams, bias: boolean): string {
  const group = p.numHeads / p.kvNumHeads;
  const heads =
    group === 1
      ? `${p.numHeads} heads`
      : p.kvNumHeads === 1
        ? `${p.numHeads} query heads sharing one key/value head (MQA)`
        : `${p.numHeads} query heads, ${group} per key/value head (GQA, ${p.kvNumHeads} key/value heads)`;
  const scores = p.softcap > 0 ? `${p.softcap} tanh(${p.scale.toPrecision(6)} q·k / ${p.softcap})` : `${p.scale.toPrecision(6)} q·k`;
  return (
    `attention over ${heads}, head size ${p.headDim}${p.vHeadDim !== p.headDim ? ` (values ${p.vHeadDim})` : ''}, layout ${p.layout}: ` +
    `y_i = softmax_j(${scores}${bias ? ' + bias_ij' : ''}) v_j over the keys j that ${printSpec(p.spec)} keeps for query i; ` +
    `a query that keeps no key gives 0`
  );
}

function shapesOf(node: Node): KernelManifestEntry['shapes'] {
  const text = (k: number) => (node.inputs[k] ? printShape(inferShape(node.inputs[k])) : null);
  return {
    q: text(AttentionInput.q)!,
    k: text(AttentionInput.k),
    v: text(AttentionInput.v),
    bias: text(AttentionInput.bias),
    y: printShape(inferShape(node.outputs[0])),
  };
}

function wgslKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const modelDtype = inferDtype(node.inputs[AttentionInput.q]) ?? '?';
  const dtype = options.dtype ?? (modelDtype === 'f16' ? 'f16' : 'f32');
  const bias = node.inputs[AttentionInput.bias] !== undefined;
  const config = kernelConfig(p, { dtype, bias, limits: options.limits ?? DEFAULT_LIMITS });
  const program = attentionProgram(config);
  const file = `${id}.wgsl`;
  const storageText: Record<string, string> = {
    Q: `queries in layout ${p.layout}`,
    K: 'keys',
    V: 'values',
    Y: 'the output, in the layout of Q (packed-qkv: bsd)',
    bias: 'additive bias [batch, heads, nq, nk] read through strides (boolean masks as 0 / -inf)',
  };
  const hostPlan = 'computed by the host from the spec (planAttention in @attnopt/backend-wgsl): the non-empty key blocks of each query block';
  const bindings: KernelBinding[] = [
    {
      name: 'u',
      kind: 'uniform',
      type: `struct { ${program.uniforms.map((f) => `${f.name}: ${f.type}`).join(', ')} }`,
      binding: program.uniformBinding,
      description: 'extents, strides and scalars of one dispatch, packed 4 bytes per field in this order',
    },
    ...program.storage.map(
      (s): KernelBinding => ({
        name: s.name,
        kind: 'storage',
        type: `array<${s.element}>`,
        binding: s.binding,
        access: s.access,
        description: storageText[s.name] ?? hostPlan,
      }),
    ),
  ];
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

/** A table of maskPredicateSource (a Set of indices or an array of them) as a JavaScript expression. */
function tableSource(t: unknown): string {
  if (t instanceof Set) return `new Set(${JSON.stringify([...t])})`;
  if (Array.isArray(t)) return `[${t.map(tableSource).join(', ')}]`;
  return JSON.stringify(t);
}

function keepPredicateModule(spec: MaskSpec): string {
  const tables: unknown[] = [];
  const leaves: DataDependentSpec[] = [];
  const expr = maskPredicateSource(spec, tables, leaves);
  return (
    `// The keep predicate of ${printSpec(spec)}: key j is attended by query i when keep(...) is true.\n` +
    `// oTL = 0, oBR = nk - nq, oPast = the cached keys before this call; ` +
    (leaves.length > 0 ? `L[k](i, j) answers the data-dependent leaf k (${leaves.map((l) => printSpec(l)).join(', ')}), resolved from Q and K by the host.\n` : 'L is unused.\n') +
    `const T = ${tableSource(tables)};\n` +
    `export function keep(i, j, oTL, oBR, oPast, L) {\n  return ${expr};\n}\n`
  );
}

function cpuKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const spec = p.spec as MaskSpec;
  // specialized to the site's scale and softcap; rows of Q, K, V and Y packed at their padded widths
  const shape: KernelShape = {
    blockQ: options.blockQ ?? 64,
    blockK: options.blockK ?? 64,
    dPad: Math.ceil(p.headDim / 4) * 4,
    dvPad: Math.ceil(p.vHeadDim / 8) * 8,
    softcap: p.softcap,
    scale: p.scale,
  };
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

function common(id: string, node: Node, p: AttentionParams, target: CompileTarget, bias: boolean) {
  return {
    site: id,
    node: node.name || node.describe(),
    target,
    computes: describeComputation(p, bias),
    spec: printSpec(p.spec),
    heads: p.numHeads,
    kvHeads: p.kvNumHeads,
    headDim: p.headDim,
    vHeadDim: p.vHeadDim,
    scale: p.scale,
    softcap: p.softcap,
    layout: p.layout,
    shapes: shapesOf(node),
  };
}

/**
 * Generates the kernel of one attention site for `options.target`. Throws an error naming the site, its node
 * and the problem when the backend has no kernel for it (low-rank forms; data-dependent selections in WGSL).
 */
export function compile(site: CompileSite, options: CompileOptions): CompiledKernel {
  const { id, node } = siteOf(site);
  const fail = (problem: string): never => {
    throw new Error(`${id} (${node.describe()}): no ${options.target === 'wgsl' ? 'WGSL' : 'CPU'} kernel: ${problem}`);
  };
  if (!isAttention(node)) fail('not an attnopt::Attention node (run recognize first)');
  if (options.target !== 'wgsl' && options.target !== 'cpu') fail(`unknown target ${String(options.target)}: wgsl or cpu`);
  const params = validateAttentionParams(attentionParams(node));
  // guarded -> its exact baseline: a sparse kernel without the certificate would break the guarantee
  const p: AttentionParams = params.guard === undefined ? params : { ...params, spec: params.guard.baseline, guard: undefined };
  if (hasRuntimeHeadDim(p)) fail(`${RUNTIME_HEAD_DIM_REASON}: a kernel needs a static head size`);
  if (isLowRank(p.spec)) fail(`the low-rank form ${printSpec(p.spec)} has no generated kernel yet`);
  try {
    const kernel = options.target === 'wgsl' ? wgslKernel(id, p, node, options) : cpuKernel(id, p, node, options);
    if (params.guard === undefined) return kernel;
    const why =
      `the site is guarded (${printSpec(params.spec)}, budget ${params.guard.budget}) but generated kernels do not carry the run-time ` +
      `certificate yet: this kernel computes its exact baseline ${printSpec(p.spec)} (error 0)`;
    return { ...kernel, manifest: { ...kernel.manifest, guardedAsBaseline: why } };
  } catch (e) {
    return fail((e as Error).message);
  }
}
