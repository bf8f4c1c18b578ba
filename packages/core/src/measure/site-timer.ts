// Timing two models of one site side by side in onnxruntime-node: the site as written and its chosen form, on the
// same inputs (round r on input r mod the inputs' count: a guarded form's time depends on the rows that fall back
// on each), in SESSION_COPIES sessions per model (one session of a model may run a few percent apart from another
// in the same process; one where a run takes seconds), warmed up by at least two runs each, then rounds of one run
// of each model (the order, the input and the session copy change every round) until both a minimum of rounds and a
// time budget are reached, or a maximum of rounds. The medians are what the runtime does on this machine, load
// included: both models see the same load, so their ratio is what decides. A run's time includes copying its outputs
// into new JavaScript buffers, which glibc serves from fresh pages or from kept ones depending on when earlier ones
// were freed (measured: 2048 page faults, about 20 ms, on a run with an 8 MB output, none on the next session's).
// Both models of a site have the same outputs, so this adds alike to both and pulls their ratio toward 1 (the gate
// keeps fewer rewrites, never more); the benchmarks fix malloc's thresholds at process start
// (tools/src/steady-malloc.ts), which a library cannot do for its caller.

import ort from 'onnxruntime-node';
import { toOrt } from '../calibrate/ort-tensor.js';
import type { HostTensor } from '../calibrate/tensor.js';

process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** The two models of a site (ONNX bytes) and the inputs both read (one or more sets, by graph input name). */
export interface SitePair {
  readonly written: Uint8Array;
  readonly chosen: Uint8Array;
  readonly feeds: readonly Readonly<Record<string, HostTensor>>[];
}

/** Median seconds per run of each model, and the rounds behind them. */
export interface SiteTiming {
  readonly writtenSeconds: number;
  readonly chosenSeconds: number;
  readonly rounds: number;
}

/** Times a site pair; onnxruntime's by default, a fixed one in tests of what the timing decides. */
export type SiteTimer = (pair: SitePair) => Promise<SiteTiming>;

export interface TimerLimits {
  /** Rounds at least (default 4) and at most (default 16). */
  readonly minRounds?: number;
  readonly maxRounds?: number;
  /**
   * Seconds of timed runs after which no round starts once minRounds are done (default 3): a site of a few ms gets
   * the 16 rounds, one of seconds (a dense site at tens of thousands of tokens) the 4.
   */
  readonly seconds?: number;
}

/** Sessions per model, taking turns, so that no one session's placement decides. */
const SESSION_COPIES = 2;
/** Runs of each session before any is timed (at least one per input). */
const WARM_UP_RUNS = 2;
/** A second session per model only when the first's last warm-up run took less than this (ms). */
const SECOND_COPY_BELOW_MS = 250;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** onnxruntime-node's CPU provider, all graph optimizations (a user's session's default), intra-op threads not spinning. */
export function onnxruntimeTimer(limits: TimerLimits = {}): SiteTimer {
  const minRounds = limits.minRounds ?? 4;
  const maxRounds = Math.max(minRounds, limits.maxRounds ?? 16);
  const budget = (limits.seconds ?? 3) * 1e3;
  return async ({ written, chosen, feeds }) => {
    // no spinning: the idle session's intra-op threads would otherwise spin beside the one that runs
    const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } };
    const sessions: ort.InferenceSession[][] = [[], []];
    try {
      const inputs = feeds.map((f) => Object.fromEntries(Object.entries(f).map(([name, t]) => [name, toOrt(t, name)])));
      if (inputs.length === 0) throw new Error('no inputs to time the site on');
      const run = async (s: ort.InferenceSession, round: number): Promise<number> => {
        const t0 = performance.now();
        const out = await s.run(inputs[round % inputs.length]!);
        const ms = performance.now() - t0;
        for (const v of Object.values(out)) v.dispose?.();
        return ms;
      };
      // warm-up: a session's first two runs are its slow ones (measured on BLOOM's dense site at 4096 tokens: 2.5 s,
      // 1.6 s, then 0.12 s), so each session runs every input and at least twice before any run is timed
      const copy = async (): Promise<number> => {
        let last = 0;
        for (const [k, bytes] of [written, chosen].entries()) {
          const s = await ort.InferenceSession.create(bytes, options);
          sessions[k]!.push(s);
          for (let r = 0; r < Math.max(WARM_UP_RUNS, inputs.length); r++) last = Math.max(last, await run(s, r));
        }
        return last;
      };
      // the second copy only where a run is short: for a site of seconds, warming it up would cost more than the
      // few percent a session's placement moves its time
      if ((await copy()) < SECOND_COPY_BELOW_MS) for (let c = 1; c < SESSION_COPIES; c++) await copy();
      const copies = sessions[0]!.length;
      const times: [number[], number[]] = [[], []];
      let spent = 0;
      let rounds = 0;
      // round r: input r mod the inputs, session copy r mod the copies, written then chosen on even rounds and
      // chosen then written on odd ones. Each side runs first (on an input the other has not just read) as often
      // as second, and a model run twice in a row (across a round's end) runs in another session, not one whose
      // buffers are warm. Measured on BLOOM's site at 1024 tokens, one model timed against itself: 0.95-0.98x with
      // the order fixed per round (one side always ahead), 0.97-1.01x with this schedule, inside MEASURED_GAIN.
      while (rounds < maxRounds && (rounds < minRounds || spent < budget)) {
        for (const k of rounds % 2 === 0 ? [0, 1] : [1, 0]) {
          const ms = await run(sessions[k]![rounds % copies]!, rounds);
          times[k]!.push(ms);
          spent += ms;
        }
        rounds++;
      }
      return { writtenSeconds: median(times[0]) / 1e3, chosenSeconds: median(times[1]) / 1e3, rounds };
    } finally {
      for (const s of sessions.flat()) await s.release();
    }
  };
}
