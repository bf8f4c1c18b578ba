// Lowering as a pipeline pass: every Attention node left to standard ONNX ops, so any runtime runs the result
// (at opset 23 and later, banded sites as ONNX Attention per batch of query blocks unless nativeAttention is off).
//   Attention(Q, K, V, spec)  ->  MatMul / Softmax / ... over the keys the spec keeps

import { lowerAttentionPass, NATIVE_ATTENTION_OPSET } from '@attnopt/passes';
import type { StatePass } from '@attnopt/rewrite';
import type { CompileState } from './state.js';

export const lower: StatePass<CompileState> = {
  name: 'lower',
  label: 'lower',
  run(state) {
    const native = (state.options.nativeAttention ?? true) && state.opset >= NATIVE_ATTENTION_OPSET ? { native: 'onnxruntime' as const } : {};
    return lowerAttentionPass({ opset: state.opset, ...native }).run(state.graph);
  },
};
