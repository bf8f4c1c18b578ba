// A fused attention op drawn at random (seeded), run in onnxruntime as written and, lifted by the fused rules and
// lowered to standard ops, on the same inputs. Each draw is lifted and matches (fp32 |lowered - original| <= 1e-5
// + 1e-6 |original|, f16 4e-3 + 4e-3 |original|), or is refused for one of the suite's stated reasons, or is a
// combination onnxruntime itself refuses (one of the suite's stated refusals: no model, skipped). Most of what
// onnxruntime runs must be lifted.

import { type Graph, isAttention, parseGraph, SplitMix64 } from '@attnopt/ir';
import { exportOnnx, newOnnxModel } from '@attnopt/onnx';
import { rewritePass } from '@attnopt/rewrite';
import type * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { lowerAttentionPass } from '../../src/lower/index.js';
import { FUSED_RULES } from '../../src/recognize/fused/index.js';
import { compareOutputs, randomInputs, runModel } from './ort.js';

export interface Drawn {
  readonly text: string;
  readonly opset: number;
  /** Outputs not compared (the suite says why). */
  readonly skip?: readonly string[];
  /** Inputs and outputs in f16. */
  readonly f16?: boolean;
  /** Sets inputs after the seeded draw (masks, lengths, scales). */
  readonly fill?: (feeds: Record<string, ort.Tensor>, rng: SplitMix64) => void;
  /** Changes the parsed graph where the text form cannot say it (outputs the node omits). */
  readonly prepare?: (graph: Graph) => void;
}

export interface Expected {
  /** What onnxruntime says when it refuses a drawn combination. */
  readonly notRun: RegExp;
  /** Why the fused rules may refuse a draw. */
  readonly refusals: readonly RegExp[];
}

/** `count` draws from seed `first` on, each a test, and one test that most draws onnxruntime runs are lifted. */
export function combinationSuite(name: string, draw: (seed: number) => Drawn, first: number, count: number, expected: Expected): void {
  describe(name, () => {
    const outcome = { lifted: 0, refused: 0, notRun: 0 };
    test.each(Array.from({ length: count }, (_, k) => first + k))('seed %i', async (seed) => {
      const d = draw(seed);
      const parse = () => {
        const g = parseGraph(d.text);
        d.prepare?.(g);
        return g;
      };
      const feeds = randomInputs(parse(), seed);
      d.fill?.(feeds, new SplitMix64(seed + 1));
      let want: Record<string, ort.Tensor>;
      try {
        want = await runModel(exportOnnx(newOnnxModel(parse(), { opset: d.opset })), feeds);
      } catch (e) {
        expect(String(e)).toMatch(expected.notRun);
        outcome.notRun++;
        return;
      }
      const g = parse();
      const notes = rewritePass('recognize-fused', FUSED_RULES).run(g).notes.map((n) => n.message);
      if (!g.nodes.some(isAttention)) {
        expect(notes.some((n) => expected.refusals.some((r) => r.test(n))), `${d.text}\n${notes.join('\n')}`).toBe(true);
        outcome.refused++;
        return;
      }
      lowerAttentionPass({ opset: d.opset }).run(g);
      const got = await runModel(exportOnnx(newOnnxModel(g, { opset: d.opset })), feeds);
      const kept = (o: Record<string, ort.Tensor>) => Object.fromEntries(Object.entries(o).filter(([k]) => !(d.skip ?? []).includes(k)));
      const cmp = d.f16 ? compareOutputs(kept(got), kept(want), 4e-3, 4e-3) : compareOutputs(kept(got), kept(want), 1e-5, 1e-6);
      expect(cmp.mismatches, `${d.text}\nmax abs error ${cmp.maxAbsError}`).toEqual([]);
      outcome.lifted++;
    });
    test('most draws onnxruntime runs are lifted', () => {
      // the draws above ran first (vitest runs a file's tests in order)
      console.log(`${name}: ${outcome.lifted} lifted and equal, ${outcome.refused} refused, ${outcome.notRun} not run by onnxruntime`);
      expect(outcome.lifted + outcome.refused + outcome.notRun).toBe(count);
      expect(outcome.lifted).toBeGreaterThan(2 * outcome.refused);
      expect(outcome.lifted).toBeGreaterThan((count - outcome.notRun) / 2);
    });
  });
}
