// The per-site lines `attnopt optimize` prints: a site whose rewrite the cost model predicts slower at one decode step
// says so, with the ratio of the two predictions; a site without that prediction says nothing of decoding.

import type { OptimizedSite } from '@attnopt/core';
import { describe, expect, it } from 'vitest';
import { formatSites } from '../src/optimize-command.js';

const site: OptimizedSite = {
  id: 'site0',
  chosen: 'causal(align=past) ∩ window(left=63, align=past)',
  exact: false,
  guarantee: 'guarded',
  bound: 1e-3,
  measuredError: 2e-5,
  flopsBefore: 4e9,
  flopsAfter: 1e9,
};

describe('formatSites', () => {
  it('says when one decode step is predicted slower, and by how much', () => {
    const line = formatSites([{ ...site, decodeStep: { keys: 1024, asWrittenSeconds: 5e-5, rewrittenSeconds: 2.5e-4 } }]);
    expect(line).toContain('[one decode step predicted 5.00x slower than as written: explain says more]');
  });
  it('says nothing of decoding without the prediction', () => {
    expect(formatSites([site])).not.toContain('decode');
  });
});
