// The shape a generated attention kernel is specialized to (block sizes, padded head dims, scale,
// softcap, row strides), its cache key and validation, the scratch it needs, and the sentinel values of
// the online softmax. Shared by the WebAssembly and JavaScript generators (contract in ../kernels.ts).

export interface KernelShape {
  /** Query rows per block (a multiple of 4). */
  readonly blockQ: number;
  /** Keys per block (a multiple of 8). */
  readonly blockK: number;
  /** Head dim of Q and K as computed (a multiple of 4; columns past the head dim must hold zeros). */
  readonly dPad: number;
  /** Head dim of V as accumulated (a multiple of 8; columns past the head dim may hold anything finite). */
  readonly dvPad: number;
  /** softcap · tanh(s / softcap) on the scaled scores; 0 = none. */
  readonly softcap: number;
  /** Multiplies Q Kᵀ (default 1: Q given already scaled). */
  readonly scale?: number;
  /** Row strides in f32 elements of Q, K, V and Y (defaults dPad, dPad, dvPad, dvPad). */
  readonly qStride?: number;
  readonly kStride?: number;
  readonly vStride?: number;
  readonly oStride?: number;
  /** Columns written per Y row (a multiple of 4, at most dvPad; default dvPad). */
  readonly dvOut?: number;
}

/** A KernelShape with every default filled in. */
export type FullKernelShape = Required<KernelShape>;

/** A masked score: finite, so that the online softmax never computes inf - inf. */
export const MASKED = -1e30;
/** The running max before any key. */
export const ROW_UNSET = -3e38;
/** A final max below this means the row kept no key. */
export const ROW_EMPTY = -1e29;

export function fullKernelShape(s: KernelShape): FullKernelShape {
  return {
    blockQ: s.blockQ,
    blockK: s.blockK,
    dPad: s.dPad,
    dvPad: s.dvPad,
    softcap: s.softcap,
    scale: s.scale ?? 1,
    qStride: s.qStride ?? s.dPad,
    kStride: s.kStride ?? s.dPad,
    vStride: s.vStride ?? s.dvPad,
    oStride: s.oStride ?? s.dvPad,
    dvOut: s.dvOut ?? s.dvPad,
  };
}

export function kernelCacheKey(kind: 'wasm' | 'js', shape: KernelShape): string {
  const s = fullKernelShape(shape);
  return (
    `attend-${kind}-q${s.blockQ}-k${s.blockK}-d${s.dPad}-dv${s.dvPad}-cap${s.softcap}-scale${s.scale}` +
    `-st${s.qStride}.${s.kStride}.${s.vStride}.${s.oStride}-out${s.dvOut}`
  );
}

export function checkKernelShape(shape: KernelShape): void {
  const s = fullKernelShape(shape);
  if (s.blockQ % 4 !== 0 || s.blockQ < 4) throw new Error(`blockQ must be a positive multiple of 4, got ${s.blockQ}`);
  if (s.blockK % 8 !== 0 || s.blockK < 8) throw new Error(`blockK must be a positive multiple of 8, got ${s.blockK}`);
  if (s.dPad % 4 !== 0 || s.dPad < 4 || s.dvPad % 8 !== 0 || s.dvPad < 8) throw new Error(`dPad must be a positive multiple of 4 and dvPad of 8, got ${s.dPad} and ${s.dvPad}`);
  if (s.dvOut % 4 !== 0 || s.dvOut < 4 || s.dvOut > s.dvPad) throw new Error(`dvOut must be a multiple of 4 in 4..dvPad, got ${s.dvOut}`);
  for (const [name, st] of [['qStride', s.qStride], ['kStride', s.kStride], ['vStride', s.vStride], ['oStride', s.oStride]] as const) {
    if (!Number.isSafeInteger(st) || st < 1 || st % 4 !== 0) throw new Error(`${name} must be a positive multiple of 4, got ${st}`);
  }
  if (!(s.scale > 0) || !Number.isFinite(s.scale)) throw new Error(`scale must be positive and finite, got ${s.scale}`);
}

/** Scratch bytes one thread needs for a shape: O [blockQ][dvPad], S [blockQ][blockK], m [blockQ], l [blockQ]. */
export function scratchBytes(shape: KernelShape): number {
  const s = fullKernelShape(shape);
  return (s.blockQ * s.dvPad + s.blockQ * s.blockK + 2 * s.blockQ) * 4;
}
