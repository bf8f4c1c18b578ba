// A model and its side file are renamed into place as a pair: a failure of the model's rename puts the side
// file back as it was (or removes the new one), so a failed write never leaves new weights beside an old
// model. Model files are read only when they are regular files.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataType, MAX_NAME_CHARS, nodeWriteFiles, quoteName, readModel, readModelBytes, writeModel, type ModelProto, type TensorProto } from '../src/index.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-onnx-hostile-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const raw = (name: string, data: Uint8Array): TensorProto => ({ name, dataType: DataType.UINT8, dims: BigInt64Array.of(BigInt(data.length)), rawData: data });
const modelWith = (...initializer: TensorProto[]): ModelProto => ({ irVersion: 10n, opsetImport: [{ domain: '', version: 21n }], graph: { name: 'g', initializer } });

/** File operations whose rename fails for the model file (the second rename of the pair). */
const failingModelRename = (file: string) => ({
  ...nodeWriteFiles,
  rename: (from: string, to: string) => {
    if (to === file) throw new Error('rename refused');
    nodeWriteFiles.rename(from, to);
  },
});

const contents = () => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('hex')]));

describe('writeModel: the model and its side file as a pair', () => {
  it('a failed model rename puts the previous side file back, byte for byte, and leaves no temp file', () => {
    const file = path.join(dir, 'm.onnx');
    writeModel(file, modelWith(raw('w', bytesOf(2000, 1))));
    expect(fs.existsSync(`${file}.data`)).toBe(true);
    const before = contents();
    expect(() => writeModel(file, modelWith(raw('w', bytesOf(3000, 7))), { files: failingModelRename(file) })).toThrow('rename refused');
    expect(contents()).toEqual(before);
  });

  it('a failed model rename with no previous side file removes the new one', () => {
    const file = path.join(dir, 'm.onnx');
    expect(() => writeModel(file, modelWith(raw('w', bytesOf(2000, 1))), { files: failingModelRename(file) })).toThrow('rename refused');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a successful write replaces both and leaves no backup', () => {
    const file = path.join(dir, 'm.onnx');
    writeModel(file, modelWith(raw('w', bytesOf(2000, 1))));
    writeModel(file, modelWith(raw('w', bytesOf(3000, 7))));
    expect(fs.readdirSync(dir).sort()).toEqual(['m.onnx', 'm.onnx.data']);
    const loaded = readModel(file);
    expect(loaded.externalData.read(loaded.model.graph!.initializer![0]!)).toEqual(bytesOf(3000, 7));
  });
});

describe('readModelBytes: regular files only', () => {
  it('a FIFO is refused before anything is read (no hang)', () => {
    const fifo = path.join(dir, 'm.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readModelBytes(fifo)).toThrow(/a FIFO, not a model file/);
  });

  it('a folder is refused', () => {
    expect(() => readModelBytes(dir)).toThrow(/a folder, not a model file/);
  });

  it('a regular file is read whole', () => {
    const file = path.join(dir, 'x.bin');
    fs.writeFileSync(file, bytesOf(20_000, 3));
    expect(readModelBytes(file)).toEqual(bytesOf(20_000, 3));
  });
});

describe('quoteName', () => {
  it('escapes control characters and cuts long names', () => {
    expect(quoteName('a\u001b[31m\u0007')).toBe('"a\\u001b[31m\\u0007"');
    const long = 'n'.repeat(10 * MAX_NAME_CHARS);
    expect(quoteName(long)).toBe(`${JSON.stringify('n'.repeat(MAX_NAME_CHARS))}... (${10 * MAX_NAME_CHARS} characters)`);
  });
});
