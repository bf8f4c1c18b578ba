// Reading ONNX backend node-test folders (model.onnx + test_data_set_0/{input,output}_k.pb).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor } from '@attnopt/ir';
import { decodeMessage, type TensorProto, tensorFromProto } from '@attnopt/onnx';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.resolve(here, '../../../../../shared/fixtures/onnx');
export const NODE_TESTS = path.join(FIXTURES, 'onnx-node-tests');

/** A TensorProto .pb file as an IR tensor (and its name). */
export function readPb(file: string): { name: string; tensor: Tensor } {
  const proto = decodeMessage<TensorProto>(fs.readFileSync(file), 'TensorProto');
  const tensor = tensorFromProto(proto, {
    fail: (problem) => {
      throw new Error(`${file}: ${problem}`);
    },
  });
  return { name: proto.name ?? '', tensor };
}

/** The k-th stored inputs and outputs of a node-test folder. */
export function readDataSet(dir: string): { inputs: Tensor[]; outputs: Tensor[] } {
  const data = path.join(dir, 'test_data_set_0');
  const files = fs.readdirSync(data);
  const read = (prefix: string) =>
    files
      .filter((f) => f.startsWith(prefix))
      .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
      .map((f) => readPb(path.join(data, f)).tensor);
  return { inputs: read('input_'), outputs: read('output_') };
}
