// The inputs a calibration sample must feed: the model's graph inputs that have no default value.

import type { DType, Graph, Shape, Value } from '@attnopt/ir';

export interface ModelInput {
  readonly name: string;
  readonly dtype: DType;
  /** undefined when the model does not say (any rank accepted). */
  readonly shape?: Shape;
  readonly value: Value;
}

/** The graph inputs a sample must provide (inputs with an initializer are optional and skipped). */
export function modelInputs(graph: Graph, where = 'model'): ModelInput[] {
  return graph.inputs
    .filter((v) => v.initializer === undefined)
    .map((v) => {
      const t = v.type;
      if (t?.kind !== 'tensor') throw new Error(`${where}: input "${v.name}" is not a tensor (${t?.kind ?? 'no type'})`);
      return t.shape === undefined ? { name: v.name, dtype: t.dtype, value: v } : { name: v.name, dtype: t.dtype, shape: t.shape, value: v };
    });
}
