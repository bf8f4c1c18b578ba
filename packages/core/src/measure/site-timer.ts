// Timing two models of one site side by side in onnxruntime-node: the site as written and its chosen form, on the
// same inputs (round r on input r mod the inputs' count: a guarded form's time depends on the rows that fall back
// on each), one warm-up run each, then alternating rounds (which one runs first alternates too) until both a
// minimum of rounds and a time budget are reached, or a maximum of rounds. The medians are what the runtime
// does on this machine, load included: both models see the same load, so their ratio is what decides.

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
  /** Rounds at least (default 5) and at most (default 15). */
  readonly minRounds?: number;
  readonly maxRounds?: number;
  /** Seconds of timed runs after which no round starts once minRounds are done (default 2). */
  readonly seconds?: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** onnxruntime-node's CPU provider, all graph optimizations (a user's session's default), intra-op threads not spinning. */
export function onnxruntimeTimer(limits: TimerLimits = {}): SiteTimer {
  const minRounds = limits.minRounds ?? 5;
  const maxRounds = Math.max(minRounds, limits.maxRounds ?? 15);
  const budget = (limits.seconds ?? 2) * 1e3;
  return async ({ written, chosen, feeds }) => {
    // no spinning: the idle session's intra-op threads would otherwise spin beside the one that runs
    const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } };
    const sessions = [await ort.InferenceSession.create(written, options), await ort.InferenceSession.create(chosen, options)] as const;
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
      for (const s of sessions) for (let r = 0; r < inputs.length; r++) await run(s, r); // warm-up: allocations, thread pool, first-run planning
      const times: [number[], number[]] = [[], []];
      let spent = 0;
      let rounds = 0;
      while (rounds < maxRounds && (rounds < minRounds || spent < budget)) {
        const order = rounds % 2 === 0 ? [0, 1] : [1, 0];
        for (const k of order) {
          const ms = await run(sessions[k]!, rounds);
          times[k]!.push(ms);
          spent += ms;
        }
        rounds++;
      }
      return { writtenSeconds: median(times[0]) / 1e3, chosenSeconds: median(times[1]) / 1e3, rounds };
    } finally {
      for (const s of sessions) await s.release();
    }
  };
}
