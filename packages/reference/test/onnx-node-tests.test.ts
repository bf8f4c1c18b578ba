// The ONNX backend node tests of the `Attention` operator (opset 23/24): every test_attention_* folder that
// is not an `_expanded` twin runs through referenceAttention and must reproduce every stored output.
// fp32 cases: |got - want| <= 1e-5 + 1e-5 |want|. fp16 cases: a per-element rounding-error bound derived
// below (the stored fp16 outputs were computed by numpy in fp16, or in fp32 for the softmax when
// softmax_precision says so). NaN and +-Inf are compared exactly, never as close.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { type AttentionParams, causal, dense, dtypeFromOnnx, type DType, scoresModeFromOnnx, Tensor } from '@attnopt/ir';
import {
  type BoolTensor,
  compareArrays,
  outputFromBhsd,
  referenceAttention,
  type ReferenceInputs,
  type ReferenceOutputs,
  type Tensor64,
  transpose,
} from '../src/index.js';

const { onnx } = onnxProto;

const packageDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const testsDir = path.resolve(packageDir, '../../../shared/fixtures/onnx/onnx-node-tests');

interface Decoded {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: number[];
  readonly values: Float64Array;
}

/** A TensorProto file: raw_data or the typed fields (fp16 and bool live in int32_data, int64 as Long). */
function readTensor(file: string): Decoded {
  const t = onnx.TensorProto.decode(fs.readFileSync(file));
  const dtype = dtypeFromOnnx(t.dataType);
  if (dtype === undefined) throw new Error(`${file}: unknown data type ${t.dataType}`);
  const shape = t.dims.map((d) => Number(d.toString()));
  const n = shape.reduce((a, b) => a * b, 1);
  let values: Float64Array;
  if (t.rawData && t.rawData.length > 0) {
    values = Tensor.fromBytes(dtype, shape, new Uint8Array(t.rawData)).toFloat64();
  } else {
    const bits = (): number[] => t.int32Data.map(Number);
    const typed: ArrayLike<number> =
      dtype === 'f32' ? t.floatData
      : dtype === 'f64' ? t.doubleData
      : dtype === 'i64' ? t.int64Data.map((l) => Number(l.toString()))
      : dtype === 'f16' || dtype === 'bool' || dtype === 'i32' ? bits() // fp16: bit patterns, decoded below
      : [];
    values = Float64Array.from(typed);
    if (dtype === 'f16') {
      const bytes = new Uint8Array(2 * n);
      const view = new DataView(bytes.buffer);
      values.forEach((h, k) => view.setUint16(2 * k, h, true));
      values = Tensor.fromBytes('f16', shape, bytes).toFloat64();
    }
  }
  if (values.length !== n) throw new Error(`${file}: ${values.length} values for shape [${shape.join(', ')}]`);
  return { name: t.name ?? '', dtype, shape, values };
}

interface Case {
  readonly name: string;
  readonly params: AttentionParams;
  readonly inputs: ReferenceInputs;
  readonly dtype: DType;
  /** Output slot (0 Y, 1 present_key, 2 present_value, 3 qk_matmul_output) -> stored tensor. */
  readonly expected: Map<number, Decoded>;
}

const ATTRS = new Set(['is_causal', 'kv_num_heads', 'q_num_heads', 'qk_matmul_output_mode', 'scale', 'softcap', 'softmax_precision']);

function loadCase(name: string): Case {
  const dir = path.join(testsDir, name);
  const model = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, 'model.onnx')));
  const nodes = model.graph?.node ?? [];
  if (nodes.length !== 1 || nodes[0]!.opType !== 'Attention') throw new Error(`${name}: expected one Attention node`);
  const node = nodes[0]!;
  const attrs = new Map<string, number>();
  for (const a of node.attribute ?? []) {
    if (!ATTRS.has(a.name ?? '')) throw new Error(`${name}: unmapped Attention attribute ${a.name}`);
    attrs.set(a.name!, a.type === onnx.AttributeProto.AttributeType.FLOAT ? a.f! : Number(a.i!.toString()));
  }
  const dataDir = path.join(dir, 'test_data_set_0');
  const files = fs.readdirSync(dataDir);
  const graphInputs = (model.graph!.input ?? []).map((v) => v.name);
  // node input slot -> tensor (the data set's input_k follows the graph inputs' order)
  const bySlot = new Map<number, Decoded>();
  (node.input ?? []).forEach((inName, slot) => {
    if (inName === '') return;
    const k = graphInputs.indexOf(inName);
    if (k < 0) throw new Error(`${name}: node input ${inName} is not a graph input`);
    bySlot.set(slot, readTensor(path.join(dataDir, `input_${k}.pb`)));
  });
  const graphOutputs = (model.graph!.output ?? []).map((v) => v.name);
  const expected = new Map<number, Decoded>();
  (node.output ?? []).forEach((outName, slot) => {
    if (outName === '') return;
    const k = graphOutputs.indexOf(outName);
    if (k < 0 || !files.includes(`output_${k}.pb`)) throw new Error(`${name}: no stored output for ${outName}`);
    expected.set(slot, readTensor(path.join(dataDir, `output_${k}.pb`)));
  });
  const q = bySlot.get(0)!;
  const k = bySlot.get(1)!;
  const v = bySlot.get(2)!;
  const t64 = (d: Decoded): Tensor64 => ({ shape: d.shape, data: d.values });
  const rank3 = q.shape.length === 3;
  const numHeads = rank3 ? attrs.get('q_num_heads')! : q.shape[1]!;
  const kvNumHeads = rank3 ? attrs.get('kv_num_heads')! : k.shape[1]!;
  const headDim = rank3 ? q.shape[2]! / numHeads : q.shape[3]!;
  const vHeadDim = rank3 ? v.shape[2]! / kvNumHeads : v.shape[3]!;
  const precision = attrs.get('softmax_precision');
  const params: AttentionParams = {
    numHeads,
    kvNumHeads,
    headDim,
    vHeadDim,
    scale: attrs.get('scale') ?? 1 / Math.sqrt(headDim),
    softcap: attrs.get('softcap') ?? 0,
    layout: rank3 ? 'bsd' : 'bhsd',
    spec: attrs.get('is_causal') ? causal('past') : dense,
    ...(expected.has(3) ? { scoresMode: scoresModeFromOnnx(attrs.get('qk_matmul_output_mode') ?? 0) } : {}),
    ...(precision !== undefined ? { softmaxPrecision: dtypeFromOnnx(precision)! } : {}),
  };
  const mask = bySlot.get(3);
  const inputs: ReferenceInputs = {
    q: t64(q),
    k: t64(k),
    v: t64(v),
    ...(mask === undefined
      ? {}
      : { bias: mask.dtype === 'bool' ? ({ shape: mask.shape, data: Uint8Array.from(mask.values) } satisfies BoolTensor) : t64(mask) }),
    ...(bySlot.has(4) ? { pastKey: t64(bySlot.get(4)!) } : {}),
    ...(bySlot.has(5) ? { pastValue: t64(bySlot.get(5)!) } : {}),
    ...(bySlot.has(6) ? { kvLength: bySlot.get(6)!.values } : {}),
  };
  for (const slot of bySlot.keys()) if (slot > 6) throw new Error(`${name}: unmapped input slot ${slot}`);
  return { name, params, inputs, dtype: q.dtype, expected };
}

const caseNames = fs
  .readdirSync(testsDir)
  .filter((n) => n.startsWith('test_attention_') && !n.endsWith('_expanded'))
  .sort();

// ---- fp16 tolerance: a first-order rounding-error bound, per element --------------------------------------
// u = 2^-11 (fp16 unit roundoff), gamma(n) = n u / (1 - n u) (Higham, Thm 3.1: a dot product of length n in
// precision u errs by at most gamma(n) sum |x_i y_i|). The inputs are exact fp16 numbers.
// - score s_ij (Q*sqrt(scale) and K*sqrt(scale) rounded, then a length-d dot product, then + mask):
//     |ds_ij| <= gamma(d + 2) * scale * sum_c |q_ic k_jc| + u |s_ij|                       =: e_ij
// - softmax (subtract the max, exp, sum of nk terms, divide), E_i = max over kept j of e_ij + u |s_ij - max|:
//     |dp_ij| <= p_ij * f_i,  f_i = exp(2 E_i) - 1 + gamma(nk + 3)
// - output y = sum_j p_j v_j (a length-nk dot product, then the final rounding to fp16):
//     |dy_ic| <= (f_i + gamma(nk)) * sum_j p_ij |v_jc| + u |y_ic|
// - softmax output (qk_matmul_output_mode 3): |dp_ij| <= (f_i + u) p_ij.
// Each bound is an upper bound whatever the order numpy sums in, so it also covers the fp32 softmax of
// softmax_precision = FLOAT. Where no float64 rounding exists, the bound is 0 (fully masked rows, copies).
const U16 = 2 ** -11;
const gamma = (n: number) => (n * U16) / (1 - n * U16);

function fp16Bounds(c: Case, got: ReferenceOutputs): Map<number, Float64Array> {
  const p = c.params;
  const abs = (t: Tensor64 | undefined) => (t === undefined ? undefined : { shape: t.shape, data: t.data.map(Math.abs) });
  const run = (mode: 'qk' | 'masked' | 'softmax', inputs: ReferenceInputs) =>
    referenceAttention({ ...p, scoresMode: mode }, inputs).scores!;
  const absInputs: ReferenceInputs = {
    ...c.inputs,
    q: abs(c.inputs.q)!,
    k: abs(c.inputs.k),
    v: abs(c.inputs.v),
    ...(c.inputs.pastKey ? { pastKey: abs(c.inputs.pastKey)!, pastValue: abs(c.inputs.pastValue)! } : {}),
  };
  const dotAbs = run('qk', absInputs); // scale * sum_c |q_ic k_jc|
  const s = run('masked', c.inputs);
  const prob = run('softmax', c.inputs);
  const [B, H, nq, nk] = s.shape as [number, number, number, number];
  const dv = p.vHeadDim;
  const d = p.headDim;
  const vAll = got.presentValue.data; // [B, kvH, nk, dv]
  const group = p.numHeads / p.kvNumHeads;
  const yBound = new Float64Array(B * H * nq * dv);
  const pBound = new Float64Array(B * H * nq * nk);
  const yBhsd = p.layout === 'bhsd' ? got.y.data : transpose({ shape: [B, nq, H, dv], data: got.y.data }, [0, 2, 1, 3]).data;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < nq; i++) {
        const row = ((b * H + h) * nq + i) * nk;
        let max = -Infinity;
        for (let j = 0; j < nk; j++) max = Math.max(max, s.data[row + j]!);
        let E = 0;
        for (let j = 0; j < nk; j++) {
          const sj = s.data[row + j]!;
          if (sj === -Infinity) continue;
          E = Math.max(E, gamma(d + 2) * dotAbs.data[row + j]! + U16 * Math.abs(sj) + U16 * Math.abs(sj - max));
        }
        const f = Math.exp(2 * E) - 1 + gamma(nk + 3);
        for (let j = 0; j < nk; j++) pBound[row + j] = (f + U16) * prob.data[row + j]!;
        for (let cc = 0; cc < dv; cc++) {
          let pv = 0;
          for (let j = 0; j < nk; j++) pv += prob.data[row + j]! * Math.abs(vAll[((b * p.kvNumHeads + g) * nk + j) * dv + cc]!);
          const yi = ((b * H + h) * nq + i) * dv + cc;
          yBound[yi] = (f + gamma(nk)) * pv + U16 * Math.abs(yBhsd[yi]!);
        }
      }
    }
  }
  return new Map([
    [0, outputFromBhsd({ shape: [B, H, nq, dv], data: yBound }, p.layout).data],
    [1, new Float64Array(got.presentKey.data.length)],
    [2, new Float64Array(got.presentValue.data.length)],
    [3, pBound],
  ]);
}

describe('ONNX Attention node tests (onnx-node-tests/test_attention_*)', () => {
  it('finds the cases', () => {
    expect(caseNames.length).toBe(76);
  });

  const maxErrors: { name: string; err: number }[] = [];

  it.each(caseNames)('%s', (name) => {
    const c = loadCase(name);
    if (c.dtype !== 'f32' && c.dtype !== 'f16') throw new Error(`${name}: no tolerance stated for ${c.dtype}`);
    const got = referenceAttention(c.params, c.inputs);
    const slots: Record<number, Tensor64 | undefined> = { 0: got.y, 1: got.presentKey, 2: got.presentValue, 3: got.scores };
    const bounds = c.dtype === 'f16' ? fp16Bounds(c, got) : undefined;
    expect(c.expected.size).toBeGreaterThan(0);
    for (const [slot, want] of c.expected) {
      const actual = slots[slot];
      if (actual === undefined) throw new Error(`${name}: output slot ${slot} not produced`);
      expect(actual.shape, `${name} output ${want.name} shape`).toEqual(want.shape);
      if (bounds === undefined) {
        const cmp = compareArrays(actual.data, want.values, { atol: 1e-5, rtol: 1e-5 });
        expect(cmp.mismatches, `${name} output ${want.name}`).toEqual([]);
        maxErrors.push({ name: `${name}:${want.name}`, err: cmp.maxAbsError });
      } else {
        const bound = bounds.get(slot)!;
        const bad: string[] = [];
        let worst = 0;
        want.values.forEach((w, k) => {
          const a = actual.data[k]!;
          // the float64 value rounded to fp16 may differ from the exact one by u |w| more (the stored value is fp16)
          const tol = bound[k]! + U16 * Math.abs(w) + 1e-12;
          if (!Number.isFinite(w) || !Number.isFinite(a)) {
            if (!Object.is(a, w) && !(Number.isNaN(a) && Number.isNaN(w))) bad.push(`[${k}] ${a} vs ${w}`);
          } else {
            if (Math.abs(a - w) > tol) bad.push(`[${k}] ${a} vs ${w} (bound ${tol})`);
            if (tol > 0) worst = Math.max(worst, Math.abs(a - w) / tol);
          }
        });
        expect(bad.slice(0, 5), `${name} output ${want.name} (fp16 bound)`).toEqual([]);
        maxErrors.push({ name: `${name}:${want.name} (fp16, error/bound)`, err: worst });
      }
    }
  });

  it('reports the largest errors', () => {
    const top = [...maxErrors].sort((a, b) => b.err - a.err).slice(0, 8);
    console.log(`ONNX node tests: ${maxErrors.length} outputs compared; largest:\n${top.map((t) => `  ${t.name}: ${t.err.toExponential(3)}`).join('\n')}`);
  });
});
