// Why onnxruntime (or the importer) would not run a model, as a class: the shape checks list each model they
// could not compare with its class, exactly, so the claim "zero wrong dims" says what it covers.

export const WEIGHTS_AS_INPUTS = 'weights are graph inputs (too many elements to generate)';
export const DUPLICATE_NAMES = 'two values share a name (ambiguous outputs)';
export const OPSET_TOO_NEW = 'opset newer than onnxruntime supports';
export const NO_KERNEL = 'op without an onnxruntime CPU kernel';
export const INVALID_MODEL = 'onnxruntime rejects the model as invalid';
export const RUN_FAILS = 'onnxruntime fails at run time on these inputs';

const CLASSES: readonly [RegExp, string][] = [
  [/weights are graph inputs/, WEIGHTS_AS_INPUTS],
  [/two values are named/, DUPLICATE_NAMES],
  [/Opset \d+ is under development|ValidateOpsetForDomain/, OPSET_TOO_NEW],
  [/is not a registered function\/op|Could not find an implementation|Failed to find kernel/, NO_KERNEL],
  [/This is an invalid model|invalid model|Type Error|ShapeInferenceError|Load model .* failed/i, INVALID_MODEL],
  [/Non-zero status code returned while running/, RUN_FAILS],
];

/** The class of a failure to import or run a model: the first pattern that matches, else the message itself. */
export function refusalClass(message: string): string {
  for (const [pattern, name] of CLASSES) if (pattern.test(message)) return name;
  return `unclassified: ${message.split('\n')[0]!.slice(0, 160)}`;
}
