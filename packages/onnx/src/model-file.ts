// Reading and writing .onnx files with their external data.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AtomicFile, nodeWriteFiles, renamePair, type WriteFiles } from './atomic-write.js';
import { decodeModel, encodeModel } from './codec.js';
import { ExternalDataError, OnnxDecodeError } from './errors.js';
import { MAX_MODEL_BYTES } from './limits.js';
import {
  DEFAULT_CHUNK_BYTES,
  ExternalDataResolver,
  checkLocationSyntax,
  isExternal,
  nodeReadFiles,
  type ReadFiles,
} from './external-data.js';
import { DataLocation, type ModelProto, type StringStringEntryProto, type TensorProto } from './types.js';
import { forEachTensor, mapTensors } from './walk.js';

export interface LoadedModel {
  readonly file: string;
  readonly model: ModelProto;
  /** Reads external tensor bytes on demand: `externalData.read(tensor)`. */
  readonly externalData: ExternalDataResolver;
}

export interface ReadModelOptions {
  files?: ReadFiles;
  /** Check every external reference (folder, file, range) at load time, reading no data. Default true. */
  checkExternalData?: boolean;
}

/**
 * The bytes of a model file: only a regular file (its size known up front; a device, a FIFO or a folder is
 * refused before anything is read) of at most MAX_MODEL_BYTES. Opened non-blocking, so a FIFO never hangs.
 */
export function readModelBytes(file: string): Uint8Array {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      const kind = stat.isDirectory() ? 'a folder' : stat.isFIFO() ? 'a FIFO' : stat.isCharacterDevice() || stat.isBlockDevice() ? 'a device' : 'not a regular file';
      throw new OnnxDecodeError(`${kind}, not a model file (attnopt reads models only from regular files)`, 'ModelProto', 0, file);
    }
    if (stat.size > MAX_MODEL_BYTES) {
      throw new OnnxDecodeError(`${stat.size} bytes, over protobuf's ${MAX_MODEL_BYTES}-byte limit for one message (keep weights in external data)`, 'ModelProto', 0, file);
    }
    const bytes = new Uint8Array(stat.size);
    for (let done = 0; done < bytes.length; ) {
      const n = fs.readSync(fd, bytes, done, bytes.length - done, done);
      if (n === 0) throw new OnnxDecodeError(`the file shrank while it was read (${done} of ${stat.size} bytes)`, 'ModelProto', done, file);
      done += n;
    }
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a .onnx file; external tensor data stays on disk until asked for. */
export function readModel(file: string, options: ReadModelOptions = {}): LoadedModel {
  const model = decodeModel(readModelBytes(file), { file });
  const externalData = new ExternalDataResolver(file, options.files ?? nodeReadFiles);
  if (options.checkExternalData ?? true) {
    forEachTensor(model, 'ModelProto', (t) => {
      if (isExternal(t)) externalData.resolve(t);
    });
  }
  return { file, model, externalData };
}

export interface WriteModelOptions {
  /** Where tensors that are already external are read from (readModel's externalData). */
  source?: ExternalDataResolver;
  /**
   * Move tensors whose data is at least `threshold` bytes (default 1024) to the side file `location`
   * (default `<model file name>.data`, beside the model), at offsets aligned to `align` (default 4096).
   * `false`: write every tensor inline (a model must then stay under 2 GiB).
   */
  externalData?: false | { location?: string; threshold?: number; align?: number };
  files?: WriteFiles;
  /** Copy chunk size for external tensors (default 64 MiB). */
  chunkBytes?: number;
}

const LAYOUT_KEYS = new Set(['location', 'offset', 'length']);

function externalEntries(tensor: TensorProto, location: string, offset: number, length: number): StringStringEntryProto[] {
  const kept = (tensor.externalData ?? []).filter((e) => !LAYOUT_KEYS.has(e.key ?? ''));
  return [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
    ...kept,
  ];
}

/**
 * Writes the model (and its side file, if any) atomically: both go to temp files in the target folder,
 * are fsynced, then renamed together (the side file first; if the model's rename fails the side file's
 * previous content is put back); on any error the temp files are removed and nothing is left behind.
 */
export function writeModel(file: string, model: ModelProto, options: WriteModelOptions = {}): void {
  const files = options.files ?? nodeWriteFiles;
  const ext = options.externalData === false ? undefined : (options.externalData ?? {});
  const location = ext?.location ?? `${path.basename(file)}.data`;
  const threshold = ext?.threshold ?? 1024;
  const align = ext?.align ?? 4096;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (ext !== undefined) {
    const bad = checkLocationSyntax(location);
    if (bad !== undefined || location.includes('/') || location.includes('\\')) {
      throw new ExternalDataError(`side file name ${bad ?? 'must be a plain file name'}`, file, undefined, location);
    }
  }
  const source = (tensor: TensorProto): ExternalDataResolver => {
    if (options.source === undefined) {
      throw new ExternalDataError('tensor data is external but no source was given to writeModel', file, tensor.name, undefined);
    }
    return options.source;
  };

  let side: AtomicFile | undefined;
  let out: AtomicFile | undefined;
  try {
    let position = 0;
    const place = (length: number): number => {
      const at = Math.ceil(position / align) * align;
      position = at + length;
      return at;
    };
    const written = mapTensors(model, 'ModelProto', (tensor) => {
      const external = isExternal(tensor);
      const size = external ? source(tensor).resolve(tensor).length : (tensor.rawData?.length ?? 0);
      const moveOut = ext !== undefined && (external || (tensor.rawData !== undefined && size >= threshold));
      if (!moveOut) {
        if (!external) return tensor;
        const inline: TensorProto = { ...tensor, rawData: source(tensor).read(tensor) };
        delete inline.externalData;
        delete inline.dataLocation;
        return inline;
      }
      side ??= AtomicFile.create(path.join(path.dirname(file), location), files);
      const offset = place(size);
      let at = offset;
      for (const chunk of external ? source(tensor).readChunks(tensor, chunkBytes) : [tensor.rawData!]) {
        side.write(chunk, at);
        at += chunk.length;
      }
      const moved: TensorProto = {
        ...tensor,
        dataLocation: DataLocation.EXTERNAL,
        externalData: externalEntries(tensor, location, offset, size),
      };
      delete moved.rawData;
      return moved;
    });
    const bytes = encodeModel(written);
    out = AtomicFile.create(file, files);
    out.write(bytes, 0);
    if (side !== undefined) renamePair(side, out, files);
    else out.rename();
    files.fsyncDir(path.dirname(path.resolve(file)));
  } catch (error) {
    side?.abort();
    out?.abort();
    throw error;
  }
}
