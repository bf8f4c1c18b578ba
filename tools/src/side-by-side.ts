// Timing onnxruntime sessions side by side on one machine whose load moves: every session warmed up once, then
// `rounds` rounds of `calls` calls each, the sessions in alternating order round by round, so that drifts of the
// machine fall on all of them alike. Per session, the milliseconds per call of every round.

import type * as ort from 'onnxruntime-node';

export async function timeSideBySide<N extends string>(
  sessions: Readonly<Record<N, ort.InferenceSession>>,
  names: readonly N[],
  feeds: ort.InferenceSession.FeedsType,
  calls: number,
  rounds: number,
): Promise<Record<N, number[]>> {
  const time = async (s: ort.InferenceSession) => {
    const t0 = performance.now();
    for (let r = 0; r < calls; r++) await s.run(feeds);
    return (performance.now() - t0) / calls;
  };
  for (const m of names) await time(sessions[m]);
  const times = Object.fromEntries(names.map((m) => [m, [] as number[]])) as Record<N, number[]>;
  for (let r = 0; r < rounds; r++) for (const m of r % 2 === 0 ? names : [...names].reverse()) times[m].push(await time(sessions[m]));
  return times;
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The median over rounds of `times`' ratio to `base`'s in the same round. */
export const medianRatio = (times: readonly number[], base: readonly number[]): number => median(times.map((t, r) => t / base[r]!));
