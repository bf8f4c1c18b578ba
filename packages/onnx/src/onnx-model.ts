// An imported ONNX model: the IR graph plus everything model-level the IR does not model, as decoded.

import type { Graph } from '@attnopt/ir';
import type { ModelProto } from './types.js';

export interface OnnxModel {
  /** The main graph. */
  graph: Graph;
  /**
   * The ModelProto as imported: ir_version, opset_import, producer, domain, model_version, doc_string,
   * metadata_props, training_info, functions, configuration and unknown fields are exported from here
   * (its `graph` is what `graph` was imported from; export writes `graph` instead).
   */
  readonly proto: ModelProto;
  /** The file it was read from, for messages. */
  file?: string;
}

export interface NewModelOptions {
  /** Default-domain opset (default 21). */
  readonly opset?: number;
  /** Default 10 (ONNX 1.16). */
  readonly irVersion?: number;
  readonly producerName?: string;
}

/** An OnnxModel around a graph built in the IR (not imported): a fresh ModelProto header. */
export function newOnnxModel(graph: Graph, options: NewModelOptions = {}): OnnxModel {
  return {
    graph,
    proto: {
      irVersion: BigInt(options.irVersion ?? 10),
      producerName: options.producerName ?? 'attnopt',
      opsetImport: [{ domain: '', version: BigInt(options.opset ?? 21) }],
    },
  };
}
