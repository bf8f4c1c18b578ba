// Progress on long work: a bar on stderr while stdout is a terminal (a person is watching), nothing when
// output goes to a file or a pipe, so scripts and --json consumers see only the result.

import cliProgress from 'cli-progress';

export interface Progress {
  /** A stage starts (optimize's onStage names, or the command's own). */
  stage(name: string): void;
  /** Where the current stage is (optimize's onProgress), shown after its name. */
  detail(text: string): void;
  /** Removes the bar; call it on success and on failure. */
  done(): void;
}

const QUIET: Progress = { stage() {}, detail() {}, done() {} };

/** Whether a bar is shown: stdout and stderr are both terminals. */
export function showsProgress(): boolean {
  return process.stdout.isTTY === true && process.stderr.isTTY === true;
}

/** A progress bar over the stages a command expects (unknown stage names advance it by one). */
export function progress(command: string, stages: readonly string[]): Progress {
  if (!showsProgress()) return QUIET;
  const bar = new cliProgress.SingleBar({
    format: `attnopt ${command} [{bar}] {value}/{total} {stage} ({duration}s)`,
    stream: process.stderr,
    clearOnComplete: true,
    hideCursor: true,
    barsize: 24,
  });
  bar.start(stages.length, 0, { stage: 'starting' });
  let value = 0;
  let current = 'starting';
  return {
    stage(name) {
      const at = stages.indexOf(name);
      value = at >= value ? at : value + 1;
      if (value >= bar.getTotal()) bar.setTotal(value + 1);
      bar.update(value, { stage: (current = name) });
    },
    detail(text) {
      bar.update(value, { stage: `${current}: ${text}` });
    },
    done() {
      bar.update(bar.getTotal(), { stage: 'done' });
      bar.stop();
    },
  };
}

/** Runs `work` with a progress bar, removing the bar however it ends. */
export async function withProgress<T>(command: string, stages: readonly string[], work: (p: Progress) => Promise<T> | T): Promise<T> {
  const p = progress(command, stages);
  try {
    return await work(p);
  } finally {
    p.done();
  }
}
