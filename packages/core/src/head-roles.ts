// What each head does, read from its attention probabilities on calibration data: local (with its reach), sink,
// global, induction-like or diffuse, with the numbers that decided it.
//
// Rows are streamed into per-head statistics (nothing n x n is kept): mass by offset i - j, mass by key, mass on
// the first keys. Only rows whose mask lets them see at least `minKeys` keys count (the first rows of a causal head see few
// keys and look local whatever the head does). The rules, in order (first match wins):
//   sink       the first `sinks` keys hold >= sinkMass of a row's mass on average
//   induction  one offset i - j >= minOffset holds >= diagonalMass of the rows that reach that far back (at least
//              a quarter of the rows): a far diagonal, the key a fixed distance back, which on a span repeated with
//              period P is the key after the previous occurrence (offset P - 1)
//   local      a window of `reach` keys around the query (plus the first `sinks` keys) holds >= coverage of the
//              mass, with reach <= localFraction of the keys
//   global     the `globalKeys` heaviest keys (outside the sinks) hold >= globalMass
//   diffuse    none of these

import { type AttentionParams, type AttentionSpec, type IntervalSet, intervals, isDataDependent, isLowRank, type MaskSpec, rowKeys, softmaxInPlace } from '@attnopt/ir';
import { ExternalDataResolver, exportModel, importModel } from '@attnopt/onnx';
import { type HeadData, headData } from '@attnopt/passes';
import { analyze } from './analyze.js';
import { collectSiteTensors, type Runtime } from './calibrate/collect.js';
import { type SiteSamples } from './calibrate/site-samples.js';
import { sampleForPasses } from './calibrate/site-calibration.js';
import { type CalibrationSample } from './calibrate/tensor.js';
import { type AttnoptModel } from './model.js';

export type HeadRole = 'sink' | 'induction' | 'local' | 'global' | 'diffuse';

export interface HeadRoleOptions {
  /** Keys at the start of the sequence that count as sinks (default 4). */
  readonly sinks?: number;
  /** Mean mass on the sinks that makes a sink head (default 0.5). */
  readonly sinkMass?: number;
  /** Mass a local window (plus the sinks) must hold (default 0.95). */
  readonly coverage?: number;
  /** A local head's reach is at most this fraction of the visible keys (default 1/8). */
  readonly localFraction?: number;
  /** Mass on one far offset that makes an induction-like head (default 0.3). */
  readonly diagonalMass?: number;
  /** The nearest offset a far diagonal may have (default 8). */
  readonly minOffset?: number;
  /** How many fixed keys a global head uses (default 4) and the mass they must hold (default 0.5). */
  readonly globalKeys?: number;
  readonly globalMass?: number;
  /** Rows with fewer visible keys are not counted (default 64, or a quarter of the keys when fewer). */
  readonly minKeys?: number;
}

/** The numbers behind a head's role, each a mean over the rows counted. */
export interface HeadRoleStats {
  readonly rows: number;
  /** Mass on the first `sinks` keys. */
  readonly sinkMass: number;
  /** Smallest window |i - j| < reach that, with the sinks, holds `coverage` of the mass; and that window's size in keys. */
  readonly reach: number;
  /** The same for half the mass: the window a diffuse head still centres on. */
  readonly halfReach: number;
  /** The far offset i - j (>= minOffset) holding the most mass per row reaching it, and that mean mass. */
  readonly diagonalOffset: number;
  readonly diagonalMass: number;
  /** The heaviest keys outside the sinks (at most `globalKeys`) and the mass they hold. */
  readonly globalKeys: readonly number[];
  readonly globalMass: number;
  /** Mean entropy of a row over log2 of its visible keys: 0 one key, 1 uniform. */
  readonly entropy: number;
}

export interface HeadRoleResult {
  readonly head: number;
  readonly role: HeadRole;
  readonly stats: HeadRoleStats;
  /** The rule that decided, in words with its numbers. */
  readonly why: string;
}

const defaults = (o: HeadRoleOptions) => ({
  sinks: o.sinks ?? 4,
  sinkMass: o.sinkMass ?? 0.5,
  coverage: o.coverage ?? 0.95,
  localFraction: o.localFraction ?? 1 / 8,
  diagonalMass: o.diagonalMass ?? 0.3,
  minOffset: o.minOffset ?? 8,
  globalKeys: o.globalKeys ?? 4,
  globalMass: o.globalMass ?? 0.5,
});

/** Streamed statistics of one head over rows of attention probabilities (queries of one or several samples). */
export class HeadRoleAccumulator {
  private rows = 0;
  private sink = 0;
  private entropy = 0;
  private keysSeen = 0;
  /** Mass of the keys outside the sinks by distance |i - j|, by offset i - j >= 0, and by key. */
  private readonly byDistance: Float64Array;
  private readonly byOffset: Float64Array;
  private readonly byKey: Float64Array;
  /** Counted rows by query position (clamped to nk - 1). */
  private readonly rowsAt: Float64Array;
  private readonly o: ReturnType<typeof defaults>;
  private readonly minKeys: number;

  constructor(
    readonly nk: number,
    options: HeadRoleOptions = {},
  ) {
    this.o = defaults(options);
    this.minKeys = options.minKeys ?? Math.min(64, Math.max(1, Math.floor(nk / 4)));
    this.byDistance = new Float64Array(nk);
    this.byOffset = new Float64Array(nk);
    this.byKey = new Float64Array(nk);
    this.rowsAt = new Float64Array(nk);
  }

  /**
   * Adds query row `i` (its position among the keys) with probabilities `p` over the nk keys; `visible`: how many
   * keys the row may see (its mask's keys), which decides whether it counts and normalizes its entropy.
   */
  addRow(i: number, p: ArrayLike<number>, visible: number): void {
    if (visible < this.minKeys) return;
    this.rows++;
    this.rowsAt[Math.min(Math.max(i, 0), this.nk - 1)]! += 1;
    this.keysSeen += visible;
    let h = 0;
    for (let j = 0; j < this.nk; j++) {
      const x = p[j]!;
      if (!(x > 0)) continue;
      h -= x * Math.log2(x);
      const off = i - j;
      if (off >= 0) this.byOffset[off]! += x;
      if (j < this.o.sinks) {
        this.sink += x;
        continue;
      }
      this.byKey[j]! += x;
      this.byDistance[Math.abs(off)]! += x;
    }
    this.entropy += visible > 1 ? h / Math.log2(visible) : 0;
  }

  /** Mean keys a counted row saw. */
  meanKeys(): number {
    return this.rows === 0 ? this.nk : this.keysSeen / this.rows;
  }

  stats(): HeadRoleStats {
    const r = Math.max(1, this.rows);
    const { coverage, globalKeys, minOffset } = this.o;
    const sinkMass = this.sink / r;
    // the smallest window |i - j| < reach that holds `coverage` together with the sinks
    let reach = 0;
    let held = sinkMass;
    let halfReach: number | undefined = held >= 0.5 ? 0 : undefined;
    while (reach < this.nk && held < coverage) {
      held += this.byDistance[reach++]! / r;
      if (halfReach === undefined && held >= 0.5) halfReach = reach;
    }
    // mass at offset `off` per row that reaches that far back (i >= off), over offsets most rows reach
    let diagonalOffset = 0;
    let diagonalMass = 0;
    let reaching = this.rows;
    for (let off = 0; off < this.nk && reaching >= this.rows / 4 && reaching > 0; off++) {
      const m = this.byOffset[off]! / reaching;
      if (off >= minOffset && m > diagonalMass) [diagonalMass, diagonalOffset] = [m, off];
      reaching -= this.rowsAt[off]!;
    }
    const keys = [...this.byKey.keys()]
      .filter((j) => this.byKey[j]! > 0)
      .sort((a, b) => this.byKey[b]! - this.byKey[a]! || a - b)
      .slice(0, globalKeys)
      .sort((a, b) => a - b);
    return {
      rows: this.rows,
      sinkMass,
      reach,
      halfReach: halfReach ?? reach,
      diagonalOffset,
      diagonalMass,
      globalKeys: keys,
      globalMass: keys.reduce((a, j) => a + this.byKey[j]!, 0) / r,
      entropy: this.entropy / r,
    };
  }

  /** The head's role by the rules at the top of this file, with the numbers that decided it. */
  classify(head: number): HeadRoleResult {
    const o = this.o;
    const s = this.stats();
    const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
    const maxReach = Math.max(1, Math.floor(o.localFraction * this.meanKeys()));
    const result = (role: HeadRole, why: string): HeadRoleResult => ({ head, role, stats: s, why });
    if (s.rows === 0) return result('diffuse', `no row saw ${this.minKeys} keys`);
    if (s.sinkMass >= o.sinkMass) return result('sink', `${pct(s.sinkMass)} of the mass on the first ${o.sinks} keys`);
    if (s.diagonalMass >= o.diagonalMass) return result('induction', `${pct(s.diagonalMass)} of the mass on the key ${s.diagonalOffset} back`);
    if (s.reach <= maxReach) {
      const sinks = s.sinkMass >= 0.01 ? ` with the first ${o.sinks} keys (${pct(s.sinkMass)})` : '';
      return result('local', `${pct(o.coverage)} of the mass within ${s.reach} keys${sinks}`);
    }
    if (s.globalMass >= o.globalMass) return result('global', `${pct(s.globalMass)} of the mass on keys ${s.globalKeys.join(',')}`);
    return result('diffuse', `95% of the mass within ${s.reach} keys, half within ${s.halfReach}; entropy ${s.entropy.toFixed(2)} of uniform`);
  }
}

/** The roles of one site's heads. */
export interface SiteHeadRoles {
  readonly id: string;
  readonly heads: readonly HeadRoleResult[];
}

/** Softmax of row i of a head over `keys` (scores from Q, K, scale, softcap and the bias row), into `p` (0 elsewhere). */
function probabilities(hd: HeadData, i: number, keys: IntervalSet, bias: Float64Array | undefined, p: Float64Array): void {
  const { q, k, d, scale, softcap } = hd;
  p.fill(-Infinity);
  for (let t = 0; t < keys.length; t += 2) {
    for (let j = keys[t]!; j < keys[t + 1]!; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += q[i * d + c]! * k[j * d + c]!;
      s *= scale;
      if (softcap > 0) s = softcap * Math.tanh(s / softcap);
      if (bias) s += bias[j]!;
      p[j] = s;
    }
  }
  softmaxInPlace(p);
}

/** The keys the site's own spec lets a row see (a low-rank or data-dependent spec: every key). */
function maskOf(spec: AttentionSpec): MaskSpec {
  return isLowRank(spec) || isDataDependent(spec) ? { kind: 'dense' } : spec;
}

/** The roles of one site's heads from its collected samples (Q, K, bias and the site's spec), in float64. */
export function siteHeadRoles(site: SiteSamples, options: HeadRoleOptions = {}): SiteHeadRoles {
  const params: AttentionParams = site.params;
  const mask = maskOf(params.spec);
  const heads: HeadRoleResult[] = [];
  for (let h = 0; h < params.numHeads; h++) {
    let acc: HeadRoleAccumulator | undefined;
    for (const sample of site.samples) {
      const passes = sampleForPasses(sample);
      for (let b = 0; b < sample.dims.batch; b++) {
        const hd = headData(params, passes, b, h);
        acc ??= new HeadRoleAccumulator(hd.nk, options);
        if (hd.nk !== acc.nk) continue; // a sample of another length: the first length decides
        const dims = { nq: hd.nq, nk: hd.nk, past: sample.dims.past };
        const p = new Float64Array(hd.nk);
        const bias = hd.biasRow ? new Float64Array(hd.nk) : undefined;
        for (let i = 0; i < hd.nq; i++) {
          if (bias) hd.biasRow!(i, bias);
          const keys = rowKeys(mask, i, dims);
          probabilities(hd, i, keys, bias, p);
          acc.addRow(hd.nk - hd.nq + i, p, intervals.size(keys)); // queries bottom-right aligned with the keys
        }
      }
    }
    heads.push(acc ? acc.classify(h) : { head: h, role: 'diffuse', stats: new HeadRoleAccumulator(1).stats(), why: 'no calibration rows' });
  }
  return { id: site.id, heads };
}

/** The roles of the heads of every site that has samples. */
export function headRoles(sites: readonly SiteSamples[], options: HeadRoleOptions = {}): SiteHeadRoles[] {
  return sites.filter((s) => s.samples.length > 0).map((s) => siteHeadRoles(s, options));
}

/**
 * Recognizes `model`'s sites (a copy: `model` is not changed), proves their masks, runs it on `samples` and
 * classifies every head of every site.
 */
export async function modelHeadRoles(
  model: AttnoptModel,
  samples: Iterable<CalibrationSample> | AsyncIterable<CalibrationSample>,
  options: HeadRoleOptions & { readonly runtime?: Runtime } = {},
): Promise<SiteHeadRoles[]> {
  const file = model.file;
  const copy = importModel(exportModel(model), file !== undefined ? { file, externalData: new ExternalDataResolver(file) } : {});
  analyze(copy.graph);
  return headRoles(await collectSiteTensors(copy, samples, { runtime: options.runtime ?? 'onnxruntime', outputs: false }), options);
}

/** "local reach 12", "induction offset 255", "global keys 4,9", "sink", "diffuse": a head's role in a few words. */
export function headRoleLabel(r: HeadRoleResult): string {
  const s = r.stats;
  const detail =
    r.role === 'local' ? ` reach ${s.reach}` : r.role === 'induction' ? ` offset ${s.diagonalOffset}` : r.role === 'global' ? ` keys ${s.globalKeys.join(',')}` : r.role === 'diffuse' ? ` (half within ${s.halfReach})` : '';
  return `${r.role}${detail}`;
}

/** "h0 local reach 12, h1 sink, h2 induction offset 255": heads and their roles in a line. */
export const headRolesText = (heads: readonly HeadRoleResult[]): string => heads.map((r) => `h${r.head} ${headRoleLabel(r)}`).join(', ');
