// The float64 reference output of one collected site sample (what the site's Attention computes on the tensors
// calibration read), for the tests that check collected or executed site values.

import type { AttentionParams } from '@attnopt/ir';
import { referenceAttention, type Tensor64 } from '@attnopt/reference';
import type { SiteSample, SiteTensor } from '../../src/calibrate/index.js';

const f64 = (t: SiteTensor): Tensor64 => ({ shape: t.shape, data: Float64Array.from(t.data) });

export function referenceOfSample(params: AttentionParams, s: SiteSample): Tensor64 {
  const bias = s.bias === undefined ? undefined : s.bias.dtype === 'bool' ? { shape: s.bias.shape, data: Uint8Array.from(s.bias.data) } : f64(s.bias);
  return referenceAttention(params, {
    q: f64(s.q),
    ...(s.k ? { k: f64(s.k) } : {}),
    ...(s.v ? { v: f64(s.v) } : {}),
    ...(bias ? { bias } : {}),
    ...(s.pastKey ? { pastKey: f64(s.pastKey) } : {}),
    ...(s.pastValue ? { pastValue: f64(s.pastValue) } : {}),
  }).y;
}
