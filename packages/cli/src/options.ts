// Parsing option values with errors a user can act on (a usage error, exit 1), and the options shared by the
// commands that choose forms (optimize, explain, codegen, inspect --decisions).

import { type Command, InvalidArgumentError, Option } from 'commander';
import { RUNTIMES, type Runtime } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';
import { ALLOW_MEMORY_HELP, memorySize } from './memory.js';

export function nonNegativeNumber(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || x < 0) throw new InvalidArgumentError('expected a number >= 0, e.g. 0.01');
  return x;
}

export function positiveInteger(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(x) || x < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return x;
}

/**
 * The longest --seq-len: 2^24 (16.8M tokens, above the longest contexts models are trained for). The mask
 * analysis and the costs walk every query row (about 3 s at this length); a run's memory is checked apart.
 */
export const MAX_SEQ_LEN = 2 ** 24;

/** Refuses (usage error) a --seq-len over MAX_SEQ_LEN; checked after the memory estimate, which says more. */
export function checkSeqLen(seqLen: number): void {
  if (seqLen > MAX_SEQ_LEN) throw new CliError(`--seq-len ${seqLen} is over the longest attnopt analyzes, ${MAX_SEQ_LEN}`, ExitCode.usage);
}

export function nonNegativeInteger(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(x) || x < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return x;
}

export function integer(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(x)) throw new InvalidArgumentError('expected an integer');
  return x;
}

/** --dim NAME=SIZE (repeatable): the size of a symbolic input dim for generated inputs. */
export function dimSize(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const m = /^([^=]+)=(\d+)$/.exec(value.trim());
  const size = m ? Number(m[2]) : NaN;
  // 0 is a size too: an empty KV cache (past_sequence_length=0), the first call of a model that generates
  if (!m || !Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('expected NAME=SIZE with SIZE an integer >= 0, e.g. hidden_size=768 or past_sequence_length=0');
  return { ...previous, [m[1]!.trim()]: size };
}

export const DIM_HELP = 'size of a symbolic input dim for generated inputs, e.g. --dim hidden_size=768, or --dim past_sequence_length=0 for an empty KV cache (repeatable; wins over --seq-len)';

/** The cost models --target names (optimize, explain, inspect). */
export const COST_TARGETS = ['onnxruntime-cpu', 'attnopt-cpu', 'webgpu'] as const;

export function costTarget(value: string): string {
  if (!(COST_TARGETS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${COST_TARGETS.join(', ')}`);
  return value;
}

/** --runtime: what runs the models (calibration, verify): onnxruntime-node or attnopt's own CPU executor. */
export function runtimeOption(what: string): Option {
  return new Option('--runtime <name>', `what runs the model ${what}: onnxruntime (onnxruntime-node) or attnopt-cpu (attnopt's CPU executor and kernels)`)
    .choices(RUNTIMES)
    .default('onnxruntime');
}

/** The flags of the budget and calibration options. */
export interface DecisionFlags {
  maxError: number;
  maxRelError?: number;
  seqLen: number;
  calibration?: string;
  seed: number;
  dim?: Record<string, number>;
  target?: string;
  runtime: Runtime;
  allowMemory?: number;
  allowStatistical?: boolean;
  verifyEach?: boolean;
  /** False with --no-measure. */
  measure?: boolean;
  /** --decode-steps: decode steps per calibration-shaped call at sites that take cached keys (default 0). */
  decodeSteps?: number;
}

/** The budget options for core's decide / optimize: --max-rel-error when given, else --max-error. */
export function budgetOptions(flags: DecisionFlags): { maxError: number } | { maxRelError: number } {
  return flags.maxRelError !== undefined ? { maxRelError: flags.maxRelError } : { maxError: flags.maxError };
}

/** Whether the budget allows approximate forms (so calibration runs). */
export function budgetAllowsApproximation(flags: DecisionFlags): boolean {
  return (flags.maxRelError ?? flags.maxError) > 0;
}

export const MAX_REL_ERROR_HELP =
  "max error of each site relative to its scale: the largest range (max - min over the keys) of one channel of the site's V on the calibration data, " +
  'which bounds the range of every output channel; the site budget is this x that scale (instead of --max-error)';

/**
 * Adds --max-error, --max-rel-error, --seq-len, --calibration, --seed, --dim, --runtime, --allow-memory,
 * --verify-each, --decode-steps, --no-measure and (when withTarget) --target to a command.
 */
export function addDecisionOptions(command: Command, withTarget: boolean): Command {
  command
    .option('--max-error <e>', 'max absolute error of each site: guarded sites hold it on every input (checked at run time); 0 allows exact rewrites only', nonNegativeNumber, 1e-2)
    .option('--max-rel-error <r>', MAX_REL_ERROR_HELP, nonNegativeNumber)
    .option('--allow-statistical', 'also accept forms that hold on the calibration data only (low-rank, unguarded key sets); needs --calibration')
    .option('--seq-len <n>', `sequence length of generated calibration inputs (and of the costs reported; with --calibration, the costs are at its length), at most ${MAX_SEQ_LEN}`, positiveInteger, 128)
    .option('--calibration <path>', 'calibration inputs: a folder of .npy or TensorProto .pb files named after the model inputs (or numbered sample folders)')
    .option('--seed <s>', 'seed of generated inputs and seeded forms', integer, 0)
    .option('--dim <name=size>', DIM_HELP, dimSize)
    .addOption(runtimeOption('for calibration'))
    .option('--allow-memory <size>', ALLOW_MEMORY_HELP, memorySize)
    .option('--verify-each', 'run the IR verifier on the graph before the first pass and after every pass (a failure names the pass)')
    .option(
      '--decode-steps <n>',
      'for a model that generates token by token: at sites that take cached keys (a KV cache input), price each form as one call of the calibration shape plus n decode steps (1 query each), so that a rewrite that is faster at the prompt and slower per token is kept only where the n steps still pay; default 0 (the calibration shape alone)',
      nonNegativeInteger,
    )
    .option(
      '--no-measure',
      'with the onnxruntime-cpu target, each rewrite the cost model chooses is timed against its site as written in onnxruntime on this machine and kept only at 0.95x the written time or less; this turns that off (the cost model alone decides)',
    );
  command.hook('preAction', (_program, action) => {
    if (action.getOptionValueSource('maxRelError') === 'cli' && action.getOptionValueSource('maxError') === 'cli') {
      throw new CliError('give --max-error (absolute) or --max-rel-error (relative to each site\'s scale), not both', ExitCode.usage);
    }
  });
  if (withTarget) command.option('--target <name>', `cost model target: ${COST_TARGETS.join(', ')}`, costTarget, 'onnxruntime-cpu');
  return command;
}
