// External data: tensors whose bytes live in side files (TensorProto.data_location = EXTERNAL, with
// external_data entries location / offset / length / checksum). Locations are checked against the model's
// folder before anything is read (the class of onnx's CVE-2024-27318: absolute paths, `..`, symlinks out);
// bytes are read only when asked for, and in chunks for tensors too big for one buffer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExternalDataError } from './errors.js';
import { DataLocation, type TensorProto } from './types.js';

/** Read-side file operations; tests inject counting or failing ones. */
export interface ReadFiles {
  realpath(file: string): string;
  stat(file: string): { size: number; isFile: boolean };
  read(file: string, position: number, length: number): Uint8Array;
}

export const nodeReadFiles: ReadFiles = {
  realpath: (file) => fs.realpathSync(file),
  stat: (file) => {
    const st = fs.statSync(file);
    return { size: st.size, isFile: st.isFile() };
  },
  read: (file, position, length) => {
    const fd = fs.openSync(file, 'r');
    try {
      const out = new Uint8Array(length);
      for (let done = 0; done < length; ) {
        const n = fs.readSync(fd, out, done, length - done, position + done);
        if (n === 0) throw new Error(`${file}: unexpected end of file at byte ${position + done}`);
        done += n;
      }
      return out;
    } finally {
      fs.closeSync(fd);
    }
  },
};

/** The external_data entries of a tensor, parsed. */
export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Absent: to the end of the file. */
  length?: number;
  checksum?: string;
}

/** A checked reference: the real file and the byte range inside it. */
export interface ResolvedExternalData {
  readonly tensorName: string | undefined;
  readonly location: string;
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

export const isExternal = (tensor: TensorProto): boolean => tensor.dataLocation === DataLocation.EXTERNAL;

const DECIMAL = /^[0-9]+$/;

/** Parses a tensor's external_data entries; the error names model, tensor and location. */
export function parseExternalData(tensor: TensorProto, modelFile?: string): ExternalDataRef {
  const entries = new Map((tensor.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  const fail = (problem: string): never => {
    throw new ExternalDataError(problem, modelFile, tensor.name, location);
  };
  if (location === undefined || location === '') return fail('external data has no location');
  const number = (key: string): number | undefined => {
    const text = entries.get(key);
    if (text === undefined) return undefined;
    if (!DECIMAL.test(text)) return fail(`external data ${key} '${text}' is not a non-negative integer`);
    const value = BigInt(text);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`external data ${key} ${text} is too large`);
    return Number(value);
  };
  const ref: ExternalDataRef = { location, offset: number('offset') ?? 0 };
  const length = number('length');
  if (length !== undefined) ref.length = length;
  const checksum = entries.get('checksum');
  if (checksum !== undefined) ref.checksum = checksum;
  return ref;
}

/** Refuses a location that is absolute or has a `..` segment; returns it as a relative path. */
export function checkLocationSyntax(location: string): string | undefined {
  if (location.includes('\0')) return 'contains a NUL byte';
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) {
    return 'is an absolute path; external data must be inside the model folder';
  }
  if (location.split(/[\\/]/).includes('..')) return "contains '..'; external data must be inside the model folder";
  return undefined;
}

/** Resolves and reads external tensor data for one model file, lazily. */
export class ExternalDataResolver {
  readonly baseDir: string;
  private realBase: string | undefined;

  constructor(
    /** The .onnx file; locations are relative to its folder. */
    readonly modelFile: string,
    private readonly files: ReadFiles = nodeReadFiles,
  ) {
    this.baseDir = path.dirname(path.resolve(modelFile));
  }

  /** Checks a tensor's reference (path inside the model folder, range inside the file) without reading data. */
  resolve(tensor: TensorProto): ResolvedExternalData {
    const ref = parseExternalData(tensor, this.modelFile);
    const fail = (problem: string): never => {
      throw new ExternalDataError(problem, this.modelFile, tensor.name, ref.location);
    };
    const syntax = checkLocationSyntax(ref.location);
    if (syntax !== undefined) fail(syntax);
    this.realBase ??= this.files.realpath(this.baseDir);
    let real: string;
    try {
      real = this.files.realpath(path.join(this.baseDir, ref.location));
    } catch {
      return fail('the file does not exist');
    }
    const rel = path.relative(this.realBase, real);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      fail(`resolves to ${real}, outside the model folder ${this.realBase} (through a symbolic link)`);
    }
    const st = this.files.stat(real);
    if (!st.isFile) fail('is not a regular file');
    if (ref.offset > st.size) fail(`offset ${ref.offset} is past the end of the file (${st.size} bytes)`);
    const length = ref.length ?? st.size - ref.offset;
    if (ref.offset + length > st.size) {
      fail(`offset ${ref.offset} + length ${length} is past the end of the file (${st.size} bytes)`);
    }
    return { tensorName: tensor.name, location: ref.location, file: real, offset: ref.offset, length };
  }

  /** The tensor's bytes, read now from the side file (inline raw_data is returned as is). */
  read(tensor: TensorProto): Uint8Array {
    if (!isExternal(tensor)) return tensor.rawData ?? new Uint8Array(0);
    const r = this.resolve(tensor);
    if (r.length > MAX_BUFFER_BYTES) {
      throw new ExternalDataError(
        `${r.length} bytes do not fit one buffer; read it with readChunks()`,
        this.modelFile,
        tensor.name,
        r.location,
      );
    }
    return this.files.read(r.file, r.offset, r.length);
  }

  /** The tensor's bytes in chunks of at most chunkBytes: for tensors of any size. */
  *readChunks(tensor: TensorProto, chunkBytes: number = DEFAULT_CHUNK_BYTES): Generator<Uint8Array> {
    if (!isExternal(tensor)) {
      yield tensor.rawData ?? new Uint8Array(0);
      return;
    }
    const r = this.resolve(tensor);
    for (let done = 0; done < r.length; done += chunkBytes) {
      yield this.files.read(r.file, r.offset + done, Math.min(chunkBytes, r.length - done));
    }
  }
}

/** Largest tensor read into one buffer (beyond, readChunks). */
export const MAX_BUFFER_BYTES = 2 ** 31 - 1;
export const DEFAULT_CHUNK_BYTES = 64 * 2 ** 20;
