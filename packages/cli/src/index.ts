// @attnopt/cli: the attnopt command. Public API (for tests and embedding).

export { buildProgram, run } from './main.js';
export { ExitCode, CliError } from './exit-codes.js';
export { formatInspect, type InspectSiteJson } from './inspect-command.js';
export { formatExplanation } from './explain-command.js';
export { formatCodegen, type CodegenManifest } from './codegen-command.js';
export { progress, showsProgress, type Progress } from './progress.js';
