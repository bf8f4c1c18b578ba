// What attnopt reads, stated up front: a model file is a regular file no larger than protobuf's 2 GB limit,
// a graph has at most MAX_NODES nodes, a tensor or type at most MAX_RANK dims, and a name in a message is cut
// to MAX_NAME_CHARS (a hostile model must not make a message of megabytes).

/** Protobuf's limit on one serialized message (2 GiB - 1): no valid .onnx file is larger. */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;

/** The most nodes one graph may hold (the largest exported LLMs hold tens of thousands). */
export const MAX_NODES = 1_000_000;

/** The most dims a tensor or a value type may have (real models stay under 10). */
export const MAX_RANK = 64;

/** Names longer than this are cut in messages. */
export const MAX_NAME_CHARS = 120;

/** A name as messages quote it: JSON-quoted (control characters escaped), cut to MAX_NAME_CHARS. */
export function quoteName(name: string): string {
  if (name.length <= MAX_NAME_CHARS) return JSON.stringify(name);
  return `${JSON.stringify(name.slice(0, MAX_NAME_CHARS))}... (${name.length} characters)`;
}
