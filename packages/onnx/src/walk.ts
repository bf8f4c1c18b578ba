// Visiting every TensorProto of a message tree (initializers, Constant and attribute tensors, sparse values
// and indices, subgraphs at any depth, functions, training graphs), driven by the schema.
import { SCHEMA, isScalar, type MessageName } from './schema.js';
import type { Message, TensorProto } from './types.js';

type Obj = Record<string, unknown> & Message;

/** Message types from which a TensorProto can be reached: the walk skips the others (types, shapes...). */
const HOLDS_TENSORS: ReadonlySet<MessageName> = (() => {
  const holds = new Set<MessageName>(['TensorProto']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const spec of Object.values(SCHEMA)) {
      if (holds.has(spec.name)) continue;
      if (spec.fields.some((f) => !isScalar(f.type) && holds.has(f.type as MessageName))) {
        holds.add(spec.name);
        grew = true;
      }
    }
  }
  return holds;
})();

/** Returns a copy of `msg` where every tensor is replaced by fn(tensor); untouched branches are shared. */
export function mapTensors<T extends Message>(
  msg: T,
  type: MessageName,
  fn: (tensor: TensorProto, path: string) => TensorProto,
  path: string = type,
): T {
  if (type === 'TensorProto') return fn(msg as TensorProto, path) as T;
  let out: Obj | undefined;
  for (const field of SCHEMA[type].fields) {
    if (isScalar(field.type) || !HOLDS_TENSORS.has(field.type as MessageName)) continue;
    const sub = field.type as MessageName;
    const value = (msg as Obj)[field.name];
    if (value === undefined) continue;
    let mapped: unknown;
    if (field.repeated) {
      const list = value as Message[];
      const next = list.map((m, i) => mapTensors(m, sub, fn, `${path}.${field.name}[${i}]`));
      mapped = next.some((m, i) => m !== list[i]) ? next : value;
    } else {
      mapped = mapTensors(value as Message, sub, fn, `${path}.${field.name}`);
    }
    if (mapped !== value) (out ??= { ...(msg as Obj) })[field.name] = mapped;
  }
  return (out ?? msg) as T;
}

/** Calls fn on every tensor of the tree. */
export function forEachTensor(msg: Message, type: MessageName, fn: (tensor: TensorProto, path: string) => void): void {
  mapTensors(msg, type, (t, p) => {
    fn(t, p);
    return t;
  });
}
