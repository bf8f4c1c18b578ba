// Number spellings of the text form: floats that never read as ints and round-trip exactly, ints, hex bytes.

/**
 * A float as text: `nan`, `inf`, `-inf`, `-0.0`, else the shortest decimal that `roundTrips` accepts
 * (by default the shortest that reads back as the same double), always with a '.' or an exponent.
 */
export function formatFloat(x: number, roundTrips?: (text: string) => boolean): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0.0';
  let text = String(x);
  for (let p = 1; roundTrips && p < 17; p++) {
    const candidate = String(Number(x.toPrecision(p)));
    if (roundTrips(candidate)) {
      text = candidate;
      break;
    }
  }
  return /[.eEn]/.test(text) ? text : `${text}.0`;
}

/** Reads a float spelled by formatFloat (also accepts plain integers). */
export function parseFloatText(text: string): number {
  if (text === 'nan') return NaN;
  if (text === 'inf') return Infinity;
  if (text === '-inf') return -Infinity;
  return Number(text);
}

/** Whether a number token spells a float rather than an int. */
export function isFloatText(text: string): boolean {
  return /[.eE]/.test(text) || text === '-inf';
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** Decodes an even-length hex string; undefined when it is not one. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let k = 0; k < out.length; k++) out[k] = parseInt(hex.slice(2 * k, 2 * k + 2), 16);
  return out;
}
