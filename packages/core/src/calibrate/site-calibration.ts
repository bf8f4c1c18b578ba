// A site's collected tensors as the sparsify pass reads them (float tensors; a boolean mask as a 0 / -inf
// bias): the one conversion optimize, explain and the report apply before sparsify, so their decisions agree.

import type { SiteCalibration } from '@attnopt/passes';
import type { SiteSample, SiteSamples } from './site-samples.js';

export function sampleForPasses(x: SiteSample): SiteCalibration['samples'][number] {
  const bias =
    x.bias === undefined
      ? undefined
      : x.bias.dtype === 'bool'
        ? { shape: x.bias.shape, data: Float64Array.from(x.bias.data, (b) => (b ? 0 : -Infinity)) }
        : { shape: x.bias.shape, data: x.bias.data };
  return {
    q: { shape: x.q.shape, data: x.q.data },
    ...(x.k ? { k: { shape: x.k.shape, data: x.k.data } } : {}),
    ...(x.v ? { v: { shape: x.v.shape, data: x.v.data } } : {}),
    ...(bias ? { bias } : {}),
    // the cache: the chooser evaluates each form over past ⊕ new keys, query i at past + i
    ...(x.pastKey && x.pastValue ? { pastKey: { shape: x.pastKey.shape, data: x.pastKey.data }, pastValue: { shape: x.pastValue.shape, data: x.pastValue.data } } : {}),
  };
}

export const siteCalibration = (s: SiteSamples): SiteCalibration => ({ id: s.id, samples: s.samples.map(sampleForPasses) });
