// Recognition as a pipeline pass: ONNX attention subgraphs and fused attention ops -> Attention nodes, each
// remembering the ONNX nodes it was lifted from.

import type { StatePass } from '@attnopt/rewrite';
import { recognize } from '../recognize.js';
import type { AnalysisState } from './state.js';

export const recognizeAttention: StatePass<AnalysisState> = {
  name: 'recognize',
  label: 'recognize and analyze masks',
  run: (state) => recognize(state.graph),
};
