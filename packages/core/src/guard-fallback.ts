// The guarded tier's price measured at run time: a guarded site recomputes densely the query rows whose
// certificate exceeds its budget, and its lowering names those flags per site (`<node>/guard_falls_back.<site>`,
// bool [batch, heads, rows]). A verify-only copy of the optimized model lists the flags as extra outputs; run
// in onnxruntime on the verify inputs, it gives per site the share of (batch, head, row) triples that fell back.
// In attnopt's CPU executor the same flags are fetched from the run, and a guarded attnopt::Attention node (a
// decided model) reports its own fallback from the guarded kernel (runtime-cpu's onGuard); both are summed here.

import { attentionParams, type Graph, type Node, tensorType } from '@attnopt/ir';
import { attentionSites, guardFallbackLabel } from '@attnopt/passes';
import ort from 'onnxruntime-node';
import type { CalibrationSample } from './calibrate/index.js';
import { toOrt } from './calibrate/ort-tensor.js';
import { loadModel } from './model.js';
import { selfContainedBytes } from './report/model-bytes.js';

/** One guarded site's (or head group's) fallback over every verify input. */
export interface GuardFallbackRate {
  /** `site<k>`, or `site<k>.heads<a>-<b>` for a head group. */
  readonly site: string;
  /** (batch, head, query row) triples the certificate was checked on, summed over the inputs. */
  readonly checked: number;
  /** Of those, the ones recomputed densely. */
  readonly fellBack: number;
  /** fellBack / checked (0 when nothing was checked). */
  readonly rate: number;
  /**
   * attnopt's guarded CPU kernel: the triples it recomputed, at least fellBack (a flagged row is recomputed with
   * the rows of its strip of 4).
   */
  readonly recomputed?: number;
  /**
   * The lowered (ONNX) site: (batch, query row) pairs checked, and those where some head fell back. The lowering
   * recomputes such a row densely in every head, so these, not the triples, are the dense work it did.
   */
  readonly rows?: number;
  readonly rowsRecomputed?: number;
}

/**
 * Per guarded site, the fallback measured by running a copy of `optimizedModel` that also outputs the sites'
 * fallback flags on every sample (onnxruntime, graph optimizations 'all' as deployed). Empty when the model has
 * no guarded site.
 */
export async function measureGuardFallback(optimizedModel: string | Uint8Array, samples: readonly CalibrationSample[]): Promise<GuardFallbackRate[]> {
  const model = loadModel(optimizedModel);
  const probes = new Map<string, string>();
  for (const node of model.graph.nodes) {
    for (const v of node.outputs) {
      const label = guardFallbackLabel(v.name);
      if (label === undefined || probes.has(v.name)) continue;
      probes.set(v.name, label);
      v.type ??= tensorType('bool');
      model.graph.outputs.push(v);
    }
  }
  if (probes.size === 0) return [];
  const session = await ort.InferenceSession.create(selfContainedBytes(model), { graphOptimizationLevel: 'all', logSeverityLevel: 4 });
  const tally = new GuardFallbackTally();
  try {
    for (const sample of samples) {
      const feeds = Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t, k)]));
      const out = await session.run(feeds, [...probes.keys()]);
      for (const [name, label] of probes) tally.addFlags(label, out[name]!.data as ArrayLike<boolean | number>, out[name]!.dims);
    }
  } finally {
    await session.release();
  }
  return tally.rates();
}

/** Checked and fallen-back (batch, head, row) triples summed per site label, in the order sites first report. */
export class GuardFallbackTally {
  private readonly sums = new Map<string, { checked: number; fellBack: number; recomputed?: number; rows?: number; rowsRecomputed?: number }>();

  add(site: string, checked: number, fellBack: number, recomputed?: number, rows?: { checked: number; recomputed: number }): void {
    const prev = this.sums.get(site) ?? { checked: 0, fellBack: 0 };
    const more = recomputed === undefined && prev.recomputed === undefined ? {} : { recomputed: (prev.recomputed ?? prev.fellBack) + (recomputed ?? fellBack) };
    const byRow = rows === undefined ? {} : { rows: (prev.rows ?? 0) + rows.checked, rowsRecomputed: (prev.rowsRecomputed ?? 0) + rows.recomputed };
    this.sums.set(site, { ...prev, checked: prev.checked + checked, fellBack: prev.fellBack + fellBack, ...more, ...byRow });
  }

  /**
   * One run's fallback flags of a site (truthy: the certificate exceeded the budget there). With their dims
   * [batch, heads, rows], also the (batch, row) pairs where some head fell back: the rows the lowering recomputes.
   */
  addFlags(site: string, flags: ArrayLike<boolean | number | bigint>, dims?: readonly number[]): void {
    let fell = 0;
    for (let k = 0; k < flags.length; k++) if (flags[k]) fell++;
    if (dims?.length !== 3) return this.add(site, flags.length, fell);
    const [B, H, S] = dims as [number, number, number];
    let any = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < S; i++) {
        let h = 0;
        while (h < H && !flags[(b * H + h) * S + i]) h++;
        if (h < H) any++;
      }
    }
    this.add(site, flags.length, fell, undefined, { checked: B * S, recomputed: any });
  }

  rates(): GuardFallbackRate[] {
    return [...this.sums].map(([site, { recomputed, ...s }]) => ({ site, ...s, rate: s.checked > 0 ? s.fellBack / s.checked : 0, ...(recomputed === undefined ? {} : { recomputed }) }));
  }
}

/**
 * Where a graph's guarded sites tell their fallback in attnopt's CPU executor: the lowered sites' flag values
 * (value name -> site label, to fetch) and the guarded attnopt::Attention nodes (node -> `site<k>`, in the order
 * attentionSites numbers them).
 */
export function cpuGuardProbes(graph: Graph): { flags: ReadonlyMap<string, string>; nodes: ReadonlyMap<Node, string> } {
  const flags = new Map<string, string>();
  for (const node of graph.nodes) {
    for (const v of node.outputs) {
      const label = guardFallbackLabel(v.name);
      if (label !== undefined) flags.set(v.name, label);
    }
  }
  const nodes = new Map<Node, string>();
  for (const { id, node } of attentionSites(graph)) if (attentionParams(node).guard !== undefined) nodes.set(node, id);
  return { flags, nodes };
}
