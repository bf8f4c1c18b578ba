import { MAX_NAME_CHARS, quoteName } from './limits.js';

// Errors of the ONNX -> IR bridge: each names the model file, where in the model (graph, node, attribute,
// initializer) and what is wrong.

/** A model that cannot be imported (or an IR graph that cannot be exported): a dangling name, an unknown dtype... */
export class OnnxImportError extends Error {
  override readonly name = 'OnnxImportError';
  constructor(
    /** What is wrong, in words. */
    readonly problem: string,
    /** The model file, when known. */
    readonly file: string | undefined,
    /** Where in the model, e.g. `graph "main" > node "If_0" (If) > attribute then_branch > node #3 (Add)`. */
    readonly where: string,
  ) {
    super(`${file ?? '<model>'}: ${where}: ${problem}`);
  }
}

/** Where an import is, for messages. */
export interface Where {
  readonly file: string | undefined;
  readonly path: string;
}

export const within = (where: Where, step: string): Where => ({ file: where.file, path: `${where.path} > ${step}` });

export function importError(where: Where, problem: string): OnnxImportError {
  return new OnnxImportError(problem, where.file, where.path);
}

/** How messages name a node: `node "name" (domain::Op)`, or `node #k (Op)` when it has no name. */
export function describeNodeProto(name: string | undefined, domain: string | undefined, op: string | undefined, index: number): string {
  const cut = (s: string) => (s.length <= MAX_NAME_CHARS ? s : `${s.slice(0, MAX_NAME_CHARS)}...`);
  const qualified = domain ? `${cut(domain)}::${cut(op ?? '?')}` : cut(op ?? '?');
  return name ? `node ${quoteName(name)} (${qualified})` : `node #${index} (${qualified})`;
}
