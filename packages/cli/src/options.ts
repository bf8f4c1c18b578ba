// Parsing numeric options with errors a user can act on (a usage error, exit 1).

import { InvalidArgumentError } from 'commander';

export function nonNegativeNumber(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || x < 0) throw new InvalidArgumentError('expected a number >= 0, e.g. 0.01');
  return x;
}

export function positiveInteger(value: string): number {
  const x = Number(value);
  if (!Number.isSafeInteger(x) || x < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return x;
}

export function integer(value: string): number {
  const x = Number(value);
  if (!Number.isSafeInteger(x)) throw new InvalidArgumentError('expected an integer');
  return x;
}
