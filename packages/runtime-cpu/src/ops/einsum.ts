// Einsum: explicit ("bhqd,bhkd->bhqk") and implicit (output = labels seen once, in alphabetical order)
// equations, ellipsis with broadcasting, repeated labels (diagonals), any number of float inputs. Each
// output element sums the products over the contracted labels in float64 and rounds once.

import { elementCount } from '@attnopt/ir';
import { attrString } from '../attrs.js';
import { stridesOf } from '../broadcast.js';
import type { OpKernel, OpTable } from '../kernel.js';
import { type ExecTensor, fromFloats, isFloat, numberData, shapeString } from '../tensor.js';

/** Labels per input and for the output, ellipsis dims spelled as labels '0', '1', ... (outermost first). */
export function parseEinsum(equation: string, ranks: readonly number[]): { inputs: string[][]; output: string[] } {
  const eq = equation.replace(/\s+/g, '');
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const terms = lhs.split(',');
  if (terms.length !== ranks.length) throw new Error(`equation "${equation}" has ${terms.length} operands, got ${ranks.length} inputs`);
  const letters = (s: string) => {
    if (!/^[A-Za-z]*(\.\.\.)?[A-Za-z]*$/.test(s)) throw new Error(`equation "${equation}": bad term "${s}"`);
    return s;
  };
  let ellipsisRank = 0;
  const ellipsisDims = terms.map((t, k) => {
    letters(t);
    const named = t.replace('...', '').length;
    const e = t.includes('...') ? ranks[k]! - named : 0;
    if (e < 0 || (!t.includes('...') && named !== ranks[k])) {
      throw new Error(`equation "${equation}": term "${t}" has ${named} labels for an input of rank ${ranks[k]}`);
    }
    ellipsisRank = Math.max(ellipsisRank, e);
    return e;
  });
  const ell = (e: number) => Array.from({ length: e }, (_, j) => String(ellipsisRank - e + j));
  const expand = (t: string, e: number) => {
    if (!t.includes('...')) return [...t];
    const [x, y] = t.split('...') as [string, string];
    return [...x, ...ell(e), ...y];
  };
  const expanded = terms.map((t, k) => expand(t, ellipsisDims[k]!));
  let output: string[];
  if (rhs !== undefined) {
    letters(rhs);
    output = expand(rhs, ellipsisRank);
  } else {
    const counts = new Map<string, number>();
    for (const l of expanded.flat()) if (!/\d/.test(l)) counts.set(l, (counts.get(l) ?? 0) + 1);
    output = [...ell(ellipsisRank), ...[...counts].filter(([, c]) => c === 1).map(([l]) => l).sort()];
  }
  const all = new Set(expanded.flat());
  for (const l of output) if (!all.has(l)) throw new Error(`equation "${equation}": output label ${l} appears in no input`);
  if (new Set(output).size !== output.length) throw new Error(`equation "${equation}": output repeats a label`);
  return { inputs: expanded, output };
}

export function einsum(equation: string, xs: readonly ExecTensor[]): ExecTensor {
  const dtype = xs[0]!.dtype;
  for (const x of xs) {
    if (x.dtype !== dtype) throw new Error(`inputs have different dtypes ${dtype} and ${x.dtype}`);
    if (!isFloat(x.dtype)) throw new Error(`Einsum of ${x.dtype} tensors is not supported (float only)`);
  }
  const { inputs, output } = parseEinsum(equation, xs.map((x) => x.shape.length));
  // label sizes; ellipsis dims broadcast (size 1 stretches), named labels must agree
  const size = new Map<string, number>();
  inputs.forEach((labels, i) =>
    labels.forEach((l, a) => {
      const d = xs[i]!.shape[a]!;
      const have = size.get(l);
      if (have === undefined || have === 1) size.set(l, d);
      else if (d !== have && !(d === 1 && /\d/.test(l))) {
        throw new Error(`equation "${equation}": label ${l} has sizes ${have} and ${d} (inputs ${xs.map((x) => shapeString(x.shape)).join(', ')})`);
      }
    }),
  );
  const contracted = [...new Set(inputs.flat())].filter((l) => !output.includes(l));
  // per input, the stride of each label (summed over repeats; 0 where absent or broadcast)
  const strideOf = xs.map((x, i) => {
    const st = stridesOf(x.shape);
    const m = new Map<string, number>();
    inputs[i]!.forEach((l, a) => m.set(l, (m.get(l) ?? 0) + (x.shape[a] === 1 && size.get(l) !== 1 ? 0 : st[a]!)));
    return m;
  });
  const offsets = (labels: readonly string[]): Int32Array[] => {
    const dims = labels.map((l) => size.get(l)!);
    const n = elementCount(dims);
    return xs.map((_, i) => {
      const out = new Int32Array(n);
      const st = labels.map((l) => strideOf[i]!.get(l) ?? 0);
      const ds = stridesOf(dims);
      for (let k = 0; k < n; k++) {
        let at = 0;
        for (let a = 0; a < dims.length; a++) at += (Math.floor(k / ds[a]!) % dims[a]!) * st[a]!;
        out[k] = at;
      }
      return out;
    });
  };
  const outOff = offsets(output);
  const sumOff = offsets(contracted);
  const data = xs.map(numberData);
  const shape = output.map((l) => size.get(l)!);
  const n = elementCount(shape);
  const m = sumOff[0]!.length;
  const out = new Float64Array(n);
  if (xs.length === 2) {
    const [a, b] = [data[0]!, data[1]!];
    const [ca, cb] = sumOff as [Int32Array, Int32Array];
    for (let k = 0; k < n; k++) {
      const ba = outOff[0]![k]!;
      const bb = outOff[1]![k]!;
      let s = 0;
      for (let c = 0; c < m; c++) s += a[ba + ca[c]!]! * b[bb + cb[c]!]!;
      out[k] = s;
    }
  } else {
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let c = 0; c < m; c++) {
        let p = 1;
        for (let i = 0; i < xs.length; i++) p *= data[i]![outOff[i]![k]! + sumOff[i]![c]!]!;
        s += p;
      }
      out[k] = s;
    }
  }
  return fromFloats(dtype, shape, out);
}

export const EINSUM_OPS: OpTable = {
  '::Einsum': {
    minInputs: 1,
    check: (node) => (node.attrs.get('equation')?.type === 'string' ? undefined : 'Einsum needs a string equation attribute'),
    run: (ctx) => [einsum(attrString(ctx.node, 'equation', ''), ctx.inputs.map((t, k) => {
      if (!t) throw new Error(`input ${k} is missing`);
      return t;
    }))] satisfies ExecTensor[],
  } satisfies OpKernel,
};
