// Fields newer than onnx-proto's ONNX 1.10 schema, and a field unknown to every schema, survive
// encode -> decode -> encode; onnx-proto's own round trip drops them (the data loss this codec prevents).
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import {
  AttributeType,
  DataLocation,
  DataType,
  bytesEqual,
  decodeMessage,
  decodeModel,
  diffMessages,
  encodeMessage,
  encodeModel,
  type ModelProto,
  type TensorProto,
} from '../src/index.js';

const { onnx } = onnxProto;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const meta = (key: string, value: string) => [{ key, value }];

/** A raw field unknown to every ONNX message: number 999, length-delimited, 3 bytes. */
const unknown999 = { no: 999, wireType: 2, data: Uint8Array.of(3, 1, 2, 3) };

function tensorOf(dataType: number, name: string): TensorProto {
  return { dims: BigInt64Array.of(2n), dataType, name, rawData: Uint8Array.of(0x12, 0x34) };
}

const NEWER_TYPES = ['FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2', 'FLOAT8E5M2FNUZ', 'UINT4', 'INT4', 'FLOAT4E2M1', 'FLOAT8E8M0', 'UINT2', 'INT2'] as const;

const model: ModelProto = {
  irVersion: 13n,
  producerName: 'attnopt-test',
  opsetImport: [{ domain: '', version: 26n }, { domain: 'local', version: 1n }],
  metadataProps: meta('model', 'yes'),
  configuration: [{ name: 'two-gpus', numDevices: 2, device: ['cuda:0', 'cuda:1'] }],
  graph: {
    name: 'g',
    metadataProps: meta('graph', 'yes'),
    node: [
      {
        opType: 'F',
        domain: 'local',
        overload: 'v2',
        input: ['x'],
        output: ['y'],
        metadataProps: meta('node', 'yes'),
        deviceConfigurations: [
          {
            configurationId: 'two-gpus',
            pipelineStage: 1,
            shardingSpec: [
              {
                tensorName: 'x',
                device: BigInt64Array.of(0n, 1n),
                indexToDeviceGroupMap: [{ key: 0n, value: BigInt64Array.of(0n, 1n) }],
                shardedDim: [{ axis: 1n, simpleSharding: [{ dimParam: 'S', numShards: 2n }, { dimValue: 64n, numShards: 2n }] }],
              },
            ],
          },
        ],
        attribute: [
          { name: 'ref', type: AttributeType.INT, refAttrName: 'alpha' },
          { name: 'tp', type: AttributeType.TYPE_PROTO, tp: { tensorType: { elemType: DataType.FLOAT8E8M0 } } },
          { name: 'tps', type: AttributeType.TYPE_PROTOS, typeProtos: [{ optionalType: { elemType: { tensorType: { elemType: DataType.INT2 } } } }] },
          { name: 'st', type: AttributeType.SPARSE_TENSORS, sparseTensors: [{ values: tensorOf(DataType.INT4, 'sv'), indices: { dataType: DataType.INT64, int64Data: BigInt64Array.of(1n) }, dims: BigInt64Array.of(4n) }] },
        ],
        unknownFields: [unknown999],
      },
    ],
    initializer: [
      ...NEWER_TYPES.map((t) => tensorOf(DataType[t], t)),
      { ...tensorOf(DataType.FLOAT, 'tagged'), metadataProps: meta('tensor', 'yes') },
      { name: 'ext', dataType: DataType.FLOAT, dims: BigInt64Array.of(1n), dataLocation: DataLocation.EXTERNAL, externalData: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '0' }, { key: 'length', value: '4' }, { key: 'checksum', value: 'abc' }] },
    ],
    input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT4E2M1 } }, metadataProps: meta('value', 'yes') }],
    output: [{ name: 'y', type: { tensorType: { elemType: DataType.UINT2 } } }],
    unknownFields: [{ no: 100, wireType: 0, data: Uint8Array.of(0x96, 0x01) }],
  },
  functions: [
    {
      name: 'F',
      domain: 'local',
      overload: 'v2',
      input: ['a'],
      output: ['b'],
      attributeProto: [{ name: 'alpha', type: AttributeType.FLOAT, f: 0.5 }],
      valueInfo: [{ name: 'a', type: { tensorType: { elemType: DataType.FLOAT8E5M2 } } }],
      metadataProps: meta('function', 'yes'),
      node: [{ opType: 'Identity', input: ['a'], output: ['b'] }],
      opsetImport: [{ domain: '', version: 26n }],
    },
  ],
  unknownFields: [unknown999],
};

describe('fields newer than ONNX 1.10', () => {
  const bytes = encodeModel(model);
  const decoded = decodeModel(bytes);

  it('round-trips every newer field and the unknown ones: encode -> decode -> encode is byte-identical', () => {
    expect(diffMessages(decoded, model)).toBeUndefined();
    expect(bytesEqual(encodeModel(decoded), bytes)).toBe(true);
    const node = decoded.graph!.node![0]!;
    expect(node.overload).toBe('v2');
    expect(node.metadataProps).toEqual(meta('node', 'yes'));
    expect(node.deviceConfigurations![0]!.shardingSpec![0]!.shardedDim![0]!.simpleSharding![0]!.dimParam).toBe('S');
    expect(node.unknownFields).toEqual([unknown999]);
    expect(decoded.graph!.unknownFields![0]!.data).toEqual(Uint8Array.of(0x96, 0x01));
    expect(decoded.functions![0]!.valueInfo![0]!.name).toBe('a');
    expect(decoded.irVersion).toBe(13n);
    expect(decoded.graph!.initializer!.map((t) => t.dataType)).toEqual([...NEWER_TYPES.map((t) => DataType[t]), 1, 1]);
  });

  it('puts an unknown field back at its field number, as a newer serializer would have written it', () => {
    // Graph field 100 sorts after every known GraphProto field (max 16); model field 999 after field 26.
    const graphBytes = encodeMessage(model.graph!, 'GraphProto');
    expect([...graphBytes.subarray(graphBytes.length - 4)]).toEqual([0xa0, 0x06, 0x96, 0x01]);
    expect([...bytes.subarray(bytes.length - 6)]).toEqual([0xba, 0x3e, 3, 1, 2, 3]);
  });

  it('onnx-proto (ONNX 1.10 schema) drops them: its re-encoding differs and lacks the newer fields', () => {
    const theirs = onnx.ModelProto.decode(bytes);
    const again = onnx.ModelProto.encode(theirs).finish();
    expect(bytesEqual(again, bytes)).toBe(false);
    expect(again.length).toBeLessThan(bytes.length);
    const lost = decodeModel(again);
    expect(lost.functions).toBeDefined(); // functions (field 25) came in IR 8 and survive...
    expect(lost.functions![0]!.overload).toBeUndefined(); // ...but not their overload,
    expect(lost.functions![0]!.valueInfo).toBeUndefined(); // value_info,
    expect(lost.functions![0]!.attributeProto).toBeUndefined(); // attribute_proto
    expect(lost.functions![0]!.metadataProps).toBeUndefined(); // and metadata_props;
    expect(lost.configuration).toBeUndefined();
    expect(lost.graph!.metadataProps).toBeUndefined();
    expect(lost.graph!.node![0]!.overload).toBeUndefined();
    expect(lost.graph!.node![0]!.deviceConfigurations).toBeUndefined();
    expect(lost.graph!.node![0]!.unknownFields).toBeUndefined();
    expect(lost.graph!.input![0]!.metadataProps).toBeUndefined();
    expect(lost.unknownFields).toBeUndefined();
    expect(diffMessages(lost, model)).toBeDefined();
  });

  it('keeps the packedness it read: dims packed (a proto3-style writer) and float_data unpacked come back as read', () => {
    // TensorProto{dims: packed [2, 3], float_data: unpacked [1.5]}: both differ from the schema's declared layout.
    const packedDims = Uint8Array.of(0x0a, 0x02, 0x02, 0x03);
    const unpackedFloat = Uint8Array.of(0x25, 0x00, 0x00, 0xc0, 0x3f);
    const bytesIn = new Uint8Array([...packedDims, ...unpackedFloat]);
    const t = decodeMessage<TensorProto>(bytesIn, 'TensorProto');
    expect([...t.dims!]).toEqual([2n, 3n]);
    expect([...t.floatData!]).toEqual([1.5]);
    expect(bytesEqual(encodeMessage(t, 'TensorProto'), bytesIn)).toBe(true);
    // A tensor built by hand gets the reference layout: dims unpacked, float_data packed.
    const fresh: TensorProto = { dims: BigInt64Array.of(2n, 3n), floatData: Float32Array.of(1.5) };
    expect([...encodeMessage(fresh, 'TensorProto')]).toEqual([0x08, 0x02, 0x08, 0x03, 0x22, 0x04, 0x00, 0x00, 0xc0, 0x3f]);
    expect(diffMessages(t, fresh, 'TensorProto')).toBeUndefined();
  });

  it('keeps scalars a canonical encoder would rewrite: invalid UTF-8, a non-minimal varint, a NaN payload', () => {
    const bytesIn = Uint8Array.of(
      0x0a, 0x02, 0xc3, 0x28, // name = invalid UTF-8
      0x15, 0x01, 0x00, 0x80, 0x7f, // f = NaN with a payload
      0x18, 0x81, 0x80, 0x00, // i = 1 as a 3-byte varint
    );
    const a = decodeMessage<Record<string, unknown>>(bytesIn, 'AttributeProto');
    expect(a['i']).toBe(1n);
    expect(Number.isNaN(a['f'])).toBe(true);
    expect(bytesEqual(encodeMessage(a, 'AttributeProto'), bytesIn)).toBe(true);
    // Once a value changes, the canonical encoding is written.
    const changed: Record<string, unknown> = { ...a, i: 2n };
    expect([...encodeMessage(changed, 'AttributeProto').subarray(9)]).toEqual([0x18, 0x02]);
  });

  it('refuses to encode values of the wrong type, naming the field', () => {
    const bad = { graph: { node: [{ input: ['a'], attribute: [{ i: 1.5 }] }] } } as unknown as ModelProto;
    expect(() => encodeModel(bad)).toThrow(/ModelProto\.graph\.node\[0\]\.attribute\[0\]\.i: expected a bigint/);
  });
});
