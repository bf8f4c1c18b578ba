// Every model of the fixture corpus: decode -> encode gives the same bytes, and an independent decoder
// (onnx-proto, ONNX 1.10 schema) reads the same nodes, initializers and data sizes.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { bytesEqual, decodeModel, diffMessages, encodeModel, wireForm, type GraphProto, type Message, type ModelProto } from '../src/index.js';
import { CORPUS_DIR, corpusModels } from './corpus.js';

const { onnx } = onnxProto;

interface Summary {
  irVersion: string;
  opsets: string[];
  opTypes: string[];
  initializers: string[];
  rawLengths: number[];
}

function summarizeOurs(model: ModelProto): Summary {
  const g: GraphProto = model.graph ?? {};
  return {
    irVersion: String(model.irVersion ?? 0n),
    opsets: (model.opsetImport ?? []).map((o) => `${o.domain ?? ''}:${o.version ?? 0n}`),
    opTypes: (g.node ?? []).map((n) => `${n.domain ?? ''}::${n.opType ?? ''}`),
    initializers: (g.initializer ?? []).map((t) => t.name ?? ''),
    rawLengths: (g.initializer ?? []).map((t) => t.rawData?.length ?? 0),
  };
}

function summarizeOnnxProto(bytes: Uint8Array): Summary {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph ?? new onnx.GraphProto();
  return {
    irVersion: String(m.irVersion ?? 0),
    opsets: m.opsetImport.map((o) => `${o.domain ?? ''}:${String(o.version ?? 0)}`),
    opTypes: (g.node ?? []).map((n) => `${n.domain ?? ''}::${n.opType ?? ''}`),
    initializers: (g.initializer ?? []).map((t) => t.name ?? ''),
    rawLengths: (g.initializer ?? []).map((t) => t.rawData?.length ?? 0),
  };
}

/** Counts where a message kept something a plain re-encoding would have lost or changed. */
function wireNotes(msg: unknown, notes: { unknown: number; packing: number; verbatim: number }): void {
  if (typeof msg !== 'object' || msg === null || ArrayBuffer.isView(msg)) return;
  if (Array.isArray(msg)) {
    for (const m of msg) wireNotes(m, notes);
    return;
  }
  const m = msg as Message & Record<string, unknown>;
  notes.unknown += m.unknownFields?.length ?? 0;
  notes.packing += Object.keys(m[wireForm]?.packing ?? {}).length;
  notes.verbatim += m[wireForm]?.verbatim?.length ?? 0;
  for (const [k, v] of Object.entries(m)) if (k !== 'unknownFields') wireNotes(v, notes);
}

describe('fixture corpus', () => {
  const files = corpusModels();

  it('has the corpus (about 430 models), including the semantically invalid rotary_mha fused files', () => {
    expect(files.length).toBeGreaterThan(400);
    expect(files.some((f) => /ort-generated\/.*rotary_mha_.*_fused\.onnx$/.test(f))).toBe(true);
  });

  it('decode -> encode gives every model back byte for byte, and onnx-proto agrees on the fields it knows', () => {
    const started = performance.now();
    const notIdentical: string[] = [];
    const notes = { unknown: 0, packing: 0, verbatim: 0 };
    let bytesTotal = 0;
    for (const file of files) {
      const bytes = readFileSync(file);
      bytesTotal += bytes.length;
      const model = decodeModel(bytes, { file });
      const again = encodeModel(model);
      if (!bytesEqual(again, bytes)) {
        // Not expected for files written by the reference serializers; field-by-field equality is the floor.
        notIdentical.push(path.relative(CORPUS_DIR, file));
        expect(diffMessages(model, decodeModel(again)), file).toBeUndefined();
      }
      wireNotes(model, notes);
      expect(summarizeOurs(model), file).toEqual(summarizeOnnxProto(bytes));
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `corpus: ${files.length} models, ${(bytesTotal / 2 ** 20).toFixed(1)} MiB, ` +
        `${files.length - notIdentical.length} byte-identical, ${seconds.toFixed(2)} s; ` +
        `unknown fields kept: ${notes.unknown}, non-default packing: ${notes.packing}, verbatim scalars: ${notes.verbatim}`,
    );
    expect(notIdentical).toEqual([]);
  });
});
