// @attnopt/cli: the attnopt command. Public API (for tests and embedding).

export { buildProgram, run } from './main.js';
export { ExitCode, CliError } from './exit-codes.js';
export { formatInspect } from './inspect-command.js';
