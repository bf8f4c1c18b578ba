// The exit codes of the attnopt command, as the README documents them.

export const ExitCode = {
  /** Success. */
  ok: 0,
  /** Usage error: unknown command or option, missing argument, an option value out of range. */
  usage: 1,
  /** Bad input: a missing, unreadable, truncated or invalid model or input file; a model with no attention to work on. */
  badInput: 2,
  /** Verification failed: the optimized model's error exceeds what it certified. */
  verificationFailed: 3,
  /** Internal error: a bug in attnopt. */
  internal: 70,
} as const;

/** An error that ends the command with a given exit code; its message names the file, node and problem. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
