// NumPy .npy files (format versions 1.0, 2.0 and 3.0), C order, little-endian or single-byte dtypes:
//   "\x93NUMPY" major minor, header length (u16 for v1, u32 for v2/v3), a Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and '\n', then the data.

import type { DType } from '@attnopt/ir';
import { type HostTensor, hostTensorFromBytes } from './tensor.js';

/** NumPy dtype descriptors attnopt reads, and the IR dtype each becomes. */
const NPY_DTYPES: Readonly<Record<string, DType>> = {
  '<f4': 'f32',
  '<f8': 'f64',
  '<f2': 'f16',
  '|b1': 'bool',
  '|u1': 'u8',
  '|i1': 'i8',
  '<u2': 'u16',
  '<i2': 'i16',
  '<u4': 'u32',
  '<i4': 'i32',
  '<u8': 'u64',
  '<i8': 'i64',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses a .npy file; `file` names it in errors. */
export function readNpy(bytes: Uint8Array, file = '<npy bytes>'): HostTensor {
  const fail = (problem: string): never => {
    throw new Error(`${file}: ${problem}`);
  };
  if (bytes.length < 10 || MAGIC.some((b, k) => bytes[k] !== b)) fail('not a NumPy .npy file (no \\x93NUMPY magic)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail('truncated .npy header');
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    return fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (start + headerLen > bytes.length) fail('truncated .npy header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const field = (key: string, pattern: string): string => {
    const m = new RegExp(`['"]${key}['"]\\s*:\\s*(${pattern})`).exec(header);
    return m?.[1] ?? fail(`the .npy header has no readable '${key}': ${header.trim()}`);
  };
  const descr = field('descr', `'[^']*'|"[^"]*"`).slice(1, -1);
  const fortran = field('fortran_order', 'True|False');
  const shapeText = field('shape', '\\([^)]*\\)');
  if (fortran === 'True') fail(`Fortran-order arrays are not supported: save it in C order (numpy.ascontiguousarray)`);
  const native = descr.replace(/^=/, '<');
  const dtype = NPY_DTYPES[native];
  if (dtype === undefined) {
    if (native.startsWith('>')) fail(`big-endian dtype '${descr}' is not supported: save it as '<${descr.slice(1)}' (arr.astype(arr.dtype.newbyteorder('<')))`);
    fail(`unsupported dtype '${descr}' (supported: ${Object.keys(NPY_DTYPES).join(' ')})`);
  }
  const shape = shapeText
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const d = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(d) || d < 0) fail(`invalid dimension '${s}' in shape ${shapeText}`);
      return d;
    });
  const data = bytes.subarray(start + headerLen);
  try {
    return hostTensorFromBytes(dtype!, shape, data);
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** The .npy file (format 1.0, C order, little-endian) of a tensor: how a calibration folder is written from code. */
export function encodeNpy(t: HostTensor): Uint8Array {
  const descr = Object.entries(NPY_DTYPES).find(([, d]) => d === t.dtype)?.[0];
  if (descr === undefined) throw new Error(`encodeNpy: no NumPy dtype for ${t.dtype}`);
  const dims = t.shape.length === 1 ? `${t.shape[0]},` : t.shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += `${' '.repeat(63 - ((10 + header.length) % 64))}\n`; // the data starts 64-byte aligned
  const h = new TextEncoder().encode(header);
  const data = t.data as ArrayBufferView;
  const out = new Uint8Array(10 + h.length + data.byteLength);
  out.set([...MAGIC, 1, 0, h.length & 0xff, h.length >> 8]);
  out.set(h, 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + h.length);
  return out;
}
