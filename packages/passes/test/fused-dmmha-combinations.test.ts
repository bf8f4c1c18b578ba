// com.microsoft DecoderMaskedMultiHeadAttention (one decoding step) in seeded random combinations, each run in
// onnxruntime as written and, where the fused rules lift it, lowered to standard ops on the same inputs:
// - cross attention: key/value cached as [BB, N, L, H], mask_index [BB, L] or none, the qk output (present
//   outputs omitted, as exporters write it), mask_filter_value;
// - self attention over a shared buffer of M keys: past_sequence_length P in [0, M), beam_width 1 to 3 with
//   cache_indirection (entries < P drawn in [0, W), later ones out of range: onnxruntime never reads them), or
//   neither; the projection bias, scale, mask_index [BB, P + 1] and attention_bias [BB, N, 1, P + 1]; and the
//   inputs the rule refuses (mask_index or attention_bias with cache_indirection, the qk output of self
//   attention, a buffer not shared).
// One exception, stated: at P = 0 without cache_indirection onnxruntime's CPU kernel (1.30) leaves the decoding
// step for its generic path, which reads the whole M-key buffer and does not write the new key into the present
// outputs (they come back as the past; the output matches no set of keys: checked against the new key alone, the
// buffer, and the buffer with the new key); that case has no meaning to reproduce and is not drawn.
// Each draw is lifted and equal (helpers/fused-combinations.ts: fp32 |lowered - original| <= 1e-5 + 1e-6
// |original|; the relative part is for the qk output, whose masked scores sit near -1e4), or refused with one
// of the reasons listed below. Key 0 of every mask is kept (a row whose every key is masked holds logits near
// -1e4 only, where both sides round differently).

import { SplitMix64 } from '@attnopt/ir';
import type * as ort from 'onnxruntime-node';
import { combinationSuite, type Drawn } from './helpers/fused-combinations.js';

const [B, N, H] = [2, 2, 8];
const D = N * H;
const CASES = 120;

interface Case {
  readonly cross: boolean;
  readonly beams: number;
  readonly L: number;
  readonly M: number;
  readonly P: number;
  readonly beamInputs: boolean;
  readonly bias: boolean;
  readonly mask: boolean;
  readonly attentionBias: boolean;
  readonly qk: boolean;
  readonly shared: boolean;
  readonly scale?: number;
  readonly maskFilterValue?: number;
}

function drawCase(seed: number): Case {
  const rng = new SplitMix64(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)]!;
  const cross = pick([false, true]);
  const beams = pick([1, 2, 3]);
  const M = pick([6, 8]);
  const scale = pick([undefined, 0.3]);
  const maskFilterValue = pick([undefined, -1000]);
  const beamInputs = beams > 1 || pick([false, true]);
  // P = 0 without cache_indirection: onnxruntime's generic path (see the header), not drawn
  const first = !cross && !beamInputs ? 1 : 0;
  return {
    cross,
    beams,
    L: pick([5, 7]),
    M,
    P: first + Math.floor(rng.nextFloat() * (M - first)),
    beamInputs,
    bias: pick([false, true]),
    // self attention: the refused inputs now and then
    mask: cross ? pick([false, true]) : pick([false, false, true]),
    attentionBias: !cross && pick([false, false, true]),
    qk: cross ? pick([false, true]) : pick([false, false, false, false, true]),
    shared: cross || pick([true, true, true, true, false]),
    ...(scale !== undefined ? { scale } : {}),
    ...(maskFilterValue !== undefined ? { maskFilterValue } : {}),
  };
}

function caseGraph(c: Case): string {
  const BB = B * c.beams;
  const inputs: string[] = [];
  const args: string[] = [];
  const input = (name: string, type: string) => {
    inputs.push(`  input %${name}: ${type}`);
    args.push(`%${name}`);
  };
  const absent = () => args.push('_');
  input('q', `f32[${BB}, 1, ${D}]`);
  if (c.cross) [input('k', `f32[${BB}, ${N}, ${c.L}, ${H}]`), input('v', `f32[${BB}, ${N}, ${c.L}, ${H}]`)];
  else [input('k', `f32[${BB}, 1, ${D}]`), input('v', `f32[${BB}, 1, ${D}]`)];
  // onnxruntime takes a self-attention mask and bias over the P + 1 keys of this step
  if (c.mask) input('mask', `i32[${BB}, ${c.cross ? c.L : c.P + 1}]`);
  else absent();
  if (c.attentionBias) input('attention_bias', `f32[${BB}, ${N}, 1, ${c.P + 1}]`);
  else absent();
  if (c.cross) [absent(), absent(), absent()];
  else [input('past_k', `f32[${BB}, ${N}, ${c.M}, ${H}]`), input('past_v', `f32[${BB}, ${N}, ${c.M}, ${H}]`), input('past_len', 'i32[1]')];
  if (!c.cross && c.beamInputs) [input('beam_width', 'i32[1]'), input('cache_indirection', `i32[${B}, ${c.beams}, ${c.M}]`)];
  else [absent(), absent()];
  if (c.bias) input('bias', `f32[${3 * D}]`);
  while (args[args.length - 1] === '_') args.pop();
  const T = c.cross ? c.L : c.M;
  const outs = c.qk ? ['%y', '%present_k', '%present_v', `%qk: f32[${BB}, ${N}, 1, ${T}]`] : c.cross ? ['%y'] : ['%y', '%present_k', '%present_v'];
  const kept = c.cross ? ['%y', ...(c.qk ? ['%qk'] : [])] : ['%y', '%present_k', '%present_v', ...(c.qk ? ['%qk'] : [])];
  const attrs = [
    `num_heads = ${N}`,
    ...(c.shared ? ['past_present_share_buffer = 1'] : []),
    ...(c.scale ? [`scale = ${c.scale}`] : []),
    ...(c.maskFilterValue ? [`mask_filter_value = ${c.maskFilterValue}.0`] : []),
    ...(c.qk ? ['output_qk = 1'] : []),
  ];
  return `graph g {
${inputs.join('\n')}
  ${outs.join(', ')} = com.microsoft::DecoderMaskedMultiHeadAttention(${args.join(', ')}) {${attrs.join(', ')}}
  output ${kept.join(', ')}
}`;
}

/** The drawn node; masks of 0 / 1 (70% ones, key 0 kept), the step's lengths and beam state. */
function drawn(seed: number): Drawn {
  const c = drawCase(seed);
  const fill = (feeds: Record<string, ort.Tensor>, rng: SplitMix64) => {
    const T = c.cross ? c.L : c.P + 1;
    const mask = feeds.mask?.data as Int32Array | undefined;
    if (mask) for (let k = 0; k < mask.length; k++) mask[k] = k % T === 0 || rng.nextFloat() < 0.7 ? 1 : 0;
    if (feeds.past_len) (feeds.past_len.data as Int32Array)[0] = c.P;
    if (feeds.beam_width) (feeds.beam_width.data as Int32Array)[0] = c.beams;
    const ci = feeds.cache_indirection?.data as Int32Array | undefined;
    if (ci) for (let k = 0; k < ci.length; k++) ci[k] = k % c.M < c.P ? Math.floor(rng.nextFloat() * c.beams) : 77;
  };
  // cross attention with the qk output: the node omits its present outputs, as exporters write it
  const prepare = c.cross && c.qk ? (g: import('@attnopt/ir').Graph) => g.nodes[0]!.outputs.slice(1, 3).forEach((v) => v.annotations.set('onnx.omitted', v.name)) : undefined;
  return { text: caseGraph(c), opset: 21, fill, ...(prepare ? { prepare } : {}) };
}

combinationSuite('DecoderMaskedMultiHeadAttention in random combinations against onnxruntime', drawn, 7000, CASES, {
  // onnxruntime's CPU kernel takes self attention over a shared buffer only, and checks masks and biases of
  // self attention against lengths of its own with beams
  notRun: /past_present_share_buffer_ was false|'key_padding_mask' shape is not expected|'attention_bias' dimension 3 should be same as total_sequence_length/,
  refusals: [
    /mask_index \/ attention_bias in a beam-search step \(with cache_indirection\)/,
    /the qk output of self attention .* is not lifted/,
    /past without past_present_share_buffer/,
  ],
});
