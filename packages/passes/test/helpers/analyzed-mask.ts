// A mask-analysis test's graph, recognized and analyzed as the pipeline does, and the inputs of a batch of two whose
// second row is padded on the left or on the right: the shared setup of the tests that run a proven mask's rows
// against the graph as written (analyze-mask-unkept-rows, analyze-mask-clamped).

import { DEFAULT_OPSET_ANNOTATION, isAttention, parseGraph } from '@attnopt/ir';
import { rewritePass } from '@attnopt/rewrite';
import { analyzeMaskPass } from '../../src/mask-analysis/index.js';
import { RECOGNITION_RULES } from '../../src/recognize/index.js';
import { ortTensor, randomInputs } from './ort.js';

/** The graph of `text` recognized and its masks analyzed at `opset` (as importOnnx records it), with the notes. */
export function analyzedMasks(text: string, opset: number) {
  const g = parseGraph(text);
  g.annotations.set(DEFAULT_OPSET_ANNOTATION, opset);
  rewritePass('recognize', RECOGNITION_RULES).run(g);
  const notes = analyzeMaskPass().run(g).notes.map((n) => n.message);
  return { g, notes, sites: g.nodes.filter(isAttention) };
}

/** Seeded inputs of batch 2 and `seq` tokens; the second row's attention_mask 0 over its first (left) or last `pad` keys. */
export function paddedFeeds(text: string, seq: number, pad: number, side: 'left' | 'right') {
  const feeds = randomInputs(parseGraph(text), 4, { batch: 2, seq, past: 0 });
  const isPad = (t: number) => (side === 'left' ? t < pad : t >= seq - pad);
  feeds.attention_mask = ortTensor('i64', [2, seq], Array.from({ length: 2 * seq }, (_, e) => Number(!(e >= seq && isPad(e - seq)))));
  return feeds;
}
