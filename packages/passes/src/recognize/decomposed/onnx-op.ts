// The one lookup every step of the decomposed walk uses: the default-domain node of one of `ops` producing `v`.

import { type Node, ONNX_DOMAIN, type Value } from '@attnopt/ir';

/** The producer of `v` when it is a default-domain node of one of `ops` and `v` its first output, else undefined. */
export const onnxOp = (v: Value | undefined, ...ops: string[]): Node | undefined => {
  const n = v?.producer;
  return n && n.domain === ONNX_DOMAIN && ops.includes(n.op) && v!.outputIndex === 0 ? n : undefined;
};
