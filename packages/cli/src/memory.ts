// The memory a run needs, checked before calibration or verify start: a sequence length whose estimate
// (core's runMemory) exceeds what the machine has is refused with the estimate and the largest length that
// fits, unless --allow-memory raises the limit.

import { totalmem } from 'node:os';
import { InvalidArgumentError } from 'commander';
import { type AttnoptModel, runMemory } from '@attnopt/core';
import { CliError, ExitCode } from './exit-codes.js';

/** Share of the machine's memory (os.totalmem) a run may take by default. */
export const DEFAULT_MEMORY_SHARE = 0.75;

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** --allow-memory N: bytes, with an optional K, M, G or T suffix (powers of 1024), e.g. 64G. */
export function memorySize(value: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(value.trim());
  const bytes = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isFinite(bytes) || bytes <= 0) throw new InvalidArgumentError('expected a size in bytes, e.g. 64G, 512M or 1e10');
  return bytes;
}

export const ALLOW_MEMORY_HELP = `memory a run may take (bytes; K, M, G, T suffixes), default ${100 * DEFAULT_MEMORY_SHARE}% of this machine's`;

const gib = (bytes: number) => (bytes < 2 ** 30 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 2 ** 30).toFixed(1)} GiB`);

/**
 * Refuses (exit 1: an option value out of range for this machine) a run of `model` at `seqLen` whose estimated memory exceeds `allowed` bytes (default:
 * DEFAULT_MEMORY_SHARE of os.totalmem()), naming the estimate and the largest --seq-len that fits.
 */
export function checkRunMemory(model: AttnoptModel, modelPath: string, seqLen: number, allowed?: number): void {
  const limit = allowed ?? DEFAULT_MEMORY_SHARE * totalmem();
  const memory = runMemory(model);
  const estimate = memory.at(seqLen);
  if (estimate <= limit) return;
  const fits = memory.largestFitting(limit, seqLen);
  const where = allowed === undefined ? `${gib(limit)} (${100 * DEFAULT_MEMORY_SHARE}% of this machine's ${gib(totalmem())})` : `${gib(limit)} (--allow-memory)`;
  throw new CliError(
    `${modelPath}: a run at --seq-len ${seqLen} needs about ${gib(estimate)} ` +
      `(weights ${gib(memory.weightBytes)} twice, and the attention scores of ${memory.sites.length} site${memory.sites.length === 1 ? '' : 's'} run dense), more than ${where}; ` +
      (fits > 0 ? `the largest --seq-len that fits is ${fits}` : 'not even --seq-len 1 fits') +
      '; pass --allow-memory SIZE to run anyway',
    ExitCode.usage,
  );
}
