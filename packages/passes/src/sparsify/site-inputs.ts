// What a site's optional inputs add to the cost of every form its lowering emits: a bias over queries and keys
// (n x n: every form lowers dense with it, adding or selecting it over the scores), and a lengths input (kvLength:
// every lowered form copies the keys and values over the padding first, lower/padding.ts). The chooser prices both
// (SparsifyOptions.siteInputs). A key bias (constant along the queries: ALiBi, a padding mask) is left out: the
// banded and block forms take it per key (key-bias.ts), which the cost model's bias option does not describe. A
// relative-position bias (T5's buckets, mask-analysis/relative-bias.ts) is 'relative': the banded form reads it on its
// offsets, every other form n x n.

import { AttentionInput, type Node } from '@attnopt/ir';
import type { CostOptions } from '@attnopt/cost';
import { hasKeyBias } from '../lower/key-bias.js';
import { relativeBiasOf } from '../lower/relative-bias.js';

/** The cost options of `node`'s bias and kvLength inputs: an n x n bias float or boolean by its dtype, or relative. */
export function siteCostInputs(node: Node): Pick<CostOptions, 'bias' | 'kvLength'> {
  const bias = node.inputs[AttentionInput.bias];
  const type = bias?.type;
  return {
    bias: bias === undefined || hasKeyBias(node) ? 'none' : relativeBiasOf(node) ? 'relative' : type?.kind === 'tensor' && type.dtype === 'bool' ? 'bool' : 'float',
    kvLength: node.inputs[AttentionInput.kvLength] !== undefined,
  };
}
