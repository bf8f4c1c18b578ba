// A failure of the library on a model, as the command reports it: the model named once, and, where a run of
// the model on generated inputs failed, what the user can give instead.

import { CliError, ExitCode } from './exit-codes.js';

/** How the inputs of a run were made: generated (at this sequence length) or read from a folder. */
export type InputsMade = { readonly generated: true; readonly seqLen: number } | { readonly generated: false };

const RUN_FAILED = /onnxruntime failed|the CPU executor failed/;
/** An index past the end of a table (onnxruntime's Gather, GatherElements, ScatterND...): ids or positions. */
const OUT_OF_TABLE = /out of data bounds|must be within the inclusive range|out of range/i;

/**
 * The error `e` of a run on `modelPath`, named once: a message that already names another model of the run
 * (`others`: verify's original beside its optimized model) keeps that name instead.
 */
export function failedOn(modelPath: string, e: unknown, inputs: InputsMade, option = '--calibration', others: readonly string[] = []): CliError {
  let message = (e as Error).message;
  while (message.startsWith(`${modelPath}: `)) message = message.slice(modelPath.length + 2);
  const named = others.some((p) => message.startsWith(`${p}: `));
  const hint =
    inputs.generated && RUN_FAILED.test(message)
      ? (OUT_OF_TABLE.test(message)
          ? `\n  an index went past the end of a table: positions the model computes from the lengths (a cumulative sum of the mask, say) may not fit ${inputs.seqLen} tokens; try a shorter --seq-len`
          : '') +
        `\n  the inputs were generated from the model's input types (--seq-len ${inputs.seqLen}, other symbolic dims by name); ` +
        `give real inputs with ${option} DIR, or the sizes of its symbolic dims with --dim NAME=SIZE ` +
        `(an empty KV cache, for a model that takes cached tokens only with one new one: --dim past_sequence_length=0, by its past dim's name)`
      : '';
  return new CliError(`${named ? '' : `${modelPath}: `}${message}${hint}`, ExitCode.badInput);
}
