// attnopt::Attention -> standard ONNX ops (default domain, opset 13+), following the IR's semantics:
//   Y = softmax(softcap(scale Q Kᵀ) + bias, masked by spec, kvLength and a boolean bias) V
// with heads split from the layout, past K/V concatenated (the present outputs), K/V heads repeated for GQA
// (consecutive query heads share one), and fully masked rows giving 0 (Where(IsNaN(y), 0, y); on p when the
// node outputs the probabilities).

import {
  type AttentionParams,
  type AttentionSpec,
  attentionParams,
  blockGathered,
  type Linformer,
  type Performer,
  type Nystrom,
  lshBound,
  type DType,
  type Graph,
  isLowRank,
  hasRuntimeHeadDim,
  isDataDependent,
  RUNTIME_HEAD_DIM,
  RUNTIME_HEAD_DIM_REASON,
  type KeySupport,
  type Lsh,
  loweringChoice,
  BANDED_OPSET,
  type MaskSpec,
  type Node,
  type Value,
} from '@attnopt/ir';
import { NodeBuilder, redirect } from '@attnopt/rewrite';
import { inferDtype, inferShape, UNKNOWN } from '../shape-inference/shapes.js';
import { bandedAttention, type BandedInputs } from './banded.js';
import { guardedBandedAttention, guardedBlocker, guardedSiteLabel } from './guarded.js';
import { lowerBandedNative, nativeBandedBlocker } from './banded-native.js';
import { blockGatherAttention, type BlockGatherInputs } from './blocks.js';
import { guardedBlocksAttention, isBlockGathered } from './guarded-blocks.js';
import { withPastBaseline } from './guarded-past.js';
import { guardedLshAttention, guardedLshLeaf, guardedLshNodeBlocker, isGuardedLsh } from './guarded-lsh.js';
import { lowRankAttention, lowRankBlocker } from './low-rank.js';
import { lshChunkedAttention } from './lsh.js';
import { lshKeepMask } from './lsh-hash.js';
import { biasOverKeys, hasKeyBias, keyBias4, keyBiasBlocker } from './key-bias.js';
import { relativeBiasOf, relativeRows } from './relative-bias.js';
import { specMask, unsupportedSpec } from './mask.js';
import { padOutOfReach } from './padding.js';
import { decodeRouteThreshold, lowerWithDecodeRoute } from './decode-route.js';

/**
 * How a site is lowered: `dense` builds the n x n scores and the spec as a keep-mask; `banded` computes only
 * the keys a window-like spec can keep (cost n · (window + block)); `auto` picks banded where it pays
 * (see loweringPlan).
 */
export type LoweringStrategy = 'auto' | 'dense' | 'banded';

export interface LowerOptions {
  /** The default-domain opset the lowered nodes must run under (11..24). */
  readonly opset: number;
  /** Default `auto`. `banded` throws where the banded form does not apply (for tests). Not `auto`: no decode route. */
  readonly strategy?: LoweringStrategy;
  /** Query block size of the banded form (default: bandBlockSize, at least 32). */
  readonly blockSize?: number;
  /** Newton–Schulz steps of Nystrom's pseudo-inverse (default NYSTROM_PINV_STEPS). */
  readonly nystromSteps?: number;
  /**
   * A sparse site that takes cached keys runs its exact dense form when a call brings fewer new queries than this
   * (decode-route.ts); default: the guard's key block (64) for a guarded form, DECODE_ROUTE_BANDED_QUERIES (8) for an
   * unguarded banded one. 0: no route; a `strategy` other than `auto` takes none either.
   */
  readonly decodeQueries?: number;
  /**
   * 'onnxruntime': banded sites take the form onnxruntime runs fastest (banded-native.ts: one ONNX Attention,
   * opset 23, per batch of blocks) where nativeBandedBlocker allows; default off (standard ops only).
   */
  readonly native?: 'onnxruntime';
}

/** Why a top-level block-sparse spec cannot take the block-gathered lowering (its only one), or undefined. */
function blockGatherBlocker(node: Node, options: LowerOptions): string | undefined {
  if (options.opset < BANDED_OPSET) return `block-sparse lowering needs opset ${BANDED_OPSET}, got ${options.opset}`;
  const gathered = blockGathered(attentionParams(node).spec)!;
  return blockGatherInputsBlocker(node, gathered.causal ? `causal ∩ ${gathered.leaf.kind}` : gathered.leaf.kind);
}

/**
 * Why the node's inputs and outputs rule out a block-gathered form `kind` (blocks, topkBlocks), or undefined. A key
 * bias ([.., 1, T], key-bias.ts) is gathered with the keys; an n x n bias is refused.
 */
export function blockGatherInputsBlocker(node: Node, kind = 'a block-gathered form'): string | undefined {
  if (node.inputs[3] !== undefined && !hasKeyBias(node)) return `not lowered yet: ${kind} with a bias input that is no key bias (${keyBiasBlocker(node)!})`;
  if (attentionParams(node).scoresMode !== undefined) return `not lowered yet: ${kind} with a scores output`;
  return undefined;
}

/** Why the node's inputs, attributes and outputs rule out a low-rank form `kind` (Nystrom, Linformer, Performer), or undefined. */
export function lowRankInputsBlocker(node: Node, kind = 'a low-rank form'): string | undefined {
  const p = attentionParams(node);
  const [, , , bias, , , kvLength] = node.inputs;
  if (bias !== undefined || kvLength !== undefined || p.softcap !== 0 || p.scoresMode !== undefined) {
    return `${kind} is defined for plain softmax(scale Q Kᵀ) V only: no bias, kvLength, softcap or scores output`;
  }
  return undefined;
}

export interface LoweringPlan {
  readonly strategy: 'dense' | 'banded' | 'blocks' | 'low-rank' | 'lsh';
  /** Why, in words for notes and --explain. */
  readonly why: string;
  readonly support?: KeySupport;
  readonly blockSize?: number;
}


/** The number of present keys when the model fixes it, else undefined. */
function staticKeyCount(node: Node, p: AttentionParams): number | undefined {
  const n = keyCountDim(node, p);
  return typeof n === 'number' ? n : undefined;
}

/** The present key count as the model declares it: a number, a symbol (no past keys), or undefined. */
function keyCountDim(node: Node, p: AttentionParams): number | string | undefined {
  const [qIn, kIn, , , pastKey] = node.inputs;
  const declaredShape = (v: Value | undefined) => (v?.type?.kind === 'tensor' ? v.type.shape : undefined);
  const seqAxis = p.layout === 'bhsd' ? 2 : 1;
  const now = declaredShape(p.layout === 'packed-qkv' ? qIn : kIn)?.[seqAxis];
  if (!pastKey) return now ?? undefined;
  const past = declaredShape(pastKey)?.[2];
  return typeof now === 'number' && typeof past === 'number' ? now + past : undefined;
}

/**
 * Dense, banded, block-gathered or low-rank for one site: the IR's loweringChoice (the rule the cost model
 * uses too) applied to what the node says (static key count, bias, scores output, kvLength, opset). Throws
 * where a block-sparse spec cannot take its only lowering, or where `banded` is asked for and does not apply.
 */
export function loweringPlan(node: Node, options: LowerOptions = { opset: 21 }): LoweringPlan {
  const p = attentionParams(node);
  if (blockGathered(p.spec) !== undefined) {
    const why = blockGatherBlocker(node, options);
    if (why !== undefined) throw new Error(`${node.describe()}: ${why}`);
  }
  const [, , , bias, pastKey, , kvLength] = node.inputs;
  const nk = staticKeyCount(node, p);
  const choice = loweringChoice(p.spec, {
    ...(nk !== undefined ? { keys: nk } : {}),
    bias: bias !== undefined,
    keyBias: hasKeyBias(node) || relativeBiasOf(node) !== undefined,
    scoresOutput: p.scoresMode !== undefined,
    kvLengthWithoutPast: kvLength !== undefined && pastKey === undefined,
    opset: options.opset,
    ...(options.blockSize !== undefined ? { blockSize: options.blockSize } : {}),
    ...(options.strategy !== undefined ? { strategy: options.strategy } : {}),
  });
  if (choice.strategy === 'dense' && options.strategy === 'banded') throw new Error(`${node.describe()}: banded lowering does not apply: ${choice.why}`);
  // the banded and LSH forms reshape by the head size: a site that reads it at run time lowers dense
  if (hasRuntimeHeadDim(p) && choice.strategy !== 'dense') {
    if (options.strategy === 'banded') throw new Error(`${node.describe()}: banded lowering does not apply: the ${RUNTIME_HEAD_DIM_REASON}`);
    return { strategy: 'dense', why: `dense: the ${RUNTIME_HEAD_DIM_REASON}` };
  }
  return choice.strategy === 'banded'
    ? { strategy: 'banded', why: choice.why, support: choice.support, blockSize: choice.blockSize }
    : { strategy: choice.strategy, why: choice.why };
}

const LOWEST_OPSET = 11; // Range; Split/Squeeze/Unsqueeze are written in opset-independent forms

/** Why `node` cannot be lowered, or undefined when it can. */
export function cannotLower(node: Node, options: LowerOptions = { opset: 21 }): string | undefined {
  if (options.opset < LOWEST_OPSET) return `opset ${options.opset} is below ${LOWEST_OPSET} (no Range)`;
  const p = attentionParams(node);
  if (hasRuntimeHeadDim(p) && (blockGathered(p.spec) !== undefined || isLowRank(p.spec) || isDataDependent(p.spec))) {
    return `the ${RUNTIME_HEAD_DIM_REASON} (headDim ${p.headDim}, vHeadDim ${p.vHeadDim}), and the ${p.spec.kind} lowering needs a static head size`;
  }
  if (p.guard !== undefined) {
    // a guarded site lowered dense is exact; lowered sparse it must carry its run-time certificate
    if (isGuardedLsh(p)) {
      const blocker = guardedLshNodeBlocker(node, options.opset);
      return blocker === undefined ? undefined : `guarded site: ${blocker}`;
    }
    if (isBlockGathered(p.spec)) {
      const blocker = blockGatherBlocker(node, options) ?? guardedBlocker(node, options.opset);
      return blocker === undefined ? undefined : `guarded site: ${blocker}`;
    }
    const why = unsupportedSpec(p.spec);
    if (why !== undefined) return `guarded site: ${why}`;
    const plan = loweringPlan(node, options);
    if (plan.strategy === 'dense') return undefined;
    if (plan.strategy !== 'banded') return `guarded site: no guarded ${plan.strategy} lowering yet`;
    const blocker = guardedBlocker(node, options.opset);
    return blocker === undefined ? undefined : `guarded site: ${blocker}`;
  }
  if (blockGathered(p.spec) !== undefined) return blockGatherBlocker(node, options);
  if (p.spec.kind === 'linformer' || p.spec.kind === 'performer' || p.spec.kind === 'nystrom') {
    return lowRankInputsBlocker(node, p.spec.kind) ?? lowRankBlocker(p.spec, staticKeyCount(node, p), p.scale);
  }
  if (node.inputs[4] !== undefined && chunkedLsh(p.spec)) {
    return 'lsh with chunk > 0 is defined for self-attention (nq == nk): past keys make nk > nq';
  }
  return unsupportedSpec(p.spec);
}

/** Whether a spec holds an LSH leaf with chunk > 0 (defined for nq == nk only). */
function chunkedLsh(spec: AttentionSpec): boolean {
  switch (spec.kind) {
    case 'lsh':
      return spec.chunk > 0;
    case 'union':
    case 'intersect':
      return spec.parts.some(chunkedLsh);
    case 'diff':
      return chunkedLsh(spec.base) || chunkedLsh(spec.minus);
    default:
      return false;
  }
}

/**
 * Whether a site with a lengths input may read its keys sliced to the longest kvLength (padding.ts): its keys are
 * masked at or past their count as padding is (the dense, banded and static block forms) and nothing reads their
 * count otherwise: no guard (its summaries cover T keys), no data-dependent selection (it reads every key, as the IR
 * defines it), no bias (its T columns) and no scores output (its shape).
 */
function sliced(p: AttentionParams, node: Node, plan: LoweringPlan): boolean {
  if (p.guard !== undefined || isLowRank(p.spec) || isDataDependent(p.spec) || node.inputs[3] !== undefined || p.scoresMode !== undefined) return false;
  return plan.strategy === 'dense' || plan.strategy === 'banded' || plan.strategy === 'blocks';
}

/**
 * The query count below which `node` takes its exact dense form at run time (decode-route.ts), or undefined where it
 * is lowered without the route: sites whose calls bring as many queries as keys (fewerQueriesThanKeys), and forms
 * whose dense lowering would not compute the same function (unguarded low-rank and data-dependent forms) or that are
 * dense already.
 */
export function decodeRouteQueries(node: Node, options: LowerOptions = { opset: 21 }): number | undefined {
  // a strategy named by the caller (tests, benchmarks of one form) is that form at every query count
  if (options.decodeQueries === 0 || (options.strategy ?? 'auto') !== 'auto') return undefined;
  const p = attentionParams(node);
  if (!fewerQueriesThanKeys(node, p)) return undefined;
  const queries = decodeRouteThreshold(loweringPlan(node, options).strategy, p.guard?.blockSize, isGuardedLsh(p));
  return queries === undefined ? undefined : (options.decodeQueries ?? queries);
}

/**
 * Whether a call of the site may bring fewer queries than it reads keys: cached keys (a past input), or a query length
 * declared apart from the key length (a static cache buffer read whole, cross-attention). A site whose queries are its
 * keys (the same declared length, packed QKV) decodes through a past input or not at all.
 */
function fewerQueriesThanKeys(node: Node, p: AttentionParams): boolean {
  const [qIn, kIn, , , pastKey] = node.inputs;
  if (pastKey !== undefined) return true;
  if (p.layout === 'packed-qkv') return false;
  const seqAxis = p.layout === 'bhsd' ? 2 : 1;
  const [nq, nk] = [inferShape(qIn)?.[seqAxis], inferShape(kIn)?.[seqAxis]];
  return nq !== undefined && nk !== undefined && nq !== UNKNOWN && nk !== UNKNOWN && nq !== nk;
}

/** Replaces one Attention node by standard ONNX ops; the outputs keep their names. Throws when it cannot. */
export function lowerAttention(graph: Graph, node: Node, options: LowerOptions = { opset: 21 }): Node[] {
  const why = cannotLower(node, options);
  if (why !== undefined) throw new Error(`${node.describe()}: ${why}`);
  const queries = decodeRouteQueries(node, options);
  if (queries !== undefined) {
    const { native: _native, ...plain } = options;
    const lower = (g: Graph, n: Node, dense: boolean) => lowerAttention(g, n, dense ? { ...plain, decodeQueries: 0, strategy: 'dense' } : { ...options, decodeQueries: 0 });
    return lowerWithDecodeRoute(graph, node, { queries, lower });
  }
  if (options.native === 'onnxruntime') {
    const plan = loweringPlan(node, options);
    if (nativeBandedBlocker(node, options, plan) === undefined) return lowerBandedNative(graph, node, options, plan);
  }
  const p: AttentionParams = attentionParams(node);
  const base = node.name || `${node.outputs[0]!.name}_attention`;
  const b = new NodeBuilder(graph, base);
  const [qIn, kIn, vIn, bias, pastKey, pastValue, kvLength] = node.inputs;
  const dtype: DType = inferDtype(qIn) ?? inferDtype(pastKey) ?? 'f32';
  const { numHeads: H, kvNumHeads: Hkv, headDim: D, vHeadDim: Dv } = p;
  const toBhsd = (x: Value, heads: number, dim: number, what: string): Value => {
    switch (p.layout) {
      case 'bhsd':
        return x;
      case 'bshd':
        return b.transpose(x, [0, 2, 1, 3], `${what}_bhsd`);
      default:
        return b.transpose(b.reshape(x, [0, 0, heads, dim], `${what}_bshd`), [0, 2, 1, 3], `${what}_bhsd`);
    }
  };
  let q: Value;
  let k: Value;
  let v: Value;
  if (p.layout === 'packed-qkv') {
    const heads = b.reshape(qIn!, [0, 0, H + 2 * Hkv, D], 'qkv_bshd');
    const [pq, pk, pv] = b.split(heads, 2, [H, Hkv, Hkv], 'qkv');
    q = b.transpose(pq!, [0, 2, 1, 3], 'q_bhsd');
    k = b.transpose(pk!, [0, 2, 1, 3], 'k_bhsd');
    v = b.transpose(pv!, [0, 2, 1, 3], 'v_bhsd');
  } else {
    q = toBhsd(qIn!, H, D, 'q');
    k = toBhsd(kIn!, Hkv, D, 'k');
    v = toBhsd(vIn!, Hkv, Dv, 'v');
  }
  const axis2 = { axis: { type: 'int', value: 2n } } as const;
  const presentK = pastKey ? b.op('Concat', [pastKey, k], 'present_key', axis2) : k;
  const presentV = pastValue ? b.op('Concat', [pastValue, v], 'present_value', axis2) : v;
  const repeat = (x: Value, dim: number, what: string): Value => {
    const g = H / Hkv;
    if (g === 1) return x;
    const grouped = b.op('Expand', [b.unsqueeze(x, [2], `${what}_u`, 4), b.ints(`${what}_group`, [1, 1, g, 1, 1])], `${what}_expand`);
    if (dim !== RUNTIME_HEAD_DIM) return b.reshape(grouped, [0, H, -1, dim], `${what}_heads`);
    // head size read at run time: [B, Hkv, g, S, D] -> [B, H] ++ Shape(x)[2:4]
    const seqHead = b.op('Slice', [b.op('Shape', [x], `${what}_shape`), b.ints(`${what}_seq_start`, [2]), b.ints(`${what}_seq_end`, [4])], `${what}_seq_head`);
    const target = b.op('Concat', [b.ints(`${what}_batch_heads`, [0, H]), seqHead], `${what}_heads_shape`, { axis: { type: 'int', value: 0n } });
    return b.op('Reshape', [grouped, target], `${what}_heads`);
  };
  // keys and values at or past kvLength[b] (padding, which may hold anything) out of reach before any part reads
  // them (padding.ts); the present outputs keep what the inputs held. Sliced to the longest kvLength where every
  // part masks keys at or past its key count as padding (`sliced`); the alignments read the full key count
  const plan = loweringPlan(node, options);
  const outOfReach = kvLength ? padOutOfReach(b, presentK, kvLength, 2, options.opset, sliced(p, node, plan)) : undefined;
  const unpadded = (x: Value, what: string): Value => (outOfReach ? outOfReach(x, what) : x);
  const kAll = repeat(unpadded(presentK, 'k_unpadded'), D, 'k_rep');
  const vAll = repeat(unpadded(presentV, 'v_unpadded'), Dv, 'v_rep');
  // the keys a data-dependent selection (top-k block scores, LSH buckets and sorted order) reads: the raw keys,
  // padding included, as the IR defines it. A guarded site's selection reads the others: its certificate holds
  // whatever it keeps. Built on first use
  let rawKeys: Value | undefined;
  const selection = (): { selectionK?: Value } => {
    if (!outOfReach || p.guard) return {};
    rawKeys ??= repeat(presentK, D, 'k_selection_rep');
    return { selectionK: rawKeys };
  };
  const softmaxType: DType = p.softmaxPrecision ?? dtype;
  // the key count T of the site (kAll may hold fewer keys: padding sliced off)
  let nkValue: Value | undefined;
  const keyCount = () => (nkValue ??= b.op('Gather', [b.op('Shape', [presentK], 'k_shape'), b.scalar('nk_index', 'i64', 2)], 'nk', { axis: { type: 'int', value: 0n } }));
  if (plan.strategy !== 'dense' || isGuardedLsh(p)) {
    const len = (x: Value, what: string) =>
      b.op('Gather', [b.op('Shape', [x], `${what}_shape`), b.scalar(`${what}_index`, 'i64', 2)], what, { axis: { type: 'int', value: 0n } });
    const nkAll = keyCount();
    const bottomRight = b.op('Sub', [nkAll, len(q, 'nq')], 'bottom_right');
    const score = (qk: Value, what: string): Value => {
      const scaled = b.op('Mul', [qk, b.scalar(`${what}_scale`, dtype, p.scale)], `${what}_scaled`);
      if (p.softcap <= 0) return scaled;
      const c = b.scalar(`${what}_softcap`, dtype, p.softcap);
      return b.op('Mul', [b.op('Tanh', [b.op('Div', [scaled, c], `${what}_softcap_div`)], `${what}_softcap_tanh`), c], `${what}_softcapped`);
    };
    const softmax = (logits: Value, keep: Value | undefined, what: string): Value => {
      const x = softmaxType !== dtype ? b.cast(logits, softmaxType, `${what}_logits_cast`) : logits;
      const masked = keep ? b.op('Where', [keep, x, b.scalar(`${what}_minus_inf`, softmaxType, -Infinity)], `${what}_masked`) : x;
      const sm = b.op('Softmax', [masked], `${what}_softmax`, { axis: { type: 'int', value: -1n } });
      const probs = b.op('Where', [b.op('IsNaN', [sm], `${what}_isnan`), b.scalar(`${what}_zero_prob`, softmaxType, 0), sm], `${what}_probs`);
      return softmaxType !== dtype ? b.cast(probs, dtype, `${what}_probs_cast`) : probs;
    };
    if (isGuardedLsh(p)) {
      const site = guardedSiteLabel(node);
      const y = guardedLshAttention(b, { leaf: guardedLshLeaf(p.spec, p.guard!.baseline)!, params: p, opset: options.opset, q, k: kAll, v: vAll, headDim: D, vHeadDim: Dv, dtype, softmaxType, score, softmax, ...(kvLength ? { kvLength } : {}), ...(site !== undefined ? { site } : {}) });
      return finish(graph, node, b, p, q, y, presentK, presentV, undefined);
    }
    if (plan.strategy === 'low-rank') {
      const y = lowRankAttention(b, {
        spec: p.spec as Linformer | Performer | Nystrom,
        q,
        k: kAll,
        v: vAll,
        headDim: D,
        dtype,
        scale: p.scale,
        opset: options.opset,
        ...(staticKeyCount(node, p) !== undefined ? { keys: staticKeyCount(node, p)! } : {}),
        ...(options.nystromSteps !== undefined ? { nystromSteps: options.nystromSteps } : {}),
      });
      return finish(graph, node, b, p, q, y, presentK, presentV, undefined);
    }
    if (plan.strategy === 'lsh') {
      const bound = lshBound(p.spec as MaskSpec)!;
      const past = pastKey ? len(pastKey, 'past_length') : kvLength ? b.op('Sub', [kvLength, len(q, 'lsh_nq')], 'past_from_kv_length') : undefined;
      const yLsh = lshChunkedAttention(b, {
        ...bound,
        q,
        k: kAll,
        v: vAll,
        headDim: D,
        vHeadDim: Dv,
        dtype,
        softmaxType,
        opset: options.opset,
        score,
        bottomRight,
        ...(past ? { past } : {}),
        ...(kvLength ? { kvLength } : {}),
        ...selection(),
      });
      return finish(graph, node, b, p, q, yLsh, presentK, presentV, undefined);
    }
    if (plan.strategy === 'blocks') {
      const site = guardedSiteLabel(node);
      const gather = p.guard
        ? (x: BlockGatherInputs) =>
            guardedBlocksAttention(b, withPastBaseline({ ...x, params: p, opset: options.opset, softmaxType, ...(site !== undefined ? { site } : {}), ...(pastKey ? { past: len(pastKey, 'guard_blk_past_length') } : {}) }))
        : (x: BlockGatherInputs) => blockGatherAttention(b, x);
      const gathered = blockGathered(p.spec)!;
      // the causal cut's offset: query i sees keys j <= i + offset
      const align = gathered.causal?.align;
      const past = align !== 'past' ? undefined : pastKey ? len(pastKey, 'past_length') : kvLength ? b.op('Sub', [kvLength, len(q, 'blk_nq_now')], 'blk_past_from_kv_length') : undefined;
      const causalOffset = align === undefined ? undefined : align === 'bottom-right' ? bottomRight : (past ?? b.scalar('blk_top_left', 'i64', 0));
      const yBlocks = gather({
        spec: gathered.leaf,
        q,
        k: kAll,
        v: vAll,
        headDim: D,
        vHeadDim: Dv,
        dtype,
        scale: p.scale,
        opset: options.opset,
        score,
        softmax,
        ...(kvLength ? { kvLength } : {}),
        ...(gathered.leaf.kind === 'topkBlocks' ? selection() : {}),
        ...(causalOffset ? { causalOffset } : {}),
        ...(bias !== undefined ? { keyBias: keyBias4(b, node, dtype, keyCount, keyCountDim(node, p)) } : {}),
      });
      return finish(graph, node, b, p, q, yBlocks, presentK, presentV, undefined);
    }
    // the bias a banded form reads: a key bias gathered per key, a relative-position bias on its offsets (with the
    // key bias added beside it, if any)
    const bandBiases = (): Pick<BandedInputs, 'keyBias' | 'relative'> => {
      if (bias === undefined) return {};
      const rb = relativeBiasOf(node);
      if (!rb) return { keyBias: keyBias4(b, node, dtype, keyCount, keyCountDim(node, p)) };
      const relative = relativeRows(b, node, rb, len(q, 'rel_nq'), nkAll, dtype, options.opset);
      return { relative, ...(rb.keyBias ? { keyBias: keyBias4(b, node, dtype, keyCount, keyCountDim(node, p), rb.keyBias) } : {}) };
    };
    const yBanded = (p.guard ? (x: Parameters<typeof bandedAttention>[1]) => guardedBandedAttention(b, { ...x, params: p, opset: options.opset, ...(guardedSiteLabel(node) !== undefined ? { site: guardedSiteLabel(node)! } : {}) }) : (x: Parameters<typeof bandedAttention>[1]) => bandedAttention(b, x))({
      spec: p.spec as MaskSpec,
      support: plan.support!,
      blockSize: plan.blockSize!,
      q,
      k: kAll,
      v: vAll,
      headDim: D,
      vHeadDim: Dv,
      dtype,
      softmaxType,
      score,
      softmax,
      bottomRight,
      ...(pastKey ? { past: len(pastKey, 'past_length') } : {}),
      ...(kvLength ? { kvLength } : {}),
      ...bandBiases(),
    });
    return finish(graph, node, b, p, q, yBanded, presentK, presentV, undefined);
  }
  const qk = b.op('MatMul', [q, b.transpose(kAll, [0, 1, 3, 2], 'k_t')], 'qk');
  const scaled = b.op('Mul', [qk, b.scalar('scale', dtype, p.scale)], 'qk_scaled');
  const capped =
    p.softcap > 0
      ? b.op('Mul', [b.op('Tanh', [b.op('Div', [scaled, b.scalar('softcap', dtype, p.softcap)], 'softcap_div')], 'softcap_tanh'), b.scalar('softcap_mul', dtype, p.softcap)], 'softcapped')
      : scaled;
  const isBoolBias = bias !== undefined && inferDtype(bias) === 'bool';
  // A float bias of another type than the scores (a model that casts QKᵀ up to float32 to add its mask and
  // take the softmax): added in the softmax's type when it is that one, else cast to the scores' type.
  const biasType = bias !== undefined && !isBoolBias ? inferDtype(bias) : undefined;
  const logitsType: DType = biasType !== undefined && biasType !== dtype && biasType === softmaxType ? softmaxType : dtype;
  let logits = capped;
  // the bias with its key axis padded to the key count where it may be shorter (masked keys, not broadcast)
  const biasAll = bias !== undefined ? biasOverKeys(b, node, keyCount, keyCountDim(node, p)) : undefined;
  if (bias !== undefined && !isBoolBias) {
    const scores = logitsType !== dtype ? b.cast(capped, logitsType, 'scores_cast') : capped;
    const added = biasType !== undefined && biasType !== logitsType ? b.cast(biasAll!, logitsType, 'bias_cast') : biasAll!;
    logits = b.op('Add', [scores, added], 'biased');
  }
  // keep-mask: spec, kvLength and a boolean bias
  const shape = b.op('Shape', [capped], 'scores_shape');
  const at = (k: number, what: string) => b.op('Gather', [shape, b.scalar(`${what}_index`, 'i64', k)], what, { axis: { type: 'int', value: 0n } });
  const nq = at(2, 'nq');
  const nk = at(3, 'nk');
  const zero = b.scalar('zero', 'i64', 0);
  const one = b.scalar('one', 'i64', 1);
  const rows = b.unsqueeze(b.op('Range', [zero, nq, one], 'query_index'), [1], 'query_index_col', 1);
  const cols = b.op('Range', [zero, nk, one], 'key_index');
  const kvLen4 = kvLength ? b.reshape(kvLength, [-1, 1, 1, 1], 'kv_length_4d') : undefined;
  let past: Value | undefined;
  if (pastKey) {
    past = b.op('Gather', [b.op('Shape', [pastKey], 'past_shape'), b.scalar('past_index', 'i64', 2)], 'past_length', { axis: { type: 'int', value: 0n } });
  } else if (kvLen4) {
    past = b.op('Sub', [kvLen4, nq], 'past_from_kv_length');
  }
  const bottomRight = b.op('Sub', [outOfReach ? keyCount() : nk, nq], 'bottom_right');
  const parts: Value[] = [];
  if (p.spec.kind !== 'dense' && !isLowRank(p.spec)) {
    const lsh = (leaf: Lsh) => lshKeepMask(b, leaf, { q, k: kAll, headDim: D, dtype, ...selection() });
    const m = specMask(b, p.spec, { cols, rows, bottomRight, ...(past ? { past } : {}), lsh });
    if (m) parts.push(m);
  }
  if (kvLen4) parts.push(b.op('Less', [cols, kvLen4], 'kv_length_mask'));
  if (isBoolBias) parts.push(biasAll!);
  const keep = parts.length === 0 ? undefined : parts.reduce((acc, m) => b.op('And', [acc, m], 'keep'));
  if (softmaxType !== logitsType) logits = b.cast(logits, softmaxType, 'logits_cast');
  const masked = keep ? b.op('Where', [keep, logits, b.scalar('minus_inf', softmaxType, -Infinity)], 'masked') : logits;
  let probs = b.op('Softmax', [masked], 'softmax', { axis: { type: 'int', value: -1n } });
  // a fully masked row is all -inf: its softmax is NaN, the IR's is 0. Zeroed on the probabilities when the node
  // outputs them, else on Y (its NaN rows are those rows): S x Dv elements instead of S x T
  const maskedRows = keep !== undefined || bias !== undefined;
  const scoresOut = node.outputs[3] !== undefined;
  if (maskedRows && scoresOut) {
    probs = b.op('Where', [b.op('IsNaN', [probs], 'softmax_isnan'), b.scalar('zero_prob', softmaxType, 0), probs], 'probs');
  }
  const probsIn = softmaxType !== dtype ? b.cast(probs, dtype, 'probs_cast') : probs;
  let yBhsd = b.op('MatMul', [probsIn, vAll], 'y_bhsd');
  if (maskedRows && !scoresOut) {
    yBhsd = b.op('Where', [b.op('IsNaN', [yBhsd], 'y_isnan'), b.scalar('zero_y', dtype, 0), yBhsd], 'y_bhsd_masked_rows');
  }
  // the scores before any mask hold every key as the inputs do, padding included: where the keys at or past
  // kvLength were put out of reach, computed again from the keys as given
  const rawScores = (): { scaled: Value; capped: Value } => {
    if (!outOfReach) return { scaled, capped };
    const kT = b.transpose(repeat(presentK, D, 'k_scores_rep'), [0, 1, 3, 2], 'k_scores_t');
    const rawScaled = b.op('Mul', [b.op('MatMul', [q, kT], 'qk_padded'), b.scalar('scale_padded', dtype, p.scale)], 'qk_scaled_padded');
    const cap = (x: Value) => b.op('Mul', [b.op('Tanh', [b.op('Div', [x, b.scalar('softcap_padded', dtype, p.softcap)], 'softcap_div_padded')], 'softcap_tanh_padded'), b.scalar('softcap_mul_padded', dtype, p.softcap)], 'softcapped_padded');
    const rawCapped = p.softcap > 0 ? cap(rawScaled) : rawScaled;
    return { scaled: rawScaled, capped: rawCapped };
  };
  const scoresOf = (): Value => {
    switch (p.scoresMode) {
      case 'qk':
        return rawScores().scaled;
      case 'softcapped':
        return rawScores().capped;
      case 'masked':
        return softmaxType !== dtype ? b.cast(masked, dtype, 'masked_cast') : masked;
      default:
        return probsIn;
    }
  };
  return finish(graph, node, b, p, q, yBhsd, presentK, presentV, node.outputs[3] !== undefined ? scoresOf() : undefined);
}

/** Y from bhsd to the layout, the outputs redirected to the lowered values, the nodes placed. */
function finish(graph: Graph, node: Node, b: NodeBuilder, p: AttentionParams, q: Value, yBhsd: Value, presentK: Value, presentV: Value, scores: Value | undefined): Node[] {
  const { numHeads: H, vHeadDim: Dv } = p;
  let y: Value;
  switch (p.layout) {
    case 'bhsd':
      y = yBhsd;
      break;
    case 'bshd':
      y = b.transpose(yBhsd, [0, 2, 1, 3], 'y');
      break;
    default:
      y = b.reshape(b.transpose(yBhsd, [0, 2, 1, 3], 'y_bshd'), [0, 0, H * Dv], 'y');
  }
  const replacements: Value[] = [y, presentK, presentV];
  if (scores !== undefined) replacements.push(scores);
  // a lowered output that is an input as is (bhsd Y, present K without past) gets an Identity: names stay
  const finals = replacements.slice(0, node.outputs.length).map((x, k) =>
    x.producer === undefined || !b.nodes.includes(x.producer) || x === q ? b.op('Identity', [x], `output_${k}`) : x,
  );
  const at0 = graph.nodes.indexOf(node);
  b.nodes.forEach((n, k) => graph.addNode(n, at0 + k));
  node.outputs.forEach((old, k) => redirect(graph, old, finals[k]!));
  graph.removeNode(node);
  return b.nodes;
}
