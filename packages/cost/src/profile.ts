// Target profiles: what a target does per second, measured (this machine's CPU through onnxruntime) or
// stated (a generic WebGPU device). A rate is a curve over problem size, because small ops never reach
// the rate of large ones; between measured sizes it is interpolated log-log, outside them held constant.

/** The targets the cost model knows, by how they execute attention. */
export type TargetKind = 'onnxruntime-cpu' | 'attnopt-cpu' | 'webgpu';

/**
 * How a target runs one attention site:
 * - `unfused`: one kernel per ONNX op of the lowered graph; every intermediate (scores, masks,
 *   probabilities: n_q x n_k per head) is written to memory and read back;
 * - `fused-blocked`: one flash-style kernel over (blockQ x blockK) tiles that skips empty tiles and keeps
 *   scores in registers or cache: no n x n memory.
 */
export type Execution = 'unfused' | 'fused-blocked';

/** One measured point of a rate curve: `perSecond` units of work per second for an op of `size` units. */
export interface RatePoint {
  readonly size: number;
  readonly perSecond: number;
}

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly node?: string;
  readonly onnxruntime?: string;
  readonly os?: string;
}

export interface TargetProfile {
  readonly name: string;
  readonly target: TargetKind;
  readonly execution: Execution;
  /** Where the numbers come from, in words. */
  readonly source: string;
  /** The hardware peak (fp32 FLOP/s), for reference and as a ceiling. */
  readonly peakFlopsPerSecond: number;
  /** Matrix-multiply throughput: size = FLOPs of one op, perSecond = FLOP/s. */
  readonly matmul: readonly RatePoint[];
  /** Softmax throughput: size = elements of one op, perSecond = elements/s. */
  readonly softmax: readonly RatePoint[];
  /**
   * Elementwise throughput per op type (size = bytes the op reads and writes, perSecond = bytes/s);
   * `default` serves op types without their own curve.
   */
  readonly elementwise: Readonly<Record<string, readonly RatePoint[]>> & { readonly default: readonly RatePoint[] };
  /** Sustained memory bandwidth on large streams (bytes/s): the roofline's memory side. */
  readonly bytesPerSecond: number;
  /** Cost of one kernel launch / graph node beyond its work (s). */
  readonly opOverheadSeconds: number;
  /** Cost of one run of the whole model or dispatch plan beyond its ops (s). */
  readonly runOverheadSeconds: number;
  /** Tile of a fused-blocked kernel (the block classes are computed on this grid). */
  readonly tile?: { readonly blockQ: number; readonly blockK: number };
  /** Present when measured: when, on what, and the command that measured it. */
  readonly measured?: { readonly date: string; readonly machine: MachineInfo; readonly command: string };
}

/** The rate of `curve` at `size`: log-log interpolation between points, constant beyond the ends. */
export function rateAt(curve: readonly RatePoint[], size: number): number {
  if (curve.length === 0) throw new Error('rate curve has no points');
  const pts = [...curve].sort((a, b) => a.size - b.size);
  const first = pts[0]!;
  const last = pts[pts.length - 1]!;
  if (size <= first.size) return first.perSecond;
  if (size >= last.size) return last.perSecond;
  for (let k = 1; k < pts.length; k++) {
    const a = pts[k - 1]!;
    const b = pts[k]!;
    if (size <= b.size) {
      if (b.size === a.size) return b.perSecond;
      const t = Math.log(size / a.size) / Math.log(b.size / a.size);
      return Math.exp(Math.log(a.perSecond) + t * Math.log(b.perSecond / a.perSecond));
    }
  }
  return last.perSecond;
}

/** The kinds of work a profile rates. */
export type WorkKind = 'matmul' | 'softmax' | 'elementwise';

/**
 * Throughput of `kind` work at `size` (FLOPs for matmul, elements for softmax, bytes for elementwise
 * op `op`): FLOP/s, elements/s or bytes/s.
 */
export function throughput(profile: TargetProfile, kind: WorkKind, size: number, op = 'default'): number {
  switch (kind) {
    case 'matmul':
      return Math.min(profile.peakFlopsPerSecond, rateAt(profile.matmul, size));
    case 'softmax':
      return rateAt(profile.softmax, size);
    case 'elementwise':
      return rateAt(profile.elementwise[op] ?? profile.elementwise.default, size);
  }
}

/** Throws naming the field when a profile (e.g. read from JSON) is malformed. Returns it. */
export function validateProfile(p: TargetProfile): TargetProfile {
  const fail = (msg: string): never => {
    throw new Error(`invalid target profile ${p.name}: ${msg}`);
  };
  const curve = (name: string, c: readonly RatePoint[] | undefined) => {
    if (!c || c.length === 0) fail(`${name} needs at least one point`);
    for (const pt of c!) if (!(pt.size > 0 && pt.perSecond > 0)) fail(`${name}: size and perSecond must be > 0`);
  };
  curve('matmul', p.matmul);
  curve('softmax', p.softmax);
  curve('elementwise.default', p.elementwise?.default);
  for (const [k, c] of Object.entries(p.elementwise)) curve(`elementwise.${k}`, c);
  if (!(p.bytesPerSecond > 0)) fail('bytesPerSecond must be > 0');
  if (!(p.peakFlopsPerSecond > 0)) fail('peakFlopsPerSecond must be > 0');
  if (!(p.opOverheadSeconds >= 0) || !(p.runOverheadSeconds >= 0)) fail('overheads must be >= 0');
  if (p.execution === 'fused-blocked' && !p.tile) fail('a fused-blocked target needs a tile');
  return p;
}
