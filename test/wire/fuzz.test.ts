/**
 * Property tests over the vectors schema, which uses every type: round trips through the
 * generated and the runtime codec, and random or mutated frames that must decode or fail with
 * INVALID_MESSAGE and nothing else, whatever decodes re-encoding to the same bytes, and frames one
 * past each capacity. 130,000 cases in all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Handle, IpcError, type Message } from 'ftl-ipc';
import {
  type CallDescriptor,
  decodeMessage,
  encodeMessage,
  type MessageDescriptor,
  MessageTable,
  runtimeDescriptors,
} from 'ftl-ipc/wire';
import { type FieldDef, messagesByName, type TypeSpec } from '../../src/idl/index.js';
import { camelCase } from '../../src/idl/names.js';
import { type HandleKind, handlesOf, loadVectorSchema } from '../vectors/json.js';
import * as generated from '../vectors/vectors.generated.js';

const packages = loadVectorSchema();
/** The same schema with every capacity one larger: it writes frames just past each limit. */
const widePackages = loadVectorSchema((path) =>
  readFileSync(path, 'utf8').replace(/capacity: (\d+)/g, (_, n) => `capacity: ${Number(n) + 1}`),
);
const runtime = runtimeDescriptors(packages);
const messages = [...messagesByName(packages).values()];

type Value = Record<string, unknown>;
type Descriptor = MessageDescriptor<Value>;

const generatedOf = (name: string) =>
  (generated as unknown as Record<string, Descriptor>)[camelCase(name)]!;
const runtimeOf = (m: (typeof messages)[number]) =>
  runtime.get(`${m.pkg}.${m.protocol}.${m.name}`) as Descriptor;

/** Cuts a string to at most `capacity` UTF-8 bytes without splitting a code point. */
function fitUtf8(s: string, capacity: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    bytes += Buffer.byteLength(ch);
    if (bytes > capacity) break;
    out += ch;
  }
  return out;
}

const integer = (min: number, max: number) => fc.integer({ min, max });
const handleKind = fc.constantFrom<HandleKind>('channel', 'producer', 'consumer');

function arbitraryOf(type: TypeSpec): fc.Arbitrary<unknown> {
  switch (type.kind) {
    case 'primitive':
      switch (type.name) {
        case 'bool':
          return fc.boolean();
        case 'int8':
          return integer(-128, 127);
        case 'int16':
          return integer(-32768, 32767);
        case 'int32':
          return integer(-(2 ** 31), 2 ** 31 - 1);
        case 'uint8':
          return integer(0, 255);
        case 'uint16':
          return integer(0, 65535);
        case 'uint32':
          return integer(0, 2 ** 32 - 1);
        case 'int64':
          return fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n);
        case 'uint64':
          return fc.bigInt(0n, 2n ** 64n - 1n);
        case 'float32':
          return fc.float();
        case 'float64':
          return fc.double();
      }
      break;
    case 'string':
      return fc.oneof(
        fc
          .string({ unit: 'binary', maxLength: type.capacity })
          .map((s) => fitUtf8(s, type.capacity)),
        // Often exactly full: the capacity is where a decoder's check can be off by one.
        fc.string({ unit: 'grapheme-ascii', minLength: type.capacity, maxLength: type.capacity }),
      );
    case 'bytes':
      return fc.oneof(
        fc.uint8Array({ maxLength: type.capacity }),
        fc.uint8Array({ minLength: type.capacity, maxLength: type.capacity }),
      );
    case 'channel':
    case 'pipe':
      return fc
        .constant<HandleKind>(type.kind === 'pipe' ? type.end : 'channel')
        .map((kind) => handlesOf([kind])[0]);
    case 'enum':
      return fc.constantFrom(...type.enum.members.map((m) => m.value));
    case 'array':
      return fc.oneof(
        fc.array(arbitraryOf(type.items), { maxLength: type.capacity }),
        fc.array(arbitraryOf(type.items), { minLength: type.capacity, maxLength: type.capacity }),
      );
    case 'struct':
      return recordOf(type.struct.fields);
  }
}

function recordOf(fields: readonly FieldDef[]): fc.Arbitrary<Value> {
  const model = Object.fromEntries(fields.map((f) => [camelCase(f.name), arbitraryOf(f.type)]));
  const requiredKeys = fields.filter((f) => !f.optional).map((f) => camelCase(f.name));
  return fc.record(model, { requiredKeys, noNullPrototype: true }) as fc.Arbitrary<Value>;
}

/** A message of any type with a valid value, as [generated descriptor, runtime descriptor, value]. */
const anyMessage = fc.oneof(
  ...messages.map((m) =>
    recordOf(m.params).map((value) => ({
      generated: generatedOf(m.name),
      runtime: runtimeOf(m),
      value,
      call: m.kind === 'call',
    })),
  ),
);

const everyone = (pick: (m: (typeof messages)[number]) => Descriptor) =>
  new MessageTable(messages.map(pick));
const tables = [everyone((m) => generatedOf(m.name)), everyone(runtimeOf)];

const FLAGS = 3;
const FLAG_ERROR = 2;

/** How many optional fields end each message's top-level list (they may be left out). */
const tailOf = new Map(
  messages.map((m) => {
    const firstOfTail = m.params.findLastIndex((f) => !f.optional) + 1;
    return [m.id, m.params.length - firstOfTail];
  }),
);

function containsNaN(value: unknown): boolean {
  if (typeof value === 'number') return Number.isNaN(value);
  if (Array.isArray(value)) return value.some(containsNaN);
  if (
    value !== null &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  )
    return Object.values(value).some(containsNaN);
  return false;
}

/**
 * A successful decode must be of a valid message: re-encoding the value gives the same bytes and
 * handles. The wire allows two other spellings, and only these: a NaN's payload bits, and the
 * `0` presence bytes of absent fields at the end of the tail, which an encoder leaves out.
 */
function reencodes(table: (typeof tables)[number], message: Message, decoded: Decoded): void {
  const d = table.get(message.type) as Descriptor;
  const again = encodeMessage(d, decoded.value as Value, decoded.txid);
  const bytes = again.data as Uint8Array;
  assert.ok(
    (again.handles ?? []).length === message.handles.length &&
      (again.handles ?? []).every((h, i) => h === message.handles[i]),
    `${d.name}: the handles do not re-encode to the ones received`,
  );
  if (containsNaN(decoded.value)) {
    assert.deepEqual(decodeMessage(d, { ...message, data: bytes }), decoded.value);
    return;
  }
  const extra = message.data.subarray(bytes.byteLength);
  const received = Uint8Array.from(message.data.subarray(0, bytes.byteLength));
  // Known gap, under its own todo test below: the ERROR flag is accepted without REPLY.
  if (received.byteLength > FLAGS) received[FLAGS]! &= ~FLAG_ERROR;
  const canonical = Buffer.from(received).equals(bytes);
  assert.ok(
    canonical && extra.byteLength <= (tailOf.get(message.type) ?? 0) && extra.every((b) => b === 0),
    `${d.name} decoded from ${Buffer.from(message.data).toString('hex')} re-encodes to ` +
      `${Buffer.from(bytes).toString('hex')}`,
  );
}

interface Decoded {
  txid: number;
  value: unknown;
}

/**
 * Decoding must succeed or throw INVALID_MESSAGE, and what it accepts must re-encode to the same
 * bytes (so a decoder that accepts too much fails); anything else fails the property.
 */
function decodesOrRejects(message: Message): void {
  for (const table of tables) {
    let decoded: Decoded;
    try {
      decoded = table.decode(message) as Decoded;
    } catch (error) {
      if (!(error instanceof IpcError) || error.code !== 'INVALID_MESSAGE') throw error;
      continue;
    }
    // A value the encoder refuses (INVALID_ARGUMENT) fails here too: it should not have decoded.
    reencodes(table, message, decoded);
  }
}

describe('codec properties', () => {
  it('decode of encode is the value, and both codecs write the same bytes (20,000 cases)', () => {
    fc.assert(
      fc.property(anyMessage, ({ generated: g, runtime: r, value, call }) => {
        const txid = call ? 7 : 0;
        const fromGenerated = encodeMessage(g, value, txid);
        const fromRuntime = encodeMessage(r, value, txid);
        assert.deepEqual(fromRuntime.data, fromGenerated.data);
        const received: Message = {
          type: fromGenerated.type,
          data: fromGenerated.data!,
          handles: [...(fromGenerated.handles ?? [])],
        };
        assert.deepEqual(decodeMessage(g, received), value);
        assert.deepEqual(decodeMessage(r, received), value);
      }),
      { numRuns: 20_000 },
    );
  });

  it('random frames decode or fail with INVALID_MESSAGE (40,000 cases)', () => {
    const ids = messages.map((m) => m.id);
    fc.assert(
      fc.property(
        fc.constantFrom(...ids),
        fc.boolean(),
        fc.uint8Array({ maxLength: 96 }),
        fc.array(handleKind, { maxLength: 3 }),
        (type, withHeader, bytes, kinds) => {
          const header = withHeader ? [0x46, 0x49, 1, 0, 0, 0, 0, 0] : [];
          const data = Uint8Array.from([...header, ...bytes]);
          decodesOrRejects({ type, data, handles: handlesOf(kinds) });
        },
      ),
      { numRuns: 40_000 },
    );
  });

  it('mutated valid frames decode or fail with INVALID_MESSAGE (40,000 cases)', () => {
    const mutation = fc.oneof(
      fc.record({
        op: fc.constant('flip' as const),
        at: fc.nat(),
        xor: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({
        op: fc.constant('insert' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
      fc.record({
        op: fc.constant('handles' as const),
        delta: fc.integer({ min: -2, max: 2 }),
        kind: handleKind,
      }),
    );
    fc.assert(
      fc.property(
        anyMessage,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        ({ generated: g, value, call }, mutations) => {
          const encoded = encodeMessage(g, value, call ? 1 : 0);
          const data = [...encoded.data!];
          const handles = [...(encoded.handles ?? [])] as Handle[];
          for (const m of mutations) {
            const at = m.op === 'handles' ? 0 : m.at % (data.length + 1);
            if (m.op === 'flip' && at < data.length) data[at]! ^= m.xor;
            else if (m.op === 'cut') data.length = at;
            else if (m.op === 'insert') data.splice(at, 0, m.byte);
            else if (m.op === 'delete') data.splice(at, 1);
            else if (m.op === 'handles') {
              if (m.delta > 0) handles.push(...handlesOf(Array(m.delta).fill(m.kind)));
              else handles.length = Math.max(0, handles.length + m.delta);
            }
          }
          decodesOrRejects({ type: encoded.type, data: Uint8Array.from(data), handles });
        },
      ),
      { numRuns: 40_000 },
    );
  });

  it('frames just past a capacity are rejected, frames within it decode (20,000 cases)', () => {
    const wide = runtimeDescriptors(widePackages);
    const overfull = fc.oneof(
      ...[...messagesByName(widePackages).values()].map((m) =>
        recordOf(m.params).map((value) => ({
          name: `${m.pkg}.${m.protocol}.${m.name}`,
          value,
          call: m.kind === 'call',
        })),
      ),
    );
    fc.assert(
      fc.property(overfull, ({ name, value, call }) => {
        const txid = call ? 3 : 0;
        const frame = encodeMessage(wide.get(name) as Descriptor, value, txid);
        const message: Message = {
          type: frame.type,
          data: frame.data!,
          handles: [...(frame.handles ?? [])],
        };
        // The strict encoder says whether the value fits; the decoders must agree with it.
        let fits = true;
        try {
          encodeMessage(runtime.get(name) as Descriptor, value, txid);
        } catch (error) {
          if (!(error instanceof IpcError) || error.code !== 'INVALID_ARGUMENT') throw error;
          fits = false;
        }
        for (const table of tables) {
          if (fits) assert.deepEqual((table.decode(message) as Decoded).value, value);
          else
            assert.throws(
              () => table.decode(message),
              (err: unknown) =>
                err instanceof IpcError &&
                err.code === 'INVALID_MESSAGE' &&
                /exceed the capacity/.test(err.message),
              `${name} with a field one past its capacity must not decode`,
            );
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('a push or request flagged ERROR but not REPLY is rejected', () => {
    const push = encodeMessage(generatedOf('empty'), {}, 0);
    const data = Uint8Array.from(push.data!);
    data[FLAGS] = FLAG_ERROR;
    for (const table of tables) {
      assert.throws(
        () => table.decode({ type: push.type, data, handles: [] }),
        (err: unknown) => err instanceof IpcError && err.code === 'INVALID_MESSAGE',
      );
    }
  });

  it('an integer field given an object that cannot become a number is INVALID_ARGUMENT', () => {
    const scalars = {
      flag: false,
      i8: 0,
      i16: 0,
      i32: 0,
      i64: 0n,
      u8: 0,
      u16: 0,
      u32: { toString: '' },
      u64: 0n,
      f32: 0,
      f64: 0,
    };
    assert.throws(
      () => encodeMessage(generatedOf('scalars') as CallDescriptor<Value, Value>, scalars, 1),
      (err: unknown) => err instanceof IpcError && err.code === 'INVALID_ARGUMENT',
    );
  });

  it('encoding a wrong value fails with INVALID_ARGUMENT only (10,000 cases)', () => {
    const mangled = fc.oneof(
      ...messages.map((m) =>
        fc
          .tuple(
            recordOf(m.params),
            fc.dictionary(
              fc.constantFrom(...m.params.map((f) => camelCase(f.name)), 'x'),
              fc.anything(),
            ),
          )
          .map(([value, junk]) => ({
            descriptor: generatedOf(m.name),
            value: { ...value, ...junk },
          })),
      ),
    );
    fc.assert(
      fc.property(mangled, ({ descriptor, value }) => {
        try {
          encodeMessage(descriptor as CallDescriptor<Value, Value>, value, 1);
        } catch (error) {
          if (!(error instanceof IpcError) || error.code !== 'INVALID_ARGUMENT') throw error;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
