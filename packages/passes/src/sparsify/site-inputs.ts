// What a site's optional inputs add to the cost of every form its lowering emits: a bias input is added to (or,
// as a keep-mask, selects) the scores, and a lengths input (kvLength) makes every lowered form copy the keys and
// values over the padding first (lower/padding.ts). The chooser prices both (SparsifyOptions.siteInputs).

import { AttentionInput, type Node } from '@attnopt/ir';
import type { CostOptions } from '@attnopt/cost';

/** The cost options of `node`'s bias and kvLength inputs: the bias float or boolean by its dtype. */
export function siteCostInputs(node: Node): Pick<CostOptions, 'bias' | 'kvLength'> {
  const bias = node.inputs[AttentionInput.bias];
  const type = bias?.type;
  return {
    bias: bias === undefined ? 'none' : type?.kind === 'tensor' && type.dtype === 'bool' ? 'bool' : 'float',
    kvLength: node.inputs[AttentionInput.kvLength] !== undefined,
  };
}
