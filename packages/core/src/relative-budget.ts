// A budget relative to a site's output scale, turned into the absolute budget sparsify works with.
// The scale of a site is the largest range of one value channel on the calibration data:
//   scale = max over samples, batch rows, heads and channels c of (max_j V[j, c] - min_j V[j, c]).
// Every attention output row is a convex combination of the value rows, so the range of each output channel lies
// within that of V, and BOUNDS.md (a) gives |o_c - o_S,c| <= m * (max_j v_jc - min_j v_jc) for dropped mass m:
// a relative budget r is the absolute budget r * scale, i.e. about "drop at most a fraction r of the softmax mass
// where V spans its full calibration range".

import { attentionParams, type Node } from '@attnopt/ir';
import { headData, type SiteCalibration } from '@attnopt/passes';

/** The site's value scale on its calibration samples (0 when it has none). */
export function valueScale(node: Node, calibration: SiteCalibration): number {
  const params = attentionParams(node);
  let scale = 0;
  for (const sample of calibration.samples) {
    const batch = sample.q.shape[0] ?? 1;
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < params.numHeads; h++) {
        const { v, nk, dv } = headData(params, sample, b, h);
        for (let c = 0; c < dv; c++) {
          let lo = Infinity;
          let hi = -Infinity;
          for (let j = 0; j < nk; j++) {
            const x = v[j * dv + c]!;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
          }
          if (hi - lo > scale) scale = hi - lo;
        }
      }
    }
  }
  return Number.isFinite(scale) ? scale : 0;
}
