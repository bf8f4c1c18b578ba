// Benchmarks of onnxruntime-node time a run together with the JavaScript buffer its outputs are copied into (8 MB for
// one attention site at n = 4096). glibc serves such a buffer from fresh pages (mmap, or a heap grown again after it
// returned memory to the kernel) or from pages it kept, depending on its adaptive thresholds, that is on when the
// garbage collector freed earlier buffers: measured on this repository's 2-vCPU machine, one session of the banded
// site ran 48 ms with 2048 minor page faults per run and the next ones 25 ms with none, the same model and inputs.
// Fixed thresholds (no mmap below 32 MB, glibc's largest; the heap never trimmed) take the faults out of every
// run. They can only be set before the process starts, so a benchmark calls `steadyMalloc()` first: it runs the
// same command again in a child with them set, and exits with the child's status.
//
// --malloc as-is (or ATTNOPT_BENCH_MALLOC=as-is) runs with the thresholds as they are, to measure the difference.

import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';

/** glibc's tunables as environment variables: mmap only above 32 MB, never give the heap back. */
export const STEADY_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 40),
};

/** 'steady' where the thresholds are set in this process, 'as-is' where asked to leave them; for a bench's header. */
export function mallocMode(): 'steady' | 'as-is' {
  return Object.entries(STEADY_MALLOC_ENV).every(([k, v]) => process.env[k] === v) ? 'steady' : 'as-is';
}

/** Re-runs this command with STEADY_MALLOC_ENV unless it is set (or --malloc as-is): call before any work. */
export function steadyMalloc(): void {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--malloc');
  const asked = at >= 0 ? argv[at + 1] : process.env.ATTNOPT_BENCH_MALLOC;
  if (asked !== undefined && asked !== 'as-is' && asked !== 'steady') throw new Error(`--malloc ${asked}: steady (the default) or as-is`);
  if (asked === 'as-is' || mallocMode() === 'steady') return;
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, ...STEADY_MALLOC_ENV },
  });
  if (child.error) throw child.error;
  const signal = child.signal ? (constants.signals[child.signal] ?? 0) : 0;
  process.exit(child.status ?? 128 + signal);
}
