// The recognition coverage table of the ONNX corpus (docs/recognition-coverage.md): every model of
// ../shared/fixtures/onnx is imported, recognized with the fused and decomposed rules (one rewritePass,
// explain on), and counted per folder. Regenerate with
//   npx tsx --conditions=@attnopt/source tools/src/coverage/recognition-coverage.ts
// recognition-coverage.test.ts fails when the committed table differs from a fresh one.
//
// An attention site is "found" independently of the rules: a Softmax over the last axis (axis -1, or the
// opset-13+ default) whose output reaches a MatMul or Einsum through at most 4 Cast / Dropout / Identity /
// Where nodes. A fused node is one of ONNX Attention, com.microsoft Attention / MultiHeadAttention /
// GroupQueryAttention / DecoderMaskedMultiHeadAttention (any domain: some corpus files misplace them).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Graph, isAttention, type Node } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import * as passes from '@attnopt/passes';
import { type RewriteRule, rewritePass } from '@attnopt/rewrite';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../../..');
export const CORPUS = path.resolve(REPO_ROOT, '../shared/fixtures/onnx');
export const DOC = path.join(REPO_ROOT, 'docs/recognition-coverage.md');
export const COMMAND = 'npx tsx --conditions=@attnopt/source tools/src/coverage/recognition-coverage.ts';

const FUSED_OPS = new Set(['Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'DecoderMaskedMultiHeadAttention']);

/** FUSED_RULES when @attnopt/passes exports them (else none), then DECOMPOSED_RULES. */
export function recognitionRules(): readonly RewriteRule[] {
  const fused = (passes as Record<string, unknown>)['FUSED_RULES'] as readonly RewriteRule[] | undefined;
  return [...(fused ?? []), ...passes.DECOMPOSED_RULES];
}

export interface Miss {
  readonly model: string;
  readonly node: string;
  readonly reason: string;
}

export interface FolderCount {
  models: number;
  importFailures: number;
  fusedTotal: number;
  fusedLifted: number;
  /** Fused nodes of models that are not valid ONNX (the miss reason says so): outside the percentage. */
  fusedInvalid: number;
  /** onnx-node-tests `_expanded` attention twins: lifted to exactly one Attention node. */
  expandedTotal: number;
  expandedMatched: number;
  sitesFound: number;
  sitesLifted: number;
  /** Found sites of models that are not valid ONNX (the miss reason says so): outside the percentage. */
  sitesInvalid: number;
}

/** A miss reason marking the model invalid ONNX (ops in the wrong domain, float Reshape targets...). */
export const isInvalidModelReason = (reason: string) => reason.includes('not valid ONNX');

export interface Coverage {
  readonly folders: ReadonlyMap<string, FolderCount>;
  readonly misses: readonly Miss[];
  readonly fusedRules: boolean;
}

function allModels(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...allModels(full));
    else if (e.name.endsWith('.onnx')) out.push(full);
  }
  return out.sort();
}

function* nodesOf(g: Graph): Generator<Node> {
  for (const n of g.nodes) {
    yield n;
    for (const s of n.subgraphs()) yield* nodesOf(s);
  }
}

/** Softmax nodes of attention sites (see the header): the definition of "found". */
export function attentionSoftmaxes(g: Graph, opset: number): Node[] {
  const passThrough = ['Cast', 'Dropout', 'Identity', 'Where'];
  const reaches = (n: Node, steps: number): boolean =>
    steps <= 4 && n.outputs[0]!.uses().some((u) => u.node.op === 'MatMul' || u.node.op === 'Einsum' || (passThrough.includes(u.node.op) && reaches(u.node, steps + 1)));
  return [...nodesOf(g)].filter((n) => {
    if (n.op !== 'Softmax' || n.domain !== '') return false;
    const a = n.attrs.get('axis');
    const axis = a?.type === 'int' ? Number(a.value) : opset >= 13 ? -1 : 1;
    // the rank as declared, else as the graph fixes it (exporters before opset 13 write the last axis as 3)
    const rank = (n.inputs[0]?.type?.kind === 'tensor' ? n.inputs[0].type.shape?.length : undefined) ?? passes.inferRank(n.inputs[0]);
    return (axis === -1 || (rank !== undefined && axis === rank - 1)) && reaches(n, 0);
  });
}

const isFused = (n: Node) => FUSED_OPS.has(n.op) && !isAttention(n);

export function measureCoverage(corpus = CORPUS): Coverage {
  const rules = recognitionRules();
  const folders = new Map<string, FolderCount>();
  const misses: Miss[] = [];
  for (const file of allModels(corpus)) {
    const rel = path.relative(corpus, file);
    const folder = rel.split(path.sep)[0]!;
    const c = folders.get(folder) ?? { models: 0, importFailures: 0, fusedTotal: 0, fusedLifted: 0, fusedInvalid: 0, expandedTotal: 0, expandedMatched: 0, sitesFound: 0, sitesLifted: 0, sitesInvalid: 0 };
    folders.set(folder, c);
    c.models++;
    let model;
    try {
      model = importOnnx(file);
    } catch (e) {
      c.importFailures++;
      // Relative to the corpus: the table must not depend on where the checkout lives.
      const message = (e as Error).message.split('\n')[0]!.replaceAll(CORPUS + path.sep, '');
      misses.push({ model: rel, node: '-', reason: `import failed: ${message}` });
      continue;
    }
    const g = model.graph;
    const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version ?? 13);
    const fused = [...nodesOf(g)].filter(isFused);
    const sites = attentionSoftmaxes(g, opset);
    const describe = new Map([...fused, ...sites].map((n) => [n, n.describe()]));
    const result = rewritePass('recognize', rules, { explain: true }).run(g);
    // a site is lifted when its Softmax no longer feeds a MatMul/Einsum (a Softmax kept for a scores output
    // the model also returns is not a miss); a fused node when it is gone
    const left = new Set([...nodesOf(g)].filter(isFused));
    for (const n of attentionSoftmaxes(g, opset)) left.add(n);
    const reason = (n: Node) =>
      result.notes.filter((x) => x.node === describe.get(n) && !x.message.startsWith('applied')).map((x) => x.message).join('; ') || 'no rule matched';
    const expanded = folder === 'onnx-node-tests' && /test_attention_.*_expanded/.test(rel);
    c.fusedTotal += fused.length;
    for (const n of fused) {
      if (left.has(n)) {
        misses.push({ model: rel, node: describe.get(n)!, reason: reason(n) });
        if (isInvalidModelReason(reason(n))) c.fusedInvalid++;
      } else c.fusedLifted++;
    }
    if (expanded) {
      c.expandedTotal++;
      const lifted = [...nodesOf(g)].filter(isAttention).length;
      if (lifted === 1 && sites.length === 1 && !left.has(sites[0]!)) c.expandedMatched++;
      else misses.push({ model: rel, node: sites.map((s) => describe.get(s)).join(', ') || '-', reason: sites.map(reason).join('; ') || `${lifted} Attention nodes` });
      continue;
    }
    c.sitesFound += sites.length;
    for (const n of sites) {
      if (left.has(n)) {
        misses.push({ model: rel, node: describe.get(n)!, reason: reason(n) });
        if (isInvalidModelReason(reason(n))) c.sitesInvalid++;
      } else c.sitesLifted++;
    }
  }
  return { folders, misses, fusedRules: rules.length > passes.DECOMPOSED_RULES.length };
}

const ratio = (a: number, b: number) => (b === 0 ? '-' : `${a} / ${b} (${((100 * a) / b).toFixed(1)}%)`);
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The markdown of docs/recognition-coverage.md. */
export function coverageMarkdown(cov: Coverage): string {
  const lines = [
    '# Recognition coverage of the ONNX corpus',
    '',
    `Generated by \`${COMMAND}\` (do not edit by hand; \`tools/src/coverage/recognition-coverage.test.ts\` fails when this file is stale).`,
    '',
    `Every model of \`../shared/fixtures/onnx\` is imported and recognized with ${cov.fusedRules ? 'FUSED_RULES and ' : ''}DECOMPOSED_RULES in one \`rewritePass\` (explain on)${cov.fusedRules ? '' : ' (FUSED_RULES is not exported from @attnopt/passes yet, so no fused rule ran)'}.`,
    '',
    '- **fused**: fused attention nodes (ONNX `Attention`, com.microsoft `Attention` / `MultiHeadAttention` / `GroupQueryAttention` / `DecoderMaskedMultiHeadAttention`) lifted to `attnopt::Attention` / present.',
    '- **expanded twins**: onnx-node-tests `test_attention_*_expanded` models whose one attention site lifts to exactly one `attnopt::Attention`.',
    '- **unfused sites**: attention sites lifted / found. A site is *found* independently of the rules: a `Softmax` over the last axis (axis -1, the opset-13+ default, or the last axis of the rank the graph fixes) whose output reaches a `MatMul` or `Einsum` through at most 4 `Cast` / `Dropout` / `Identity` / `Where` nodes (subgraphs included). Target: >= 95% outside torch-exports (which must be 100%).',
    '- **fused coverage (valid models)**: fused nodes lifted / (fused nodes - those of models that are not valid ONNX: the miss reason says so).',
    '- **invalid-model sites**: found sites of models that are not valid ONNX (ops in the wrong domain, float `Reshape` targets...: the miss reason says so); they have no exact meaning to lift.',
    '- **unfused coverage (valid models)**: unfused sites lifted / (found - invalid-model sites).',
    '',
    '| folder | models | import failures | fused | fused coverage (valid models) | expanded twins | unfused sites | invalid-model sites | unfused coverage (valid models) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const total: FolderCount = { models: 0, importFailures: 0, fusedTotal: 0, fusedLifted: 0, fusedInvalid: 0, expandedTotal: 0, expandedMatched: 0, sitesFound: 0, sitesLifted: 0, sitesInvalid: 0 };
  for (const [folder, c] of [...cov.folders].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`| \`${folder}\` | ${c.models} | ${c.importFailures} | ${ratio(c.fusedLifted, c.fusedTotal)} | ${ratio(c.fusedLifted, c.fusedTotal - c.fusedInvalid)} | ${ratio(c.expandedMatched, c.expandedTotal)} | ${ratio(c.sitesLifted, c.sitesFound)} | ${c.sitesInvalid} | ${ratio(c.sitesLifted, c.sitesFound - c.sitesInvalid)} |`);
    for (const k of Object.keys(total) as (keyof FolderCount)[]) total[k] += c[k];
  }
  lines.push(`| **all** | ${total.models} | ${total.importFailures} | ${ratio(total.fusedLifted, total.fusedTotal)} | ${ratio(total.fusedLifted, total.fusedTotal - total.fusedInvalid)} | ${ratio(total.expandedMatched, total.expandedTotal)} | ${ratio(total.sitesLifted, total.sitesFound)} | ${total.sitesInvalid} | ${ratio(total.sitesLifted, total.sitesFound - total.sitesInvalid)} |`);
  lines.push('', `## Misses (${cov.misses.length})`, '');
  if (cov.misses.length === 0) lines.push('None.');
  else {
    lines.push('| model | node | reason |', '|---|---|---|');
    for (const m of cov.misses) lines.push(`| \`${cell(m.model)}\` | ${cell(m.node)} | ${cell(m.reason)} |`);
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const md = coverageMarkdown(measureCoverage());
  fs.mkdirSync(path.dirname(DOC), { recursive: true });
  fs.writeFileSync(DOC, md);
  console.log(`wrote ${path.relative(process.cwd(), DOC)}`);
}
