// Long-sequence attention models for the sparsify check: an input X [1, n, 256] and per layer Q/K/V
// projections (4 heads of 64) whose weights make attention mostly local plus a few sink tokens, by positional
// features: X's first 128 columns hold Fourier features of the position (head h owns 16 frequency pairs with
// its own width sigma_h), column 128 marks the first 4 tokens (sinks), column 129 is 1, the rest is content
// noise from the input seed. Then q_h . k_h = peak * mean_f cos(w_f (i - j)) + sink * [j < 4] + small noise:
// scores decay with |i - j| over about sigma_h positions. A `global` layer instead draws Q and K from the
// content alone (random projections): attention spread over every key, which sparsify must keep dense.
//
// The IR graph holds one causal Attention node per layer (layout bsd, the projections computed outside);
// `layerInputs` computes a layer's Q, K, V for a given input seed directly from the weights (no runtime needed).

import { type AttentionParams, attentionNode, causal, gaussian, Graph, tensorType, Value } from '@attnopt/ir';

export const HIDDEN = 256;
export const HEADS = 4;
export const HEAD_DIM = 64;
const POS = 128;
const SINK_COL = 128;
const ONE_COL = 129;
const CONTENT0 = 130;

export interface LayerSpec {
  readonly kind: 'local' | 'global';
  /** Width of each head's positional kernel (local layers). */
  readonly sigmas: readonly number[];
  /** Score at distance 0 (local layers). */
  readonly peak: number;
  /** Score bonus of the sink tokens (local layers). */
  readonly sink: number;
  readonly seed: number;
}

export interface LongAttentionModel {
  readonly n: number;
  readonly layers: readonly LayerSpec[];
  /** Per layer: Wq, Wk, Wv, each HIDDEN x (HEADS * HEAD_DIM) row-major. */
  readonly weights: readonly { wq: Float64Array; wk: Float64Array; wv: Float64Array }[];
  /** Frequencies of the positional features (HEADS x 16 per layer: layer-independent X needs one set). */
  readonly frequencies: Float64Array;
  readonly params: AttentionParams;
  readonly graph: Graph;
}

export const DEFAULT_LAYERS: readonly LayerSpec[] = [
  { kind: 'local', sigmas: [8, 32, 96, 160], peak: 24, sink: 18, seed: 11 },
  { kind: 'global', sigmas: [], peak: 0, sink: 0, seed: 12 },
];

/** The positional frequencies: head h's 16 frequencies ~ N(0, 1 / sigma_h^2) of the first local layer. */
function frequencies(layers: readonly LayerSpec[]): Float64Array {
  const local = layers.find((l) => l.kind === 'local');
  const g = gaussian(1, HEADS * 16);
  return g.map((x, k) => x / (local ? local.sigmas[Math.floor(k / 16)]! : 8));
}

/** The model at n tokens; with `symbolicLength` its graph takes any sequence length (dim `seq`), n then only sizes the inputs made here. */
export function longAttentionModel(n = 4096, layers: readonly LayerSpec[] = DEFAULT_LAYERS, options: { symbolicLength?: boolean } = {}): LongAttentionModel {
  const W = HEADS * HEAD_DIM;
  const scale = 1 / Math.sqrt(HEAD_DIM);
  const weights = layers.map((layer) => {
    const wq = new Float64Array(HIDDEN * W);
    const wk = new Float64Array(HIDDEN * W);
    const wv = new Float64Array(HIDDEN * W);
    const rnd = gaussian(layer.seed, 3 * (HIDDEN - CONTENT0) * W);
    const content = HIDDEN - CONTENT0;
    for (let r = 0; r < content; r++) {
      for (let c = 0; c < W; c++) {
        const x = (CONTENT0 + r) * W + c;
        wv[x] = rnd[r * W + c]! / Math.sqrt(content);
        // small content mixing in Q and K (local layers) or all of Q and K (global layers)
        const qk = layer.kind === 'global' ? 1.2 / Math.sqrt(content) : 0.02 / Math.sqrt(content);
        wq[x] = qk * rnd[(content + r) * W + c]!;
        wk[x] = qk * rnd[(2 * content + r) * W + c]!;
      }
    }
    if (layer.kind === 'local') {
      for (let h = 0; h < HEADS; h++) {
        // scale q . k over the 32 positional dims = scale a^2 mean_f cos(w_f (i - j)): peak at i = j
        const a = Math.sqrt(layer.peak / scale);
        for (let t = 0; t < 32; t++) {
          wq[(32 * h + t) * W + h * HEAD_DIM + t] = a;
          wk[(32 * h + t) * W + h * HEAD_DIM + t] = a;
        }
        const b = Math.sqrt(layer.sink / scale);
        wq[ONE_COL * W + h * HEAD_DIM + 32] = b;
        wk[SINK_COL * W + h * HEAD_DIM + 32] = b;
      }
    }
    return { wq, wk, wv };
  });
  const params: AttentionParams = { numHeads: HEADS, kvNumHeads: HEADS, headDim: HEAD_DIM, vHeadDim: HEAD_DIM, scale, softcap: 0, layout: 'bsd', spec: causal() };
  const graph = new Graph('long-attention');
  const seq = options.symbolicLength ? 'seq' : n;
  layers.forEach((_, l) => {
    const [q, k, v] = ['q', 'k', 'v'].map((x) => graph.addInput(new Value(`${x}${l}`, tensorType('f32', [1, seq, W]))));
    const y = new Value(`y${l}`, tensorType('f32', [1, seq, W]));
    graph.addNode(attentionNode(params, { q: q!, k: k!, v: v! }, { y }, `attention${l}`));
    graph.outputs.push(y);
  });
  return { n, layers, weights, frequencies: frequencies(layers), params, graph };
}

/** X [1, n, HIDDEN] for an input seed: positional features, sink marker, 1, content noise. */
export function inputX(model: LongAttentionModel, seed: number): Float64Array {
  const { n, frequencies: w } = model;
  const x = new Float64Array(n * HIDDEN);
  const noise = gaussian(seed, n * (HIDDEN - CONTENT0));
  for (let i = 0; i < n; i++) {
    const row = i * HIDDEN;
    for (let f = 0; f < POS / 2; f++) {
      x[row + 2 * f] = Math.cos(w[f]! * i) / Math.sqrt(16);
      x[row + 2 * f + 1] = Math.sin(w[f]! * i) / Math.sqrt(16);
    }
    x[row + SINK_COL] = i < 4 ? 1 : 0;
    x[row + ONE_COL] = 1;
    for (let c = CONTENT0; c < HIDDEN; c++) x[row + c] = noise[i * (HIDDEN - CONTENT0) + c - CONTENT0]!;
  }
  return x;
}

/** Q, K, V [1, n, HEADS * HEAD_DIM] of layer l for input X (float32, as a runtime would hand them over). */
export function layerInputs(model: LongAttentionModel, l: number, x: Float64Array): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const W = HEADS * HEAD_DIM;
  const { wq, wk, wv } = model.weights[l]!;
  const out = [new Float32Array(model.n * W), new Float32Array(model.n * W), new Float32Array(model.n * W)] as const;
  const acc = new Float64Array(W);
  [wq, wk, wv].forEach((wm, m) => {
    for (let i = 0; i < model.n; i++) {
      acc.fill(0);
      for (let r = 0; r < HIDDEN; r++) {
        const xv = x[i * HIDDEN + r]!;
        if (xv === 0) continue;
        for (let c = 0; c < W; c++) acc[c]! += xv * wm[r * W + c]!;
      }
      out[m].set(acc, i * W);
    }
  });
  return { q: out[0], k: out[1], v: out[2] };
}
