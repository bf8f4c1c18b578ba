// For any truncation, byte flip or inserted garbage of a real model, and for pure garbage: decode either
// succeeds or throws OnnxDecodeError (never another error, never a hang); what decodes re-encodes to an equal model.
import { readFileSync, statSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OnnxDecodeError, decodeModel, diffMessages, encodeModel } from '../src/index.js';
import { corpusModels } from './corpus.js';

const seeds = corpusModels()
  .filter((f) => statSync(f).size < 64 * 1024)
  .filter((_, i) => i % 20 === 0)
  .map((f) => readFileSync(f));

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'insert'; at: number; garbage: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), garbage: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

function apply(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Uint8Array.from(bytes);
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % out.length;
    if (m.kind === 'truncate') out = out.slice(0, at);
    else if (m.kind === 'flip' && out.length > 0) out[at] = out[at]! ^ m.xor;
    else if (m.kind === 'insert') out = Uint8Array.from([...out.subarray(0, at), ...m.garbage, ...out.subarray(at)]);
  }
  return out;
}

/** Decode must succeed or throw OnnxDecodeError; a success must survive encode -> decode unchanged. */
function decodesCleanly(bytes: Uint8Array): 'ok' | 'refused' {
  let model;
  try {
    model = decodeModel(bytes, { file: 'fuzz.onnx' });
  } catch (error) {
    if (error instanceof OnnxDecodeError) return 'refused';
    throw error;
  }
  expect(diffMessages(decodeModel(encodeModel(model)), model)).toBeUndefined();
  return 'ok';
}

describe('fuzzed bytes', () => {
  it('has seed models', () => expect(seeds.length).toBeGreaterThanOrEqual(5));

  it('mutated corpus models decode or give OnnxDecodeError', () => {
    const seen = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
        seen[decodesCleanly(apply(seeds[i]!, ms))]++;
      }),
      { seed: 20240527, numRuns: 600 },
    );
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.refused).toBeGreaterThan(0);
  });

  it('pure garbage decodes or gives OnnxDecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        decodesCleanly(bytes);
      }),
      { seed: 7, numRuns: 1000 },
    );
  });
});
