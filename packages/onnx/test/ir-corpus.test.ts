// Every model of the fixture corpus: decode -> importModel -> exportModel gives the decoded model back field
// for field and byte for byte, and the imported graph passes the IR verifier, except for use-before-def in the
// models whose node lists are not topologically sorted (checked independently of the IR below).
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { verifyGraph, type VerifyIssue } from '@attnopt/ir';
import { describe, expect, it } from 'vitest';
import {
  bytesEqual,
  decodeModel,
  diffMessages,
  encodeModel,
  exportModel,
  ExternalDataResolver,
  importModel,
  isExternal,
  ANNOTATION,
  type GraphProto,
  type NodeProto,
} from '../src/index.js';
import { CORPUS_DIR, corpusModels } from './corpus.js';

/** Whether some name is defined twice in the graph (inputs, initializers, node outputs; not its subgraphs). */
function definesTwice(g: GraphProto): boolean {
  const names = [
    ...(g.input ?? []).map((i) => i.name ?? ''),
    ...(g.initializer ?? []).map((t) => t.name ?? '').filter((n) => !(g.input ?? []).some((i) => i.name === n)),
    ...(g.node ?? []).flatMap((n) => (n.output ?? []).filter((o) => o !== '')),
  ];
  return new Set(names).size !== names.length;
}

/** Whether every node of the graph (not its subgraphs) reads only names defined before it. */
function topologicallySorted(g: GraphProto): boolean {
  const seen = new Set<string>([...(g.input ?? []).map((i) => i.name ?? ''), ...(g.initializer ?? []).map((t) => t.name ?? '')]);
  const all = new Set<string>(seen);
  for (const n of g.node ?? []) for (const o of n.output ?? []) all.add(o);
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) if (i !== '' && all.has(i) && !seen.has(i)) return false;
    for (const o of n.output ?? []) seen.add(o);
  }
  return true;
}

describe('IR import/export over the fixture corpus', () => {
  const files = corpusModels();

  it('round-trips every model field for field and byte for byte; the IR verifies', () => {
    const started = performance.now();
    const unsorted: string[] = [];
    const definedTwice: string[] = [];
    const otherIssues: string[] = [];
    let nodes = 0;
    let lazy = 0;
    for (const file of files) {
      const rel = path.relative(CORPUS_DIR, file);
      const bytes = readFileSync(file);
      const decoded = decodeModel(bytes, { file });
      const model = importModel(decoded, { file, externalData: new ExternalDataResolver(file) });
      nodes += [...model.graph.allNodes()].length;
      lazy += model.graph.initializers.filter((v) => v.initializer?.isLazy).length;

      const exported = exportModel(model);
      expect(diffMessages(exported, decodeModel(bytes)), rel).toBeUndefined();
      expect(bytesEqual(encodeModel(exported), bytes), rel).toBe(true);

      // Issues the file itself has, found without the IR: an unsorted node list, a name defined twice.
      const expected = new Set<string>();
      if (!topologicallySorted(decoded.graph!)) {
        unsorted.push(rel);
        expected.add('use-before-def');
      }
      if (definesTwice(decoded.graph!)) {
        definedTwice.push(rel);
        expected.add('defined-twice');
        // a name defined by constants only resolves to its last definition everywhere, as onnxruntime reads it:
        // a use before that definition
        expected.add('use-before-def');
      }
      const issues: VerifyIssue[] = verifyGraph(model.graph);
      for (const i of issues) if (!expected.has(i.rule)) otherIssues.push(`${rel}: ${i.message}`);
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `IR corpus: ${files.length} models, ${nodes} nodes, ${lazy} lazy external tensors; all field-equal and byte-identical; ` +
        `${unsorted.length} not topologically sorted (use-before-def), ${definedTwice.length} defining a name twice ` +
        `(defined-twice: ${definedTwice.join(', ')}); ${seconds.toFixed(2)} s`,
    );
    expect(otherIssues).toEqual([]);
    expect(files.length).toBeGreaterThan(400);
  });

  it('rebuilds every node and attribute from the IR alone to the same fields (what the IR does not model aside)', () => {
    const started = performance.now();
    let rebuilt = 0;
    for (const file of files) {
      const rel = path.relative(CORPUS_DIR, file);
      const decoded = decodeModel(readFileSync(file), { file });
      const model = importModel(decoded, { file });
      for (const n of model.graph.allNodes()) {
        n.annotations.delete(ANNOTATION.node);
        n.annotations.delete(ANNOTATION.attributes);
      }
      const exported = exportModel(model);
      // Node doc strings and metadata live only on the original protos; a rebuilt node has none.
      const strip = (g: GraphProto): GraphProto => ({
        ...g,
        node: (g.node ?? []).map((n) => {
          rebuilt++;
          const out: NodeProto = { ...n, docString: undefined, metadataProps: undefined, domain: n.domain === 'ai.onnx' ? undefined : n.domain || undefined };
          out.attribute = (n.attribute ?? []).map((a) => ({ ...a, docString: undefined, g: a.g && strip(a.g), graphs: a.graphs?.map(strip) }));
          return out;
        }),
      });
      expect(diffMessages(strip(exported.graph!), strip(decoded.graph!), 'GraphProto'), rel).toBeUndefined();
    }
    console.log(`IR corpus: ${rebuilt / 2} nodes rebuilt from the IR, ${((performance.now() - started) / 1000).toFixed(2)} s`);
  });

  it('leaves external data unread until a tensor is asked for', () => {
    const file = files.find((f) => f.includes('tiny-random-LlamaForCausalLM-fp16'))!;
    const decoded = decodeModel(readFileSync(file), { file });
    let reads = 0;
    const resolver = new ExternalDataResolver(file);
    const read = resolver.read.bind(resolver);
    resolver.read = (t) => {
      reads++;
      return read(t);
    };
    const model = importModel(decoded, { file, externalData: resolver });
    const external = model.graph.initializers.filter((v) => v.initializer!.isLazy);
    expect(external.length).toBe(decoded.graph!.initializer!.filter(isExternal).length);
    expect(reads).toBe(0);
    const v = external[0]!;
    expect(v.initializer!.bytes().byteLength).toBe(v.initializer!.byteLength);
    expect(reads).toBe(1);
  });
});
