// The analyze-mask pass: every Attention whose bias is a mask the model builds from indices gets that mask
// as its spec, exactly.
//   Attention(Q, K, V, bias=M) , M keeps exactly P(i, j)  ->  Attention(Q, K, V, spec=spec ∩ P)        (error 0)
//   Attention(Q, K, V, bias=M + D), D data-dependent       ->  Attention(Q, K, V, bias=D, spec=spec ∩ P)
// Masked fills: -inf and anything <= -1e4 (finfo.min, -10000, -1e9) count as masked. With a finite fill a
// fully masked row differs (the original is uniform over its keys, attnopt's is 0); every row with at least
// one kept key is equal, which is every row of a causal or sliding-window mask. The residual underflow of
// exp(fill - max) is exactly 0 in float32 for any fill <= -1e4 and scores of moderate size.

import {
  AttentionInput,
  AttentionOutput,
  attentionParams,
  type AttentionSpec,
  type Graph,
  intersect,
  isAttention,
  isLowRank,
  type Node,
  printSpec,
  specAttr,
  specEquals,
  type Value,
} from '@attnopt/ir';
import { type Pass, type PassNote, removeDead } from '@attnopt/rewrite';
import { proveMaskSpec, type SiteDims } from './prove.js';
import { inferShape } from '../shape-inference/shapes.js';
import { simplifySpec } from './simplify.js';
import { namedDimSym, shapeSyms, type Sym, symAdd, symConst } from './symbolic.js';
import { recordMaskProof, recordRemoved, snapshot } from './undo.js';

export const ANALYZE_MASK = 'analyze-mask';

/** The length of `v` on `axis`: from its type, else inferred from its producers (undefined when unknown). */
function lengthOf(v: Value | undefined, axis: number): Sym | undefined {
  if (!v) return undefined;
  const typed = shapeSyms(v);
  if (typed) return typed.length > axis ? typed[axis] : undefined;
  const d = inferShape(v)?.[axis];
  return typeof d === 'number' ? symConst(d) : typeof d === 'string' && d !== '?' ? namedDimSym(d) : undefined;
}

/** The query/key lengths of a site from Q and K (symbolic where the model is); with past K/V, the past length too. */
export function siteDims(node: Node): SiteDims {
  const p = attentionParams(node);
  const seqAxis = p.layout === 'bhsd' ? 2 : 1;
  const nq = lengthOf(node.inputs[AttentionInput.q], seqAxis);
  const kNew = p.layout === 'packed-qkv' ? nq : lengthOf(node.inputs[AttentionInput.k], seqAxis);
  const pastKey = node.inputs[AttentionInput.pastKey];
  const past = pastKey ? lengthOf(pastKey, 2) : undefined;
  if (pastKey && !past) return nq ? { nq } : {};
  const nk = kNew && (past ? symAdd(past, kNew) : kNew);
  return { ...(nq ? { nq } : {}), ...(nk ? { nk } : {}), ...(past ? { past } : {}) };
}

/** spec ∩ proven, without writing `dense` or a term twice. */
export function combineSpecs(old: AttentionSpec, proven: AttentionSpec): AttentionSpec {
  if (old.kind === 'dense' || specEquals(old, proven)) return proven;
  if (proven.kind === 'dense') return old;
  if (isLowRank(old)) return old;
  return simplifySpec(intersect(old, proven as never));
}

export function analyzeMaskPass(): Pass {
  return {
    name: ANALYZE_MASK,
    run(graph: Graph) {
      const notes: PassNote[] = [];
      let changed = false;
      for (const node of [...graph.nodes]) {
        if (!isAttention(node)) continue;
        const bias = node.inputs[AttentionInput.bias];
        if (!bias) continue;
        const where = node.describe();
        const note = (message: string) => notes.push({ pass: ANALYZE_MASK, node: where, message });
        const params = attentionParams(node);
        if (isLowRank(params.spec)) {
          note('spec is a low-rank form: mask not analyzed');
          continue;
        }
        const proof = proveMaskSpec(bias, siteDims(node));
        proof.notes.forEach(note);
        if (!proof.spec || (proof.spec.kind === 'dense' && proof.residual === bias)) continue;
        if (node.outputs[AttentionOutput.scores] && params.scoresMode !== undefined && params.scoresMode !== 'qk' && params.scoresMode !== 'softcapped') {
          note(`kept the bias: the node returns its ${params.scoresMode} scores, which show the bias's fill values`);
          continue;
        }
        if (!proof.exact && proof.residual === undefined) continue;
        const spec = combineSpecs(params.spec, proof.spec);
        recordMaskProof(node);
        node.attrs.set('spec', specAttr(spec));
        node.setInput(AttentionInput.bias, proof.residual);
        let last = node.inputs.length;
        while (last > 3 && node.inputs[last - 1] === undefined) last--;
        node.truncateInputs(last);
        const taken = snapshot(graph, proof.visited);
        removeDead(graph, [...proof.visited]);
        recordRemoved(graph, taken);
        changed = true;
        note(
          proof.exact
            ? `spec := ${printSpec(spec)}, bias dropped: exact rewrite (error 0)`
            : `spec := ${printSpec(spec)}, data-dependent part ${JSON.stringify(proof.residual!.name)} kept as bias: exact rewrite (error 0)`,
        );
      }
      return { changed, notes };
    },
  };
}
