// A decision turned down after the chooser made it (a rewrite measured slower than the site as written): the
// site keeps its own spec, exact, with the chooser's record of what it tried kept for the report.
//   SiteDecision(chosen F, tier t)  ->  SiteDecision(chosen = the site's own spec, exact, reasonDense = why)

import { type AttentionSpec, printSpec } from '@attnopt/ir';
import type { SiteDecision } from './choose.js';

/** What a decision that keeps the site's own spec `baseline` says of it: the same function, error 0. */
export function keptFields(baseline: AttentionSpec) {
  return { chosenSpec: baseline, chosen: printSpec(baseline), exact: true, certified: true, guarantee: 'exact', bound: 0, measuredError: 0 } as const;
}

/** `d` turned down at a site whose own spec is `baseline`: kept as written, `reason` saying why. */
export function keepAsWritten(d: SiteDecision, baseline: AttentionSpec, reason: string): SiteDecision {
  const { guard: _guard, fallbackRate: _rate, confidence: _confidence, calibrationRows: _rows, groups: _groups, uniform: _uniform, ...rest } = d;
  return {
    ...rest,
    ...keptFields(baseline),
    flopsAfter: d.flopsBefore,
    timeAfter: d.timeBefore,
    reasonDense: reason,
  };
}
