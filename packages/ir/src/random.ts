// The seeded random streams that give data-dependent and approximate specs (LSH rotations, Linformer
// projections, Performer features) their meaning: every backend draws the same numbers from a seed.

const MASK64 = (1n << 64n) - 1n;

/** SplitMix64: 64-bit state, one output per step. Simple, fast enough, identical everywhere. */
export class SplitMix64 {
  private state: bigint;

  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  nextU64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    return Number(this.nextU64() >> 11n) / 2 ** 53;
  }
}

/**
 * Standard normal samples by Box-Muller, in pairs: `count` draws from the stream of `seed`.
 * Element k of the result is the same for any count > k.
 */
export function gaussian(seed: number, count: number): Float64Array {
  const rng = new SplitMix64(seed);
  const out = new Float64Array(count);
  for (let k = 0; k < count; k += 2) {
    const u1 = 1 - rng.nextFloat(); // (0, 1]
    const u2 = rng.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[k] = r * Math.cos(2 * Math.PI * u2);
    if (k + 1 < count) out[k + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
