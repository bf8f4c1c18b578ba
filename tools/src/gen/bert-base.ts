// A BERT-base-shaped ONNX model with seeded random fp32 weights, in the decomposed form PyTorch's exporter
// writes for Hugging Face's BertModel at opset 17: Gather embeddings + LayerNormalization; per layer
// MatMul+Add projections, Reshape/Transpose to heads, MatMul Q.K^T, Div by sqrt(head dim), Add of the
// additive mask bias (Unsqueeze/Cast/Sub/Mul of attention_mask, -10000 as older transformers write it),
// Softmax, MatMul with V, Transpose/Reshape back, output projection, residual Add, LayerNormalization,
// FFN MatMul+Add + Gelu in its Erf form (opset 17 has no Gelu) + MatMul+Add, residual, LayerNormalization.
// Inputs input_ids / attention_mask [batch_size, sequence_length] int64; output last_hidden_state
// [batch_size, sequence_length, hidden] fp32. Defaults give bert-base-uncased's shapes (about 436 MB).
//
//   npx tsx --conditions=@attnopt/source tools/src/gen/bert-base.ts OUT.onnx [--layers N] [--hidden H]
//       [--heads A] [--intermediate I] [--vocab V] [--max-positions P] [--seed S]
//
// writes OUT.onnx and its weights beside it in OUT.onnx.data (the codec's writeModel, external data).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AttributeType,
  DataType,
  writeModel,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '@attnopt/onnx';

export interface BertOptions {
  /** Encoder layers (default 12). */
  layers?: number;
  /** Hidden size (default 768). */
  hidden?: number;
  /** Attention heads; must divide hidden (default 12). */
  heads?: number;
  /** FFN inner size (default 4 * hidden, 3072 for BERT-base). */
  intermediate?: number;
  /** Word-piece vocabulary (default 30522). */
  vocab?: number;
  /** Position embeddings, the longest sequence the model takes (default 512). */
  maxPositions?: number;
  /** Token-type (segment) vocabulary (default 2). */
  typeVocab?: number;
  /** LayerNormalization epsilon (default 1e-12). */
  epsilon?: number;
  /** Seed of the weight stream (default 1). */
  seed?: number;
  /** Standard deviation of weights (uniform with that deviation; default 0.02, BERT's initializer range). */
  initRange?: number;
}

export type ResolvedBertOptions = Required<BertOptions>;

export function resolveBertOptions(options: BertOptions = {}): ResolvedBertOptions {
  const hidden = options.hidden ?? 768;
  const o: ResolvedBertOptions = {
    layers: options.layers ?? 12,
    hidden,
    heads: options.heads ?? 12,
    intermediate: options.intermediate ?? 4 * hidden,
    vocab: options.vocab ?? 30522,
    maxPositions: options.maxPositions ?? 512,
    typeVocab: options.typeVocab ?? 2,
    epsilon: options.epsilon ?? 1e-12,
    seed: options.seed ?? 1,
    initRange: options.initRange ?? 0.02,
  };
  for (const key of ['layers', 'hidden', 'heads', 'intermediate', 'vocab', 'maxPositions', 'typeVocab'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${o[key]}`);
  }
  if (o.hidden % o.heads !== 0) throw new RangeError(`heads (${o.heads}) must divide hidden (${o.hidden})`);
  return o;
}

/** Bytes of fp32 weights (and int64 buffers) the model holds, for sizing without building it. */
export function bertBaseWeightBytes(options: BertOptions = {}): number {
  const o = resolveBertOptions(options);
  const h = o.hidden;
  const embeddings = (o.vocab + o.maxPositions + o.typeVocab) * h + 2 * h;
  const layer = 4 * (h * h + h) + 2 * (h * o.intermediate) + o.intermediate + h + 4 * h;
  return 4 * (embeddings + o.layers * layer) + 2 * 8 * o.maxPositions;
}

/**
 * xorshift32 filling a Float32Array with uniform values of standard deviation `std` (uniform on
 * [-std*sqrt 3, std*sqrt 3)): about 1 ns a value, the same numbers on every machine for a seed.
 */
export class XorShift32 {
  private state: number;

  constructor(seed: number) {
    // SplitMix-style scramble so that small seeds (0, 1, 2...) give unrelated streams; state must not be 0.
    let s = (seed ^ 0x9e3779b9) >>> 0;
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
    s = (s ^ (s >>> 16)) >>> 0;
    this.state = s === 0 ? 0x6d2b79f5 : s;
  }

  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  fillUniform(out: Float32Array, std: number, mean = 0): Float32Array {
    const scale = (2 * std * Math.sqrt(3)) / 2 ** 32;
    const offset = mean - std * Math.sqrt(3);
    let x = this.state;
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = (x >>> 0) * scale + offset;
    }
    this.state = x >>> 0 || 0x6d2b79f5;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------
// Small builders over the codec's plain message types.

const bytesOf = (a: Float32Array | BigInt64Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const dimsOf = (dims: readonly number[]): BigInt64Array => BigInt64Array.from(dims, (d) => BigInt(d));

function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  return { dims: dimsOf(dims), dataType: DataType.FLOAT, name, rawData: bytesOf(data) };
}

function int64Tensor(name: string, dims: readonly number[], data: readonly number[] | BigInt64Array): TensorProto {
  const values = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (d) => BigInt(d));
  return { dims: dimsOf(dims), dataType: DataType.INT64, name, rawData: bytesOf(values) };
}

const attrInt = (name: string, i: number): AttributeProto => ({ name, i: BigInt(i), type: AttributeType.INT });
const attrFloat = (name: string, f: number): AttributeProto => ({ name, f, type: AttributeType.FLOAT });
const attrInts = (name: string, ints: readonly number[]): AttributeProto => ({
  name,
  ints: dimsOf(ints),
  type: AttributeType.INTS,
});

function valueInfo(name: string, elemType: number, dims: readonly (number | string)[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: BigInt(d) } : { dimParam: d })) },
      },
    },
  };
}

class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly constants = new Map<string, string>();
  private readonly names = new Set<string>();

  constructor(private readonly rng: XorShift32) {}

  /** One node named like PyTorch 2's exporter (`/scope/Op`), its single output `/scope/Op_output_0`. */
  op(scope: string, opType: string, inputs: string[], attribute: AttributeProto[] = [], outputs = 1): string[] {
    const name = `${scope}/${opType}`;
    const out = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    if (this.names.has(name)) throw new Error(`internal: node name ${name} used twice`);
    this.names.add(name);
    const node: NodeProto = { input: inputs, output: out, name, opType };
    if (attribute.length > 0) node.attribute = attribute;
    this.nodes.push(node);
    return out;
  }

  op1(scope: string, opType: string, inputs: string[], attribute: AttributeProto[] = []): string {
    return this.op(scope, opType, inputs, attribute)[0]!;
  }

  /** A random fp32 weight. */
  weight(name: string, dims: readonly number[], std: number, mean = 0): string {
    const n = dims.reduce((a, b) => a * b, 1);
    this.initializers.push(floatTensor(name, dims, this.rng.fillUniform(new Float32Array(n), std, mean)));
    return name;
  }

  filled(name: string, dims: readonly number[], value: number): string {
    const n = dims.reduce((a, b) => a * b, 1);
    this.initializers.push(floatTensor(name, dims, new Float32Array(n).fill(value)));
    return name;
  }

  /** A shared constant initializer (scalars, shapes, axes), as constant folding leaves them. */
  constFloat(value: number): string {
    return this.shared(`f:${value}`, () => floatTensor(`onnx::Const_f${this.constants.size}`, [], Float32Array.of(value)));
  }

  constInt64(values: readonly number[], scalar = false): string {
    return this.shared(`i:${scalar}:${values.join(',')}`, () =>
      int64Tensor(`onnx::Const_i${this.constants.size}`, scalar ? [] : [values.length], values),
    );
  }

  private shared(key: string, make: () => TensorProto): string {
    let name = this.constants.get(key);
    if (name === undefined) {
      const t = make();
      name = t.name!;
      this.constants.set(key, name);
      this.initializers.push(t);
    }
    return name;
  }
}

/**
 * The model as a ModelProto; weights are inline raw_data (write it with writeModel and externalData to get
 * the side file). Tensor names follow transformers' state dict (`embeddings.word_embeddings.weight`,
 * `encoder.layer.0.attention.self.query.weight`...), linear weights stored [in, out] as MatMul takes them.
 */
export function bertBaseModel(options: BertOptions = {}): ModelProto {
  const o = resolveBertOptions(options);
  const { hidden: h, heads, intermediate, epsilon } = o;
  const headDim = h / heads;
  const std = o.initRange;
  const g = new GraphBuilder(new XorShift32(o.seed));
  const BATCH = 'batch_size';
  const SEQ = 'sequence_length';

  // Embeddings: word + token type + position, then LayerNormalization.
  const word = g.weight('embeddings.word_embeddings.weight', [o.vocab, h], std);
  const pos = g.weight('embeddings.position_embeddings.weight', [o.maxPositions, h], std);
  const type = g.weight('embeddings.token_type_embeddings.weight', [o.typeVocab, h], std);
  const posIds = 'embeddings.position_ids';
  g.initializers.push(int64Tensor(posIds, [1, o.maxPositions], Array.from({ length: o.maxPositions }, (_, i) => i)));
  const typeIds = 'embeddings.token_type_ids';
  g.initializers.push(int64Tensor(typeIds, [1, o.maxPositions], new BigInt64Array(o.maxPositions)));

  const shape = g.op1('/embeddings', 'Shape', ['input_ids']);
  const seqLen = g.op1('/embeddings', 'Gather', [shape, g.constInt64([1], true)], [attrInt('axis', 0)]);
  const seqLen1 = g.op1('/embeddings', 'Unsqueeze', [seqLen, g.constInt64([0])]);
  const zero1 = g.constInt64([0]);
  const one1 = g.constInt64([1]);
  const posSlice = g.op1('/embeddings/position_ids', 'Slice', [posIds, zero1, seqLen1, one1, one1]);
  const typeSlice = g.op1('/embeddings/token_type_ids', 'Slice', [typeIds, zero1, seqLen1, one1, one1]);
  const wordEmb = g.op1('/embeddings/word_embeddings', 'Gather', [word, 'input_ids']);
  const typeEmb = g.op1('/embeddings/token_type_embeddings', 'Gather', [type, typeSlice]);
  const sum1 = g.op1('/embeddings', 'Add', [wordEmb, typeEmb]);
  const posEmb = g.op1('/embeddings/position_embeddings', 'Gather', [pos, posSlice]);
  const sum2 = g.op1('/embeddings/add_1', 'Add', [sum1, posEmb]);
  const lnAttrs = [attrInt('axis', -1), attrFloat('epsilon', epsilon)];
  let x = g.op1('/embeddings/LayerNorm', 'LayerNormalization', [
    sum2,
    g.filled('embeddings.LayerNorm.weight', [h], 1),
    g.filled('embeddings.LayerNorm.bias', [h], 0),
  ], lnAttrs);

  // Additive mask bias: (1 - mask[:, None, None, :].float()) * -10000, [batch, 1, 1, seq].
  const maskU = g.op1('', 'Unsqueeze', ['attention_mask', g.constInt64([1])]);
  const maskU2 = g.op1('/Unsqueeze_1', 'Unsqueeze', [maskU, g.constInt64([2])]);
  const maskF = g.op1('', 'Cast', [maskU2], [attrInt('to', DataType.FLOAT)]);
  const inverted = g.op1('', 'Sub', [g.constFloat(1), maskF]);
  const maskBias = g.op1('', 'Mul', [inverted, g.constFloat(-10000)]);

  const toHeads = g.constInt64([0, 0, heads, headDim]);
  const fromHeads = g.constInt64([0, 0, h]);
  const linear = (scope: string, param: string, input: string, inDim: number, outDim: number): string => {
    const w = g.weight(`${param}.weight`, [inDim, outDim], std);
    const b = g.weight(`${param}.bias`, [outDim], std);
    const mm = g.op1(scope, 'MatMul', [input, w]);
    return g.op1(scope, 'Add', [b, mm]);
  };
  const layerNorm = (scope: string, param: string, input: string): string =>
    g.op1(scope, 'LayerNormalization', [input, g.filled(`${param}.weight`, [h], 1), g.filled(`${param}.bias`, [h], 0)], lnAttrs);

  for (let l = 0; l < o.layers; l++) {
    const S = `/encoder/layer.${l}`;
    const P = `encoder.layer.${l}`;
    const q = linear(`${S}/attention/self/query`, `${P}.attention.self.query`, x, h, h);
    const k = linear(`${S}/attention/self/key`, `${P}.attention.self.key`, x, h, h);
    const v = linear(`${S}/attention/self/value`, `${P}.attention.self.value`, x, h, h);
    const self = `${S}/attention/self`;
    const qh = g.op1(`${self}/query_heads`, 'Transpose', [g.op1(`${self}/query_heads`, 'Reshape', [q, toHeads])], [
      attrInts('perm', [0, 2, 1, 3]),
    ]);
    // key.permute(0, 2, 1, 3).transpose(-1, -2): the exporter folds both into one Transpose.
    const kt = g.op1(`${self}/key_heads`, 'Transpose', [g.op1(`${self}/key_heads`, 'Reshape', [k, toHeads])], [
      attrInts('perm', [0, 2, 3, 1]),
    ]);
    const vh = g.op1(`${self}/value_heads`, 'Transpose', [g.op1(`${self}/value_heads`, 'Reshape', [v, toHeads])], [
      attrInts('perm', [0, 2, 1, 3]),
    ]);
    const scores = g.op1(self, 'MatMul', [qh, kt]);
    const scaled = g.op1(self, 'Div', [scores, g.constFloat(Math.sqrt(headDim))]);
    const masked = g.op1(self, 'Add', [scaled, maskBias]);
    const probs = g.op1(self, 'Softmax', [masked], [attrInt('axis', -1)]);
    const context = g.op1(`${self}/context`, 'MatMul', [probs, vh]);
    const merged = g.op1(`${self}/context`, 'Reshape', [
      g.op1(`${self}/context`, 'Transpose', [context], [attrInts('perm', [0, 2, 1, 3])]),
      fromHeads,
    ]);
    const attnOut = linear(`${S}/attention/output/dense`, `${P}.attention.output.dense`, merged, h, h);
    const res1 = g.op1(`${S}/attention/output`, 'Add', [attnOut, x]);
    const ln1 = layerNorm(`${S}/attention/output/LayerNorm`, `${P}.attention.output.LayerNorm`, res1);

    // FFN with exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)), as torch.onnx writes nn.GELU() at opset < 20.
    const inter = linear(`${S}/intermediate/dense`, `${P}.intermediate.dense`, ln1, h, intermediate);
    const act = `${S}/intermediate/intermediate_act_fn`;
    const erf = g.op1(act, 'Erf', [g.op1(act, 'Div', [inter, g.constFloat(Math.SQRT2)])]);
    const gelu = g.op1(`${act}/mul_1`, 'Mul', [g.op1(act, 'Mul', [inter, g.op1(act, 'Add', [erf, g.constFloat(1)])]), g.constFloat(0.5)]);
    const ffnOut = linear(`${S}/output/dense`, `${P}.output.dense`, gelu, intermediate, h);
    const res2 = g.op1(`${S}/output`, 'Add', [ffnOut, ln1]);
    x = layerNorm(`${S}/output/LayerNorm`, `${P}.output.LayerNorm`, res2);
  }
  // The last LayerNormalization writes the graph output under transformers' name for it.
  const last = g.nodes[g.nodes.length - 1]!;
  if (last.output?.[0] !== x) throw new Error('internal: the last node does not produce the encoder output');
  last.output = ['last_hidden_state'];

  return {
    irVersion: 8n,
    producerName: 'pytorch',
    producerVersion: '2.1.0',
    docString: `attnopt tools/src/gen/bert-base.ts: BERT-shaped encoder, random weights (seed ${o.seed})`,
    graph: {
      node: g.nodes,
      name: 'main_graph',
      initializer: g.initializers,
      input: [valueInfo('input_ids', DataType.INT64, [BATCH, SEQ]), valueInfo('attention_mask', DataType.INT64, [BATCH, SEQ])],
      output: [valueInfo('last_hidden_state', DataType.FLOAT, [BATCH, SEQ, h])],
    },
    opsetImport: [{ domain: '', version: 17n }],
  };
}

/** Builds the model and writes it with its weights in `<file>.data` beside it. */
export function writeBertBase(file: string, options: BertOptions = {}): ModelProto {
  const model = bertBaseModel(options);
  writeModel(file, model, { externalData: {} });
  return model;
}

const USAGE =
  'usage: bert-base.ts OUT.onnx [--layers N] [--hidden H] [--heads A] [--intermediate I] [--vocab V] [--max-positions P] [--seed S]';

const FLAGS: Record<string, keyof BertOptions> = {
  '--layers': 'layers',
  '--hidden': 'hidden',
  '--heads': 'heads',
  '--intermediate': 'intermediate',
  '--vocab': 'vocab',
  '--max-positions': 'maxPositions',
  '--seed': 'seed',
};

/** Parses the CLI's arguments (after the script name). */
export function parseBertArgs(args: readonly string[]): { out: string; options: BertOptions } {
  let out: string | undefined;
  const options: BertOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const key = FLAGS[flag];
    if (key !== undefined) {
      const text = inline ?? args[++i];
      const value = Number(text);
      if (text === undefined || !Number.isSafeInteger(value)) throw new Error(`${flag} needs an integer\n${USAGE}`);
      options[key] = value;
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${arg}\n${USAGE}`);
    } else if (out === undefined) {
      out = arg;
    } else {
      throw new Error(`one output file only\n${USAGE}`);
    }
  }
  if (out === undefined) throw new Error(USAGE);
  return { out, options };
}

function main(): void {
  let parsed: { out: string; options: BertOptions };
  try {
    parsed = parseBertArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exitCode = 2;
    return;
  }
  const started = performance.now();
  writeBertBase(parsed.out, parsed.options);
  const mb = (bertBaseWeightBytes(parsed.options) / 2 ** 20).toFixed(1);
  const s = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`wrote ${parsed.out} (+ ${path.basename(parsed.out)}.data, ${mb} MiB of weights) in ${s} s`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
