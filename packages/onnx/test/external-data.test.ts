// External data: written beside the model, read lazily, and refused when it points outside the model folder.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DataLocation,
  DataType,
  ExternalDataError,
  encodeModel,
  nodeReadFiles,
  nodeWriteFiles,
  readModel,
  writeModel,
  type ModelProto,
  type ReadFiles,
  type TensorProto,
} from '../src/index.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-onnx-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

const modelWith = (...initializer: TensorProto[]): ModelProto => ({
  irVersion: 10n,
  opsetImport: [{ domain: '', version: 21n }],
  graph: { name: 'g', initializer },
});

const raw = (name: string, data: Uint8Array): TensorProto => ({ name, dataType: DataType.UINT8, dims: BigInt64Array.of(BigInt(data.length)), rawData: data });

const external = (name: string, location: string, offset: number, length: number): TensorProto => ({
  name,
  dataType: DataType.UINT8,
  dims: BigInt64Array.of(BigInt(length)),
  dataLocation: DataLocation.EXTERNAL,
  externalData: [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ],
});

function countingFiles(): ReadFiles & { reads: number } {
  const files = { ...nodeReadFiles, reads: 0 };
  files.read = (file, position, length) => {
    files.reads++;
    return nodeReadFiles.read(file, position, length);
  };
  return files;
}

describe('external data', () => {
  it('writes big tensors to an aligned side file and reads them back only when asked', () => {
    const big = bytesOf(5000, 1);
    const big2 = bytesOf(3000, 2);
    const small = bytesOf(8, 3);
    const file = path.join(dir, 'm.onnx');
    writeModel(file, modelWith(raw('big', big), raw('small', small), raw('big2', big2)), { externalData: { threshold: 1024 } });
    expect(fs.readdirSync(dir).sort()).toEqual(['m.onnx', 'm.onnx.data']);

    const files = countingFiles();
    const loaded = readModel(file, { files });
    expect(files.reads).toBe(0); // checked (realpath, stat) but not read
    const [t0, t1, t2] = loaded.model.graph!.initializer!;
    expect(t0!.rawData).toBeUndefined();
    expect(t0!.externalData!.map((e) => [e.key, e.value])).toEqual([['location', 'm.onnx.data'], ['offset', '0'], ['length', '5000']]);
    expect(t2!.externalData![1]!.value).toBe('8192'); // aligned to 4096
    expect(t1!.rawData).toEqual(small); // under the threshold: inline
    expect(loaded.externalData.read(t2!)).toEqual(big2);
    expect(files.reads).toBe(1);
    expect(loaded.externalData.read(t0!)).toEqual(big);
    expect([...loaded.externalData.readChunks(t0!, 1024)].length).toBe(5);

    // Written again elsewhere, inline: the same data, from the source model's side file.
    const inlineFile = path.join(dir, 'inline.onnx');
    writeModel(inlineFile, loaded.model, { source: loaded.externalData, externalData: false });
    const inline = readModel(inlineFile).model.graph!.initializer!;
    expect(inline.map((t) => t.rawData)).toEqual([big, small, big2]);
    expect(inline[0]!.dataLocation).toBeUndefined();
  });

  it('reads offsets beyond 4 GiB without building big buffers (sparse side file)', () => {
    const side = path.join(dir, 'w.bin');
    const offset = 2 ** 32 + 4096 * 3;
    fs.writeFileSync(side, '');
    fs.truncateSync(side, offset + 4096);
    const fd = fs.openSync(side, 'r+');
    fs.writeSync(fd, Uint8Array.of(1, 2, 3, 4), 0, 4, offset);
    fs.closeSync(fd);
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, encodeModel(modelWith(external('w', 'w.bin', offset, 4))));
    const loaded = readModel(file);
    expect([...loaded.externalData.read(loaded.model.graph!.initializer![0]!)]).toEqual([1, 2, 3, 4]);
  });

  describe('refuses locations outside the model folder, naming model, tensor and location', () => {
    const refused = (tensor: TensorProto, pattern: RegExp): void => {
      const file = path.join(dir, 'm.onnx');
      fs.writeFileSync(file, encodeModel(modelWith(tensor)));
      let error: unknown;
      try {
        readModel(file);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ExternalDataError);
      const message = (error as Error).message;
      expect(message).toContain(file);
      expect(message).toContain(`tensor '${tensor.name}'`);
      expect(message).toMatch(pattern);
    };

    it('an absolute path', () => refused(external('abs', '/etc/passwd', 0, 4), /'\/etc\/passwd'.*absolute path/));
    it('a .. segment', () => refused(external('up', '../x.bin', 0, 4), /'\.\.\/x\.bin'.*'\.\.'/));
    it('a .. in the middle', () => refused(external('mid', 'a/../../x.bin', 0, 4), /'\.\.'/));
    it('a symbolic link to a file outside', () => {
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'attnopt-outside-'));
      try {
        fs.writeFileSync(path.join(outside, 'secret.bin'), bytesOf(16, 0));
        fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(dir, 'link.bin'));
        refused(external('sym', 'link.bin', 0, 4), /'link\.bin'.*outside the model folder/);
      } finally {
        fs.rmSync(outside, { recursive: true, force: true });
      }
    });
    it('an offset or length past the end of the file', () => {
      fs.writeFileSync(path.join(dir, 'w.bin'), bytesOf(16, 0));
      refused(external('far', 'w.bin', 32, 4), /offset 32 is past the end of the file \(16 bytes\)/);
      refused(external('long', 'w.bin', 8, 16), /offset 8 \+ length 16 is past the end/);
    });
    it('a missing file', () => refused(external('gone', 'nope.bin', 0, 4), /does not exist/));
  });

  it('leaves nothing behind when a write fails midway', () => {
    const file = path.join(dir, 'm.onnx');
    let writes = 0;
    const failingAtSecondWrite = () => (writes = 0, failing);
    const failing = {
      ...nodeWriteFiles,
      write: (fd: number, bytes: Uint8Array, position: number) => {
        if (++writes === 2) throw new Error('disk full');
        nodeWriteFiles.write(fd, bytes, position);
      },
    };
    const model = modelWith(raw('a', bytesOf(2000, 1)), raw('b', bytesOf(2000, 2)));
    expect(() => writeModel(file, model, { files: failingAtSecondWrite() })).toThrow('disk full');
    expect(fs.readdirSync(dir)).toEqual([]);
    // A failure at the last step (renaming the model) also removes the temp files it can.
    const failingRename = { ...nodeWriteFiles, rename: () => { throw new Error('rename refused'); } };
    expect(() => writeModel(file, model, { files: failingRename })).toThrow('rename refused');
    expect(fs.readdirSync(dir)).toEqual([]);
    // And an existing model is untouched by a failed write.
    writeModel(file, modelWith(raw('old', bytesOf(4, 0))));
    const before = fs.readFileSync(file);
    expect(() => writeModel(file, model, { files: failingAtSecondWrite() })).toThrow('disk full');
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.readdirSync(dir)).toEqual(['m.onnx']);
  });

  it('refuses to write external tensors without a source to read them from', () => {
    expect(() => writeModel(path.join(dir, 'm.onnx'), modelWith(external('w', 'w.bin', 0, 4)))).toThrow(/no source/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
