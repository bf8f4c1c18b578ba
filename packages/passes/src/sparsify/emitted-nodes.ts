// How many ONNX nodes a site's lowering emits for a form, counted on the lowering itself: a scratch copy of the
// site (its inputs' types, the form's spec and guard) lowered as lowerAttentionPass would. onnxruntime pays a
// dispatch per node; the cost model's kernel list names the kernels that move data and undercounts the index
// arithmetic around them (a guarded banded site: 290 kernels listed, 497 nodes emitted), which decides at the
// small sizes where the dispatches are a large share of the time.

import { type AttentionGuard, type AttentionParams, type AttentionSpec, attentionAttrs, attentionParams, type Node, printSpec } from '@attnopt/ir';
import { decodeRouteQueries, lowerAttention } from '../lower/attention.js';
import { DECODE_ROUTE_NODES } from '../lower/decode-route.js';
import { scratchSite } from './scratch-site.js';

/** Lowering opset of the count: the node count barely depends on it (Reduce axes as inputs or attributes). */
const COUNT_OPSET = 21;

/** Counts the nodes `node`'s lowering emits with a form and guard; undefined where that form does not lower there. */
export type EmittedNodes = (spec: AttentionSpec, guard?: AttentionGuard, heads?: { numHeads: number; kvNumHeads: number }) => number | undefined;

/** The counter for one Attention site (memoized per form, guard and head count). */
export function emittedNodeCounter(site: Node): EmittedNodes {
  const params = attentionParams(site);
  const memo = new Map<string, number | undefined>();
  return (spec, guard, heads) => {
    const key = `${printSpec(spec)}|${guard ? `${guard.budget}/${guard.blockSize}/${printSpec(guard.baseline)}` : ''}|${heads ? `${heads.numHeads}/${heads.kvNumHeads}` : ''}`;
    if (!memo.has(key)) memo.set(key, count(site, { ...params, ...(heads ?? {}), spec, ...(guard ? { guard } : { guard: undefined }) }));
    return memo.get(key);
  };
}

function count(site: Node, params: AttentionParams): number | undefined {
  try {
    return lowered(site, params);
  } catch {
    return undefined; // the form does not lower at this site: the cost model's kernel list counts instead
  }
}

function lowered(site: Node, params: AttentionParams): number {
  const { guard, ...rest } = params;
  const { graph, copy } = scratchSite(site, attentionAttrs(guard ? { ...rest, guard } : rest));
  // a call of the calibration's shape runs the form itself: its nodes, and the decode route's where it has one
  const route = decodeRouteQueries(copy, { opset: COUNT_OPSET }) === undefined ? 0 : DECODE_ROUTE_NODES;
  return lowerAttention(graph, copy, { opset: COUNT_OPSET, decodeQueries: 0 }).length + route;
}
