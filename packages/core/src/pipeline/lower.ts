// Lowering as a pipeline pass: every Attention node left to standard ONNX ops, so any runtime runs the result
// (at opset 23 and later, banded sites as ONNX Attention per batch of query blocks unless nativeAttention is off).
//   Attention(Q, K, V, spec)  ->  MatMul / Softmax / ... over the keys the spec keeps

import { type LowerOptions, lowerAttentionPass, NATIVE_ATTENTION_OPSET } from '@attnopt/passes';
import type { StatePass } from '@attnopt/rewrite';
import type { CompileState } from './state.js';

/** How the sites are lowered: the state's opset; banded sites as ONNX Attention from NATIVE_ATTENTION_OPSET unless off. */
export function lowerOptions(state: CompileState): LowerOptions {
  const native = (state.options.nativeAttention ?? true) && state.opset >= NATIVE_ATTENTION_OPSET;
  return { opset: state.opset, ...(native ? { native: 'onnxruntime' as const } : {}) };
}

export const lower: StatePass<CompileState> = {
  name: 'lower',
  label: 'lower',
  run(state) {
    return lowerAttentionPass(lowerOptions(state)).run(state.graph);
  },
};
