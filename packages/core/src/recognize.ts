// recognize: lift every attention site of a graph into attnopt::Attention nodes.

import type { Graph } from '@attnopt/ir';
import { recognizePass } from '@attnopt/passes';
import type { PassNote } from '@attnopt/rewrite';

export interface RecognizeResult {
  readonly changed: boolean;
  /** What each rule did, and why rules did not match where they were tried. */
  readonly notes: readonly PassNote[];
}

export function recognize(graph: Graph): RecognizeResult {
  return recognizePass().run(graph);
}
