// The guarded tier's price measured at run time: a guarded site recomputes densely the query rows whose
// certificate exceeds its budget, and its lowering names those flags per site (`<node>/guard_falls_back.<site>`,
// bool [batch, heads, rows]). A verify-only copy of the optimized model lists the flags as extra outputs; run
// in onnxruntime on the verify inputs, it gives per site the share of (batch, head, row) triples that fell back.

import { tensorType } from '@attnopt/ir';
import { guardFallbackLabel } from '@attnopt/passes';
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
  const sums = new Map<string, { checked: number; fellBack: number }>();
  try {
    for (const sample of samples) {
      const feeds = Object.fromEntries(Object.entries(sample).map(([k, t]) => [k, toOrt(t, k)]));
      const out = await session.run(feeds, [...probes.keys()]);
      for (const [name, label] of probes) {
        const flags = out[name]!.data as ArrayLike<boolean | number>;
        let fell = 0;
        for (let k = 0; k < flags.length; k++) if (flags[k]) fell++;
        const prev = sums.get(label) ?? { checked: 0, fellBack: 0 };
        sums.set(label, { checked: prev.checked + flags.length, fellBack: prev.fellBack + fell });
      }
    }
  } finally {
    await session.release();
  }
  return [...sums].map(([site, s]) => ({ site, ...s, rate: s.checked > 0 ? s.fellBack / s.checked : 0 }));
}
