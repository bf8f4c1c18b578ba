// Calibration sets on disk. A calibration set is a folder PATH holding either one sample or several:
//
//   PATH/input_ids.npy, PATH/attention_mask.pb ...   one sample: a file per model input, named after the input
//                                                    (.npy, or .pb for a serialized TensorProto)
//   PATH/0/..., PATH/1/..., ...                      one sample per numbered subfolder, in numeric order
//   PATH/test_data_set_0/input_0.pb, ...             ONNX test data layout: one sample per test_data_set_N;
//                                                    input_K.pb feeds the input its TensorProto names
//                                                    (the K-th model input when unnamed); output_K.pb is ignored
//
// Input names with characters a file name cannot hold ("/", ":", ...) match with each such character as "_".
// Every tensor is checked against the model input it feeds (dtype, rank, fixed dims, symbolic dims consistent
// within the sample, finite floats); errors name the file and the input. Samples are read one at a time.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Graph } from '@attnopt/ir';
import type { AttnoptModel } from '../model.js';
import { type ModelInput, modelInputs } from './model-inputs.js';
import { readNpy } from './npy.js';
import { readTensorProto } from './tensor-proto.js';
import { CalibrationInputError, type CalibrationSample, checkCalibrationTensor, type HostTensor } from './tensor.js';

const fileSafe = (name: string): string => name.replace(/[^A-Za-z0-9_.-]/g, '_');
const SAMPLE_DIR = /^(?:test_data_set_)?(\d+)$/;
const isDir = (p: string): boolean => statSync(p).isDirectory();

/** The sample folders of a calibration set, in order (the set itself when it holds a single sample). */
export function calibrationSampleDirs(path: string): string[] {
  if (!isDir(path)) throw new Error(`${path}: a calibration set must be a folder`);
  const subdirs = readdirSync(path)
    .filter((e) => SAMPLE_DIR.test(e) && isDir(join(path, e)))
    .sort((a, b) => Number(SAMPLE_DIR.exec(a)![1]) - Number(SAMPLE_DIR.exec(b)![1]));
  return subdirs.length > 0 ? subdirs.map((e) => join(path, e)) : [path];
}

/** Reads and checks one sample folder against the model's inputs. */
export function readSampleDir(dir: string, inputs: readonly ModelInput[]): CalibrationSample {
  const byName = new Map(inputs.map((i) => [i.name, i]));
  const bySafeName = new Map(inputs.map((i) => [fileSafe(i.name), i]));
  const found = new Map<string, { tensor: HostTensor; file: string }>();
  for (const entry of readdirSync(dir).sort()) {
    const file = join(dir, entry);
    const ext = extname(entry);
    if ((ext !== '.npy' && ext !== '.pb') || !statSync(file).isFile()) continue;
    const stem = basename(entry, ext);
    if (/^output_\d+$/.test(stem)) continue;
    const bytes = new Uint8Array(readFileSync(file));
    let input: ModelInput | undefined;
    let tensor: HostTensor;
    if (ext === '.npy') {
      tensor = readNpy(bytes, file);
      input = byName.get(stem) ?? bySafeName.get(stem);
    } else {
      const read = readTensorProto(bytes, file);
      tensor = read.tensor;
      const k = /^input_(\d+)$/.exec(stem);
      if (k !== null && read.name !== undefined) {
        input = byName.get(read.name);
        if (input === undefined) throw new Error(`${file}: its TensorProto names "${read.name}", which is not a model input (inputs: ${[...byName.keys()].join(', ')})`);
      } else input = k !== null ? inputs[Number(k[1])] : (byName.get(stem) ?? bySafeName.get(stem));
    }
    if (input === undefined) {
      throw new Error(`${file}: does not name a model input (inputs: ${[...byName.keys()].join(', ')})`);
    }
    const twice = found.get(input.name);
    if (twice !== undefined) throw new Error(`${file}: input "${input.name}" is also given by ${twice.file}`);
    found.set(input.name, { tensor, file });
  }
  const bindings = new Map<string, number>();
  const sample: Record<string, HostTensor> = {};
  for (const input of inputs) {
    const got = found.get(input.name);
    if (got === undefined) {
      throw new CalibrationInputError({ input: input.name, file: dir }, `missing: no ${fileSafe(input.name)}.npy or ${fileSafe(input.name)}.pb (or input_K.pb naming it)`);
    }
    checkCalibrationTensor(got.tensor, input, { input: input.name, file: got.file }, bindings);
    sample[input.name] = got.tensor;
  }
  return sample;
}

/** The samples of a calibration set, read lazily one folder at a time (see the layouts at the top of this file). */
export function* calibrationSet(path: string, model: AttnoptModel | Graph): Generator<CalibrationSample> {
  const graph = 'graph' in model ? model.graph : model;
  const inputs = modelInputs(graph, 'graph' in model ? (model.file ?? 'model') : 'model');
  for (const dir of calibrationSampleDirs(path)) yield readSampleDir(dir, inputs);
}

/** Checks in-memory samples (generated or built by the caller) the way files are checked; `label` names them. */
export function checkSample(sample: CalibrationSample, inputs: readonly ModelInput[], label: string): void {
  const bindings = new Map<string, number>();
  for (const input of inputs) {
    const t = sample[input.name];
    if (t === undefined) throw new CalibrationInputError({ input: input.name, file: label }, 'missing from the sample');
    checkCalibrationTensor(t, input, { input: input.name, file: label }, bindings);
  }
  for (const name of Object.keys(sample)) {
    if (!inputs.some((i) => i.name === name)) {
      throw new CalibrationInputError({ input: name, file: label }, `is not a model input (inputs: ${inputs.map((i) => i.name).join(', ')})`);
    }
  }
}
