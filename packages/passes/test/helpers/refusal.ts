// Why onnxruntime (or the importer) would not run a model, as a class: the shape checks list each model they
// could not compare with its class, exactly, so the claim "zero wrong dims" says what it covers.

export const WEIGHTS_AS_INPUTS = 'weights are graph inputs (too many elements to generate)';
export const DUPLICATE_NAMES = 'two values share a name (ambiguous outputs)';
export const OPSET_TOO_NEW = 'opset newer than onnxruntime supports';
export const NO_KERNEL = 'op without an onnxruntime CPU kernel';
export const INVALID_MODEL = 'onnxruntime rejects the model as invalid';
export const EXTERNAL_DATA_MISSING = 'its external data file is not in the corpus';
export const EXTERNAL_DATA_FROM_BYTES = 'onnxruntime will not read external data for a model given as bytes';
/** onnxruntime fails at run time in a node of this op type on the inputs given. */
export const runFails = (op: string) => `onnxruntime fails at run time in a ${op} node on these inputs`;

const CLASSES: readonly [RegExp, string][] = [
  [/weights are graph inputs/, WEIGHTS_AS_INPUTS],
  [/two values are named/, DUPLICATE_NAMES],
  [/Opset \d+ is under development|ValidateOpsetForDomain/, OPSET_TOO_NEW],
  [/is not a registered function\/op|Could not find an implementation|Failed to find kernel/, NO_KERNEL],
  [/This is an invalid model|invalid model|Type Error|ShapeInferenceError|Load model .* failed/i, INVALID_MODEL],
  [/external data location .*: the file does not exist/, EXTERNAL_DATA_MISSING],
  [/External data path .* escapes working directory/, EXTERNAL_DATA_FROM_BYTES],
];

/** The class of a failure to import or run a model: the first pattern that matches, else the message itself. */
export function refusalClass(message: string): string {
  for (const [pattern, name] of CLASSES) if (pattern.test(message)) return name;
  const run = /Non-zero status code returned while running (\S+) node/.exec(message);
  if (run) return runFails(run[1]!);
  return `unclassified: ${message.split('\n')[0]!.slice(0, 160)}`;
}
