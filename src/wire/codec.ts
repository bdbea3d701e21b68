import { messagesByName } from '../idl/ids.js';
import type { FieldDef, MessageDef, PackageDef, PrimitiveName, TypeSpec } from '../idl/model.js';
import { names } from '../idl/names.js';
import { minBytes, optionalTailStart } from '../idl/size.js';
import type { CallDescriptor, MessageDescriptor } from './message.js';
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/**
 * Codecs built from a parsed IDL at run time, for tools and tests that have no generated code.
 * Values have the same shape as the generated types (camel-case keys) and the descriptors work
 * with encodeMessage, RpcClient and RpcServer; the bytes are the same because both write
 * through Writer and read through Reader in declaration order.
 */

type Value = Record<string, unknown>;
type Write = (w: Writer, field: string | number, v: never) => void;
type Read = (r: Reader, field: string | number) => unknown;

interface Codec {
  readonly write: Write;
  readonly read: Read;
}

const primitives: Record<PrimitiveName, Codec> = {
  bool: { write: (w, f, v) => w.bool(f, v), read: (r, f) => r.bool(f) },
  int8: { write: (w, f, v) => w.i8(f, v), read: (r, f) => r.i8(f) },
  int16: { write: (w, f, v) => w.i16(f, v), read: (r, f) => r.i16(f) },
  int32: { write: (w, f, v) => w.i32(f, v), read: (r, f) => r.i32(f) },
  int64: { write: (w, f, v) => w.i64(f, v), read: (r, f) => r.i64(f) },
  uint8: { write: (w, f, v) => w.u8(f, v), read: (r, f) => r.u8(f) },
  uint16: { write: (w, f, v) => w.u16(f, v), read: (r, f) => r.u16(f) },
  uint32: { write: (w, f, v) => w.u32(f, v), read: (r, f) => r.u32(f) },
  uint64: { write: (w, f, v) => w.u64(f, v), read: (r, f) => r.u64(f) },
  float32: { write: (w, f, v) => w.f32(f, v), read: (r, f) => r.f32(f) },
  float64: { write: (w, f, v) => w.f64(f, v), read: (r, f) => r.f64(f) },
};

function codecOf(type: TypeSpec, structs: Map<unknown, Body>): Codec {
  switch (type.kind) {
    case 'primitive':
      return primitives[type.name];
    case 'string':
      return {
        write: (w, f, v) => w.string(f, v, type.capacity),
        read: (r, f) => r.string(f, type.capacity),
      };
    case 'bytes':
      return {
        write: (w, f, v) => w.bytes(f, v, type.capacity),
        read: (r, f) => r.bytes(f, type.capacity),
      };
    case 'channel':
      return { write: (w, f, v) => w.channel(f, v), read: (r, f) => r.channel(f) };
    case 'pipe':
      return {
        write: (w, f, v) => w.pipe(f, v, type.end),
        read: (r, f) => r.pipe(f, type.end),
      };
    case 'enum': {
      const values = new Set(type.enum.members.map((m) => m.value));
      return { write: (w, f, v) => w.enum(f, v, values), read: (r, f) => r.enum(f, values) };
    }
    case 'struct': {
      const body = bodyOf(type.struct.fields, false, structs, type.struct);
      return {
        write: (w, f, v: Value) => w.struct(f, v, body.encode),
        read: (r, f) => r.struct(f, body.decode),
      };
    }
    case 'array': {
      const item = codecOf(type.items, structs);
      const min = minBytes(type.items);
      const writeItem = (w: Writer, v: never, i: number) => item.write(w, i, v);
      const readItem = (r: Reader, i: number) => item.read(r, i);
      return {
        write: (w, f, v: unknown[]) => w.array(f, v as never[], type.capacity, writeItem),
        read: (r, f) => r.array(f, type.capacity, min, readItem),
      };
    }
  }
}

interface Body {
  encode: (w: Writer, v: Value) => void;
  decode: (r: Reader) => Value;
}

/** Structs are compiled once and shared, however many fields use them. */
function bodyOf(
  fields: readonly FieldDef[],
  topLevel: boolean,
  structs: Map<unknown, Body>,
  key?: unknown,
): Body {
  const cached = key === undefined ? undefined : structs.get(key);
  if (cached) return cached;
  const tail = topLevel ? optionalTailStart(fields) : fields.length;
  const compiled = fields.map((f, i) => ({
    key: names.field(f.name),
    name: f.name,
    optional: f.optional,
    inTail: i >= tail,
    codec: codecOf(f.type, structs),
  }));
  const body: Body = {
    encode: (w, v) => {
      for (const f of compiled) {
        const value = v[f.key] as never;
        if (f.optional && !(f.inTail ? w.tailPresent(value) : w.present(value))) continue;
        f.codec.write(w, f.name, value);
      }
    },
    decode: (r) => {
      const out: Value = {};
      for (const f of compiled) {
        if (f.optional && !(f.inTail ? r.tailPresent(f.name) : r.present(f.name))) continue;
        out[f.key] = f.codec.read(r, f.name);
      }
      return out;
    },
  };
  if (key !== undefined) structs.set(key, body);
  return body;
}

/** Descriptors for every message of the packages, by `package.protocol.message`. */
export function runtimeDescriptors(
  packages: readonly PackageDef[],
): Map<string, MessageDescriptor<Value> | CallDescriptor<Value, Value>> {
  const structs = new Map<unknown, Body>();
  const out = new Map<string, MessageDescriptor<Value> | CallDescriptor<Value, Value>>();
  for (const [name, m] of messagesByName(packages)) out.set(name, descriptorOf(m, structs));
  return out;
}

function descriptorOf(
  m: MessageDef,
  structs: Map<unknown, Body>,
): MessageDescriptor<Value> | CallDescriptor<Value, Value> {
  const params = bodyOf(m.params, true, structs);
  const base = {
    name: `${m.pkg}.${m.protocol}.${m.name}`,
    kind: names.method(m.name),
    id: m.id,
    encode: params.encode,
    decode: params.decode,
  };
  if (m.kind === 'push' || m.replyId === undefined) return base;
  const returns = bodyOf(m.returns ?? [], true, structs);
  return { ...base, replyId: m.replyId, encodeReply: returns.encode, decodeReply: returns.decode };
}
