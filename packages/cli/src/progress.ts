// Progress on long work: one line per stage on stderr when it is a terminal, nothing otherwise.

export function stageReporter(command: string): (stage: string) => void {
  if (!process.stderr.isTTY) return () => {};
  const t0 = performance.now();
  return (stage) => process.stderr.write(`attnopt ${command}: ${stage}... (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}
