// The guarded kernels of compile (BOUNDS.md (b')): a guarded site (params.guard: budget, summary block, baseline) ->
//   cpu:  the guarded WebAssembly module (attendGuarded, summarize, valueRange), its JavaScript twin, and the keep
//         predicates of the sparse keys (spec ∩ baseline) and of the baseline (what a falling-back row attends)
//   wgsl: the three programs of the guarded pass: guard_summaries, guard_value_range, guarded_attention
// with a manifest whose `guard` records the tier, the budget, the summary block, the baseline and the summaries.
// guardedKernelGap says where a target's guarded kernel does not cover a site (compile then emits the exact baseline).

import {
  GUARD_ITEM,
  GUARD_ITEM_WORDS,
  guardedKernelBindings,
  guardMetadata,
  jsGuardedKernelSource,
  wasmGuardedAttentionKernel,
} from '@attnopt/backend-cpu';
import { guardedAttentionProgram, guardInfo, guardSummariesProgram, guardValueRangeProgram, type WgslProgram } from '@attnopt/backend-wgsl';
import { AttentionInput, type AttentionParams, intersect, isDataDependent, isLowRank, type MaskSpec, type Node, printSpec } from '@attnopt/ir';
import { inferDtype } from '@attnopt/passes';
import { common, type CompiledKernel, DATA_CODES, type CompileOptions, cpuKernelShape, type KernelBinding, type KernelFile, type KernelGuard, keepPredicateModule, programBindings } from './compile-manifest.js';

/** Why the target's guarded kernel does not cover this guarded site, or undefined when it does. */
export function guardedKernelGap(p: AttentionParams): string | undefined {
  const baseline = p.guard!.baseline;
  if (isLowRank(baseline) || isDataDependent(baseline)) return `its baseline ${printSpec(baseline)} is not a fixed key set a falling-back row can attend`;
  return undefined;
}

/** The storage dtype of a WGSL kernel: the option, else f16 for an f16 model, else f32. */
const wgslDtype = (node: Node, options: CompileOptions) => options.dtype ?? (inferDtype(node.inputs[AttentionInput.q]) === 'f16' ? 'f16' : 'f32');

const guardedComputes = (computes: string, budget: number, baseline: MaskSpec): string =>
  `${computes}; guarded: per query row m_hat, an upper bound on the softmax mass the sparse keys drop (from key-segment summaries), ` +
  `times the range of V; every row where it exceeds ${budget} is recomputed over the keys ${printSpec(baseline)} keeps, so each output ` +
  `coordinate is within ${budget} of attention over ${printSpec(baseline)} on every input (plus float32 rounding)`;

/** The CPU guarded kernel: shapes as the plain CPU kernel's (rows packed at their padded widths). */
export function cpuGuardedKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const g = p.guard!;
  const baseline = g.baseline as MaskSpec;
  // the sparse keys are taken inside the baseline, so the dropped keys are exactly baseline \ spec
  const sparse: MaskSpec = baseline.kind === 'dense' ? (p.spec as MaskSpec) : intersect(baseline, p.spec as MaskSpec);
  const shape = cpuKernelShape(p, options);
  const wasm = wasmGuardedAttentionKernel(shape, g.budget);
  const info = guardMetadata({ epsilon: g.budget, block: g.blockSize, modelMask: baseline }, shape.blockK);
  const bias = node.inputs[AttentionInput.bias] !== undefined;
  const files: KernelFile[] = [
    {
      name: `${id}.wasm`,
      contents: wasm.bytes,
      description:
        'WebAssembly SIMD128 module: imports env.memory (shared), exports attendGuarded(item, scratch) (one work item: the sparse blocks, ' +
        'the certificate per row, the rows over the budget recomputed over the baseline blocks), summarize(k, n, out) (one segment record) and valueRange(v, n)',
    },
    {
      name: `${id}.attend.js`,
      contents: jsGuardedKernelSource(shape, p.headDim, p.vHeadDim, g.budget),
      description: 'the same guarded kernel in portable JavaScript: new Function(source)() returns attendGuarded(F, I, item, scratch), F and I the Float32Array and Int32Array views of the memory',
    },
    {
      name: `${id}.keep.js`,
      contents: keepPredicateModule(sparse),
      description: 'ES module exporting keep(i, j, oTL, oBR, oPast, L): the sparse keys (spec ∩ baseline), evaluated on partial key blocks of the sparse list',
    },
    {
      name: `${id}.baseline.keep.js`,
      contents: keepPredicateModule(baseline),
      description: 'ES module exporting keep(i, j, oTL, oBR, oPast, L): the baseline keys, for the fallback block list; its difference with keep.js gives the dropped keys per segment',
    },
  ];
  const described = guardedKernelBindings(shape, 0);
  const text = (name: string) => described.find((b) => b.name === name)!.description;
  const bindings: KernelBinding[] = [
    { name: 'env.memory', kind: 'import', type: 'memory (shared)', description: 'the linear memory holding every record; all addresses are byte offsets, 16-byte aligned' },
    { name: 'item', kind: 'argument', type: 'i32', description: text('item') },
    { name: 'scratch', kind: 'argument', type: 'i32', description: `${text('scratch')}, with no key block; add 12 bytes per key block of the call (one strip's fallback list)` },
    ...['entries', 'segments', 'cert'].map((name): KernelBinding => ({ name, kind: 'import', type: 'memory region', description: text(name) })),
  ];
  const guard: KernelGuard = {
    tier: 'guarded',
    budget: g.budget,
    blockSize: info.block,
    baseline: printSpec(baseline),
    summaries: info.summaries,
    fallback:
      `after attendGuarded, word ${GUARD_ITEM.flagged} of the item (flagged) counts its rows whose bound exceeded the budget and word ` +
      `${GUARD_ITEM.recomputed} (recomputed) the rows it recomputed over the baseline (their strips of 4); cert holds m_hat per row`,
  };
  return {
    files,
    manifest: {
      ...common(id, node, { ...p, spec: sparse }, 'cpu', bias),
      computes: guardedComputes(common(id, node, { ...p, spec: sparse }, 'cpu', bias).computes, g.budget, baseline),
      modelDtype: inferDtype(node.inputs[AttentionInput.q]) ?? '?',
      dtype: 'f32',
      entryPoint: 'attendGuarded',
      cacheKey: wasm.cacheKey,
      files: files.map((f) => f.name),
      bindings,
      tiling: { blockQ: shape.blockQ, blockK: shape.blockK, dPad: shape.dPad, dvPad: shape.dvPad, itemWords: GUARD_ITEM_WORDS, summaryBlock: info.block },
      guard,
    },
  };
}

const GUARD_STORAGE: Readonly<Record<string, string>> = {
  Q: 'queries in the manifest\'s dtype (f32 or f16), in the site\'s layout, row (batch b, head h, position i) at q_base + b · q_sb + h · q_sh + i · q_ss (packed QKV: Q, K and V in this buffer, bound as K and V too)',
  K: 'the present keys, as Q\'s dtype (with past keys: the cached ones then this call\'s, [batch, kvHeads, past + nk, headDim]; else in the site\'s layout), row (b, kv head g, key j) at k_base + b · k_sb + g · k_sh + j · k_ss',
  V: 'the present values, as K, row (b, g, j) at v_base + b · v_sb + g · v_sh + j · v_ss',
  SEG: 'segment starts over [0, nk] (guardSegments in @attnopt/backend-wgsl: blocks of the summary block, split at sink and global tokens)',
  SUM: 'segment summaries per (batch, kv head, segment): per channel min and max, center, then radius (3 headDim + 1 f32), written by guard_summaries',
  R: 'the largest range of one V column per (batch, kv head), written by guard_value_range',
  Y: 'the output, as Q\'s dtype, in the layout of Q (packed QKV: [batch, nq, heads · vHeadDim]), row (b, h, i) at y_base + b · y_sb + h · y_sh + i · y_ss',
  CERT: 'm_hat per (batch, head, query row): an upper bound on the row\'s dropped softmax mass',
  COUNTER: 'COUNTER[0]: the rows recomputed over the baseline (an atomic; zero it before the dispatch)',
  BIAS: 'additive f32 bias read at b · bias_sb + h · bias_sh + i · bias_si + j (a key bias [.., 1, nk]: bias_si = 0); values at or below -1e29 mask',
  KVLEN: 'per batch: keys j >= KVLEN[b] are padding; with u.past_from_kvlen = 1 (no past keys: an external cache) the spec\'s past offset of batch b is KVLEN[b] - nq, else u.past (the cached keys\' count)',
  data_codes: DATA_CODES,
};

/** The WGSL guarded pass: three programs in one compute pass, the attention program's bindings in the manifest. */
export function wgslGuardedKernel(id: string, p: AttentionParams, node: Node, options: CompileOptions): CompiledKernel {
  const g = p.guard!;
  const baseline = g.baseline as MaskSpec;
  const bias = node.inputs[AttentionInput.bias] !== undefined;
  const kvLength = node.inputs[AttentionInput.kvLength] !== undefined;
  const dtype = wgslDtype(node, options);
  const attention = guardedAttentionProgram({
    spec: p.spec as MaskSpec,
    modelMask: baseline,
    headDim: p.headDim,
    vHeadDim: p.vHeadDim,
    scale: p.scale,
    softcap: p.softcap,
    epsilon: g.budget,
    bias,
    kvLength,
    dtype,
  });
  const info = guardInfo({ epsilon: g.budget, block: g.blockSize, modelMask: baseline });
  const programs: readonly { file: string; program: WgslProgram; dispatch: string }[] = [
    { file: `${id}.guard_summaries.wgsl`, program: guardSummariesProgram(dtype), dispatch: 'one thread per (batch, kv head, segment); total = batch · kvHeads · segments' },
    { file: `${id}.guard_value_range.wgsl`, program: guardValueRangeProgram(dtype), dispatch: 'one thread per (batch, kv head); total = batch · kvHeads' },
    { file: `${id}.wgsl`, program: attention, dispatch: 'one thread per (batch, head, query row); total = batch · heads · nq' },
  ];
  const files: KernelFile[] = programs.map(({ file, program, dispatch }) => ({
    name: file,
    contents: program.code,
    description: `WGSL compute shader ${program.name}, entry point main, bind group 0, ${dispatch} (workgroups of ${program.workgroupSize})`,
  }));
  const guard: KernelGuard = {
    tier: 'guarded',
    budget: g.budget,
    blockSize: info.block,
    baseline: printSpec(baseline),
    summaries: bias ? [...info.summaries, 'max-bias'] : info.summaries,
    fallback: 'COUNTER[0] of guarded_attention counts the rows recomputed over the baseline; CERT holds m_hat per (batch, head, query row)',
    steps: programs.map(({ file, program, dispatch }) => ({ file, program: program.name, dispatch, bindings: programBindings(program, GUARD_STORAGE, '') })),
  };
  return {
    files,
    manifest: {
      ...common(id, node, p, 'wgsl', bias),
      computes: guardedComputes(common(id, node, p, 'wgsl', bias).computes, g.budget, baseline),
      modelDtype: inferDtype(node.inputs[AttentionInput.q]) ?? '?',
      dtype,
      entryPoint: 'main',
      cacheKey: attention.cacheKey,
      files: files.map((f) => f.name),
      bindings: programBindings(attention, GUARD_STORAGE, ''),
      workgroupSize: attention.workgroupSize,
      workgroupBytes: attention.workgroupBytes,
      features: attention.features,
      tiling: { summaryBlock: info.block },
      guard,
    },
  };
}
