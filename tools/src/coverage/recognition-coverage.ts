// The recognition coverage table of the ONNX corpus (docs/recognition-coverage.md): every model of
// ../shared/fixtures/onnx and of the repository's own whole-model corpus (tools/fixtures/whole-models) is
// imported, recognized with the fused and decomposed rules (one rewritePass, explain on), and counted per
// folder. Regenerate with
//   npx tsx --conditions=@attnopt/source tools/src/coverage/recognition-coverage.ts
// recognition-coverage.test.ts fails when the committed table differs from a fresh one.
//
// An attention site is "found" independently of the rules, as `attnopt inspect` finds its misses (core's
// attentionSoftmaxes): a Softmax over the last axis (the op, spelled as Exp, ReduceSum and Div, or Exp of a LogSoftmax) whose output
// reaches a MatMul or Einsum with another operand (the values) through at most 6 layout-only ops and casts (Cast, Reshape, Transpose, Squeeze,
// Unsqueeze, Expand, Flatten, Identity, Dropout, Where) and QDQ pairs (QuantizeLinear, DequantizeLinear). A fused node is one of ONNX Attention, com.microsoft
// Attention / QAttention / MultiHeadAttention / GroupQueryAttention / DecoderMaskedMultiHeadAttention (any domain: some
// corpus files misplace them), or one of onnxruntime's other contrib attention ops (core's FUSED_ATTENTION_OPS). A folder with an expected.json (the whole-model corpora) also gets a table per
// model: the sites expected.json states, found, lifted, and whether every lifted site has its heads, kv heads
// and head size.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionSoftmaxes, isFusedAttention, LAYOUT_ONLY_OPS, QDQ_OPS } from '@attnopt/core';
import { attentionParams, type Graph, isAttention, type Node } from '@attnopt/ir';
import { importOnnx } from '@attnopt/onnx';
import * as passes from '@attnopt/passes';
import { type RewriteRule, rewritePass } from '@attnopt/rewrite';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../../..');
export const CORPUS = path.resolve(REPO_ROOT, '../shared/fixtures/onnx');
/** The repository's own whole-model corpus (tools/src/gen/whole_models.py wrote it). */
export const LOCAL_CORPUS = path.join(REPO_ROOT, 'tools/fixtures/whole-models');
export const DOC = path.join(REPO_ROOT, 'docs/recognition-coverage.md');
export const COMMAND = 'npx tsx --conditions=@attnopt/source tools/src/coverage/recognition-coverage.ts';


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

/** One model of a folder with an expected.json: what it states against what recognition did. */
export interface ExpectedRow {
  readonly folder: string;
  readonly model: string;
  readonly expectedSites: number;
  readonly found: number;
  readonly lifted: number;
  /** `heads/kvHeads/headDim` as expected.json states them. */
  readonly shape: string;
  /** Lifted sites whose heads, kv heads and head size are not the expected ones (`h/kv/d` each). */
  readonly wrongShapes: readonly string[];
}

export interface Coverage {
  readonly folders: ReadonlyMap<string, FolderCount>;
  readonly misses: readonly Miss[];
  readonly expected: readonly ExpectedRow[];
  readonly fusedRules: boolean;
}

/** A corpus root and how its models are named in the table: row (folder) and model path. */
export interface CorpusRoot {
  readonly dir: string;
  /** The row of a model, from its path relative to `dir`. */
  readonly folder: (rel: string) => string;
  /** The model as the misses table names it, from its path relative to `dir`. */
  readonly name: (rel: string) => string;
}

/** ../shared/fixtures/onnx (a row per top folder) and tools/fixtures/whole-models (one row). */
export const CORPORA: readonly CorpusRoot[] = [
  { dir: CORPUS, folder: (rel) => rel.split(path.sep)[0]!, name: (rel) => rel },
  { dir: LOCAL_CORPUS, folder: () => 'tools/fixtures/whole-models', name: (rel) => `tools/fixtures/whole-models/${rel}` },
];

interface ExpectedEntry {
  file: string;
  sites: number;
  heads: number;
  kv_heads?: number;
  head_dim: number;
}

/** expected.json of a model's folder, if that folder has one (the whole-model corpora). */
function expectedFor(file: string): ExpectedEntry | undefined {
  const json = path.join(path.dirname(file), 'expected.json');
  if (!fs.existsSync(json)) return undefined;
  const entries = Object.values(JSON.parse(fs.readFileSync(json, 'utf8')) as Record<string, ExpectedEntry>);
  return entries.find((e) => e.file === path.basename(file));
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

const isFused = isFusedAttention;

export function measureCoverage(corpora: readonly CorpusRoot[] = CORPORA): Coverage {
  const rules = recognitionRules();
  const folders = new Map<string, FolderCount>();
  const misses: Miss[] = [];
  const expectedRows: ExpectedRow[] = [];
  for (const corpus of corpora) {
    for (const file of allModels(corpus.dir)) {
      const rel = path.relative(corpus.dir, file);
      const folder = corpus.folder(rel);
      const name = corpus.name(rel);
      const c = folders.get(folder) ?? { models: 0, importFailures: 0, fusedTotal: 0, fusedLifted: 0, fusedInvalid: 0, expandedTotal: 0, expandedMatched: 0, sitesFound: 0, sitesLifted: 0, sitesInvalid: 0 };
      folders.set(folder, c);
      c.models++;
      let model;
      try {
        model = importOnnx(file);
      } catch (e) {
        c.importFailures++;
        // Relative to the corpus: the table must not depend on where the checkout lives.
        const message = (e as Error).message.split('\n')[0]!.replaceAll(corpus.dir + path.sep, '');
        misses.push({ model: name, node: '-', reason: `import failed: ${message}` });
        continue;
      }
      const g = model.graph;
      const opset = Number(model.proto.opsetImport?.find((o) => (o.domain ?? '') === '')?.version ?? 13);
      const fused = [...nodesOf(g)].filter(isFused);
      const sites = attentionSoftmaxes(g, opset);
      const describe = new Map([...fused, ...sites].map((n) => [n, n.describe()]));
      const result = rewritePass('recognize', rules, { explain: true }).run(g);
      // a site is lifted when its Softmax no longer feeds a P · V product (a Softmax kept for a scores output
      // the model also returns is not a miss); a fused node when it is gone
      const left = new Set([...nodesOf(g)].filter(isFused));
      for (const n of attentionSoftmaxes(g, opset)) left.add(n);
      const reason = (n: Node) =>
        result.notes.filter((x) => x.node === describe.get(n) && !x.message.startsWith('applied')).map((x) => x.message).join('; ') || 'no rule matched';
      const expanded = folder === 'onnx-node-tests' && /test_attention_.*_expanded/.test(rel);
      c.fusedTotal += fused.length;
      for (const n of fused) {
        if (left.has(n)) {
          misses.push({ model: name, node: describe.get(n)!, reason: reason(n) });
          if (isInvalidModelReason(reason(n))) c.fusedInvalid++;
        } else c.fusedLifted++;
      }
      if (expanded) {
        c.expandedTotal++;
        const lifted = [...nodesOf(g)].filter(isAttention).length;
        if (lifted === 1 && sites.length === 1 && !left.has(sites[0]!)) c.expandedMatched++;
        else misses.push({ model: name, node: sites.map((s) => describe.get(s)).join(', ') || '-', reason: sites.map(reason).join('; ') || `${lifted} Attention nodes` });
        continue;
      }
      c.sitesFound += sites.length;
      for (const n of sites) {
        if (left.has(n)) {
          misses.push({ model: name, node: describe.get(n)!, reason: reason(n) });
          if (isInvalidModelReason(reason(n))) c.sitesInvalid++;
        } else c.sitesLifted++;
      }
      const want = expectedFor(file);
      if (want) {
        const kv = want.kv_heads ?? want.heads;
        const wrongShapes = [...nodesOf(g)]
          .filter(isAttention)
          .map((n) => attentionParams(n))
          .filter((p) => p.numHeads !== want.heads || p.kvNumHeads !== kv || p.headDim !== want.head_dim)
          .map((p) => `${p.numHeads}/${p.kvNumHeads}/${p.headDim === 0 ? '?' : p.headDim}`);
        const lifted = sites.filter((n) => !left.has(n)).length;
        expectedRows.push({ folder, model: path.basename(file), expectedSites: want.sites, found: sites.length, lifted, shape: `${want.heads}/${kv}/${want.head_dim}`, wrongShapes });
      }
    }
  }
  return { folders, misses, expected: expectedRows, fusedRules: rules.length > passes.DECOMPOSED_RULES.length };
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
    `Every model of \`../shared/fixtures/onnx\` and of \`tools/fixtures/whole-models\` (the repository's own whole-model corpus, written by \`tools/src/gen/whole_models.py\`) is imported and recognized with ${cov.fusedRules ? 'FUSED_RULES and ' : ''}DECOMPOSED_RULES in one \`rewritePass\` (explain on)${cov.fusedRules ? '' : ' (FUSED_RULES is not exported from @attnopt/passes yet, so no fused rule ran)'}.`,
    '',
    '- **fused**: fused attention nodes (ONNX `Attention` and `FlexAttention` (ai.onnx.preview, lifted through its body), com.microsoft `Attention` / `QAttention` / `MultiHeadAttention` / `GroupQueryAttention` / `DecoderMaskedMultiHeadAttention`, and onnxruntime\'s other contrib attention ops, `PackedAttention`, `SparseAttention`..., which no rule lifts and each miss names) lifted to `attnopt::Attention` / present.',
    '- **expanded twins**: onnx-node-tests `test_attention_*_expanded` models whose one attention site lifts to exactly one `attnopt::Attention`.',
    '- **unfused sites**: attention sites lifted / found. A site is *found* independently of the rules, as `attnopt inspect` finds its misses: a `Softmax` over the last axis (axis -1, the opset-13+ default, or the last axis of the rank the graph fixes; or one spelled as `Exp`, `ReduceSum` over the last axis and `Div`, or `Exp` of a `LogSoftmax`) whose output reaches a `MatMul` (bmm included), `Einsum` or onnxruntime\'s `FusedMatMul` with another operand (the values) through at most 6 layout-only ops, casts and quantization pairs (' +
      [...LAYOUT_ONLY_OPS, ...QDQ_OPS].map((o) => `\`${o}\``).join(' / ') +
      '; subgraphs included). Target: >= 95% outside torch-exports (which must be 100%).',
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
  if (cov.expected.length > 0) {
    lines.push(
      '',
      '## Whole-model corpora, per model',
      '',
      'Folders with an `expected.json`: the sites it states, the sites found and lifted, and whether every lifted site has the stated heads / kv heads / head size (`?`: known only at run time).',
      '',
      '| folder | model | expected sites | found | lifted | heads/kv/head size | lifted with other shapes |',
      '|---|---|---|---|---|---|---|',
    );
    for (const r of cov.expected) {
      lines.push(`| \`${r.folder}\` | \`${r.model}\` | ${r.expectedSites} | ${r.found} | ${r.lifted} | ${r.shape} | ${r.wrongShapes.length === 0 ? '-' : r.wrongShapes.join(', ')} |`);
    }
    const sum = (f: (r: ExpectedRow) => number) => cov.expected.reduce((a, r) => a + f(r), 0);
    const right = sum((r) => (r.lifted === r.expectedSites && r.found === r.expectedSites && r.wrongShapes.length === 0 ? 1 : 0));
    lines.push(`| **all** | ${cov.expected.length} models | ${sum((r) => r.expectedSites)} | ${sum((r) => r.found)} | ${sum((r) => r.lifted)} | | ${right} / ${cov.expected.length} models complete with the right shapes |`);
  }
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
