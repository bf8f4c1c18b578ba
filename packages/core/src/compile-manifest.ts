// The manifest of a generated kernel (what it computes, its shapes and bindings) and the parts every target's
// kernel shares: the computation in words, the shapes in IR text form, the keep predicate module.

import { type KernelShape, maskPredicateSource } from '@attnopt/backend-cpu';
import type { KernelLimits, StorageDType, WgslProgram } from '@attnopt/backend-wgsl';
import { AttentionInput, type AttentionParams, type DataDependentSpec, type MaskSpec, type Node, printShape, printSpec } from '@attnopt/ir';
import { inferShape } from '@attnopt/passes';

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
   * Present when the kernel is guarded: it runs `spec` sparse, certifies per query row the mass it drops and
   * recomputes over `guard.baseline` every row whose bound exceeds the budget (BOUNDS.md (b')).
   */
  readonly guard?: KernelGuard;
  /**
   * Present when the site is guarded but its guarded kernel does not apply (the reason): the kernel computes
   * the site's exact baseline spec instead (error 0), never the sparse form without its certificate.
   */
  readonly guardedAsBaseline?: string;
}

export interface CompiledKernel {
  readonly files: readonly KernelFile[];
  readonly manifest: KernelManifestEntry;
}

/** What a guarded kernel promises and what its certificate reads. */
export interface KernelGuard {
  readonly tier: 'guarded';
  /** Max abs error of every output coordinate against attention over the baseline (plus float32 rounding). */
  readonly budget: number;
  /** Keys per summary segment (segments also split at sink and global tokens). */
  readonly blockSize: number;
  /** The keys a falling-back row attends (the model's own mask), in IR text form. */
  readonly baseline: string;
  /** The per-segment key summaries and per-head value range the certificate reads. */
  readonly summaries: readonly string[];
  /** How a host reads the fallback count of a call (rows recomputed over the baseline). */
  readonly fallback: string;
  /** WGSL: the programs a host dispatches in this order, in one compute pass. */
  readonly steps?: readonly { readonly file: string; readonly program: string; readonly dispatch: string; readonly bindings: readonly KernelBinding[] }[];
}

export function describeComputation(p: AttentionParams, bias: boolean): string {
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

export function shapesOf(node: Node): KernelManifestEntry['shapes'] {
  const text = (k: number) => (node.inputs[k] ? printShape(inferShape(node.inputs[k])) : null);
  return {
    q: text(AttentionInput.q)!,
    k: text(AttentionInput.k),
    v: text(AttentionInput.v),
    bias: text(AttentionInput.bias),
    y: printShape(inferShape(node.outputs[0])),
  };
}

/** A table of maskPredicateSource (a Set of indices or an array of them) as a JavaScript expression. */
function tableSource(t: unknown): string {
  if (t instanceof Set) return `new Set(${JSON.stringify([...t])})`;
  if (Array.isArray(t)) return `[${t.map(tableSource).join(', ')}]`;
  return JSON.stringify(t);
}

export function keepPredicateModule(spec: MaskSpec): string {
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

export function common(id: string, node: Node, p: AttentionParams, target: CompileTarget, bias: boolean) {
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

/** The bindings of a WGSL program as its host binds them: the uniform block, then the storage arrays. */
/** What the `data_codes` binding of a WGSL program holds (a spec with data-dependent leaves). */
export const DATA_CODES =
  'the codes of the data-dependent leaves, leaf n at the offsets u.leaf<n>_q (query side) and u.leaf<n>_k (key side): ' +
  'top-k key blocks: 0/1 per (batch · heads + head, query block, key block), the blocks topkBlockIndices of @attnopt/ir keeps; ' +
  'LSH: the bucket (or chunk) code per (batch · heads + head, round, query row) and per (batch · kvHeads + kv head, round, key); ' +
  'filled before the dispatch by prepareDataLeaves in @attnopt/backend-wgsl (LSH hashed on the device, top-k on the host)';

export function programBindings(program: WgslProgram, storageText: Readonly<Record<string, string>>, otherwise: string): KernelBinding[] {
  return [
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
        description: storageText[s.name] ?? otherwise,
      }),
    ),
  ];
}

/** The CPU kernels' shape for a site: specialized to its scale and softcap; rows of Q, K, V and Y packed at padded widths. */
export function cpuKernelShape(p: AttentionParams, options: CompileOptions): KernelShape {
  return {
    blockQ: options.blockQ ?? 64,
    blockK: options.blockK ?? 64,
    dPad: Math.ceil(p.headDim / 4) * 4,
    dvPad: Math.ceil(p.vHeadDim / 8) * 8,
    softcap: p.softcap,
    scale: p.scale,
  };
}
