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
import { type MaskProof, proveMaskSpec, type SiteDims } from './prove.js';
import { keyRowsResidual, oneRow } from './key-rows.js';
import { FILL_REPLACES_SCORES, patchUnkeptRows, UNKEPT_ROWS, UNKEPT_ROWS_NOTE } from './unkept-rows.js';
import { inferShape } from '../shape-inference/shapes.js';
import { simplifySpec } from './simplify.js';
import { annotateRelativeBias } from './relative-bias.js';
import { type Formula, namedDimSym, shapeSyms, type Sym, symAdd, symConst } from './symbolic.js';
import { recordKeyRows, recordMaskProof, recordRemoved, snapshot } from './undo.js';

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

/** Every node the value is computed by (the old residual's nodes: removed where nothing else reads them). */
function producersOf(v: Value): Node[] {
  const out = new Set<Node>();
  const stack = [v];
  while (stack.length > 0) {
    const n = stack.pop()!.producer;
    if (!n || out.has(n)) continue;
    out.add(n);
    for (const x of n.inputs) if (x) stack.push(x);
  }
  return [...out];
}

/**
 * The residual as a key bias (key-rows.ts), its nodes inserted before the site, shared by the sites that keep the
 * same residual under the same spec; undefined where it has no such form.
 */
function keyRows(graph: Graph, node: Node, residual: Value, proof: MaskProof, memo: Map<string, Value | undefined>): Value | undefined {
  if (!proof.readings) return undefined;
  // nothing proven: the bias is read on every pair (only what is constant everywhere is replaced)
  const keep: Formula = proof.spec && proof.keep ? proof.keep : { op: 'const', value: true };
  const key = `${residual.name} | ${proof.spec ? printSpec(proof.spec) : 'dense'}`;
  if (memo.has(key)) return memo.get(key);
  const built = keyRowsResidual(graph, { residual, keep, readings: proof.readings });
  if (built) {
    let at = graph.nodes.indexOf(node);
    for (const n of built.nodes) graph.addNode(n, at++);
    recordKeyRows(graph, built.nodes);
  }
  memo.set(key, built?.value);
  return built?.value;
}

export function analyzeMaskPass(): Pass {
  return {
    name: ANALYZE_MASK,
    run(graph: Graph) {
      const notes: PassNote[] = [];
      const rowsMemo = new Map<string, Value | undefined>();
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
        if (!proof.spec || (proof.spec.kind === 'dense' && proof.residual === bias)) {
          // no structure: the bias may still be one query row repeated (a padding mask expanded to the scores)
          const rows = params.scoresMode === undefined ? keyRows(graph, node, bias, proof, rowsMemo) : undefined;
          if (rows) {
            recordMaskProof(node);
            node.setInput(AttentionInput.bias, rows);
            const candidates = producersOf(bias);
            const taken = snapshot(graph, candidates);
            removeDead(graph, candidates);
            recordRemoved(graph, taken);
            changed = true;
            note(`the bias ${JSON.stringify(bias.name)} does not vary along the query axis: kept as the key bias ${JSON.stringify(rows.name)} (one query row): exact rewrite (error 0)`);
          } else {
            const relative = annotateRelativeBias(node, params.numHeads);
            if (relative) note(relative);
          }
          continue;
        }
        if (node.outputs[AttentionOutput.scores] && params.scoresMode !== undefined && params.scoresMode !== 'qk' && params.scoresMode !== 'softcapped') {
          note(`kept the bias: the node returns its ${params.scoresMode} scores, which show the bias's fill values`);
          continue;
        }
        if (!proof.exact && proof.residual === undefined) continue;
        const spec = combineSpecs(params.spec, proof.spec);
        recordMaskProof(node);
        node.attrs.set('spec', specAttr(spec));
        const rows = proof.residual && keyRows(graph, node, proof.residual, proof, rowsMemo);
        node.setInput(AttentionInput.bias, rows ?? proof.residual);
        let last = node.inputs.length;
        while (last > 3 && node.inputs[last - 1] === undefined) last--;
        node.truncateInputs(last);
        // the rows S leaves with no attended key, computed again with the whole bias (unkept-rows.ts), built while
        // the model's bias is still in the graph
        let unkept: string | undefined;
        const keyBias = rows ?? (proof.residual && oneRow(proof.residual) ? proof.residual : undefined);
        if (keyBias && proof.keep && proof.readings && params.spec.kind === 'dense') {
          const patch = patchUnkeptRows(graph, { node, bias, keyBias, keep: proof.keep, spec: proof.spec, readings: proof.readings, dims: siteDims(node), visited: new Set(proof.visited) });
          if (typeof patch === 'string') unkept = `${UNKEPT_ROWS_NOTE} are read as keeping none (0), not with the whole bias: ${patch}`;
          else {
            node.annotations.set(UNKEPT_ROWS, patch);
            recordKeyRows(graph, patch.nodes);
            unkept =
              node.annotations.get(FILL_REPLACES_SCORES) === true
                ? `${UNKEPT_ROWS_NOTE} (a left-padded query): where an input has one, the whole site is computed as the model wrote it (its fill does not absorb the scores)`
                : `${UNKEPT_ROWS_NOTE} (a left-padded query) are computed again densely, with the whole bias`;
          }
        }
        const candidates = rows ? [...new Set([...proof.visited, ...producersOf(proof.residual!)])] : [...proof.visited];
        const taken = snapshot(graph, candidates);
        removeDead(graph, candidates);
        recordRemoved(graph, taken);
        changed = true;
        note(
          proof.exact
            ? `spec := ${printSpec(spec)}, bias dropped: exact rewrite (error 0)`
            : rows
              ? `spec := ${printSpec(spec)}, data-dependent part ${JSON.stringify(proof.residual!.name)} read on the kept keys, where it does not vary along the query axis: kept as the key bias ${JSON.stringify(rows.name)} (one query row): exact rewrite (error 0)`
              : `spec := ${printSpec(spec)}, data-dependent part ${JSON.stringify(proof.residual!.name)} kept as bias: exact rewrite (error 0)`,
        );
        if (unkept) note(unkept);
        if (!rows && proof.residual) {
          const relative = annotateRelativeBias(node, params.numHeads);
          if (relative) note(relative);
        }
      }
      return { changed, notes };
    },
  };
}
