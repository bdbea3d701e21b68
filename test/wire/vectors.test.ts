import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { IpcError, type Message } from 'ftl-ipc';
import {
  type CallDescriptor,
  decodeMessage,
  encodeMessage,
  encodeReply,
  type MessageDescriptor,
  MessageTable,
  Reader,
  runtimeDescriptors,
} from 'ftl-ipc/wire';
import { messagesByName } from '../../src/idl/index.js';
import { camelCase } from '../../src/idl/names.js';
import { decodeReply } from '../../src/wire/message.js';
import {
  bytesToHex,
  fromJson,
  handlesOf,
  hexToBytes,
  loadVectorSchema,
  type Vectors,
  vectorsDir,
} from '../vectors/json.js';
import * as generated from '../vectors/vectors.generated.js';

const load = (file: string) =>
  JSON.parse(readFileSync(`${vectorsDir}${file}`, 'utf8')) as Pick<Vectors, 'valid' | 'invalid'>;
// boundaries.json: every sized field at its capacity and one past it.
const vectors = [load('vectors.json'), load('boundaries.json')].reduce((all, more) => ({
  valid: [...all.valid, ...more.valid],
  invalid: [...all.invalid, ...more.invalid],
}));
const packages = loadVectorSchema();
const runtime = runtimeDescriptors(packages);
const defs = messagesByName(packages);

type AnyDescriptor = CallDescriptor<Record<string, unknown>, Record<string, unknown>>;

/** The same message's descriptor from the generated module and from the runtime codec. */
function codecs(message: string): [string, AnyDescriptor][] {
  const fromGenerated = (generated as unknown as Record<string, AnyDescriptor>)[
    camelCase(message.split('.').at(-1)!)
  ]!;
  return [
    ['generated', fromGenerated],
    ['runtime', runtime.get(message) as AnyDescriptor],
  ];
}

const hex = (data: Uint8Array) =>
  bytesToHex(data)
    .replace(/(.{16})/g, '$1 ')
    .trim();

describe('wire vectors', () => {
  for (const v of vectors.valid) {
    for (const [codec, d] of codecs(v.message)) {
      it(`${v.name} (${codec})`, () => {
        const def = defs.get(v.message)!;
        const handles = handlesOf(v.handles ?? []);
        const fields = v.reply ? def.returns! : def.params;
        const message: Message = { type: Number(v.type), data: hexToBytes(v.hex), handles };
        if (v.error) {
          const result = decodeReply(d, new Reader(message), message);
          assert.ok(
            result instanceof IpcError &&
              result.code === 'REMOTE_ERROR' &&
              result.message.includes(v.error.text),
          );
          return;
        }
        const value = fromJson(fields, v.value!, handles);
        const encoded = v.reply
          ? encodeReply(d, v.txid!, value)
          : encodeMessage(d, value, v.txid ?? 0);
        assert.equal(`0x${encoded.type.toString(16).padStart(8, '0')}`, v.type);
        assert.equal(hex(encoded.data!), v.hex);
        assert.equal(encoded.data![3], v.flags);
        assert.deepEqual(encoded.handles ?? [], handles);
        const decoded = v.reply
          ? decodeReply(d, new Reader(message), message)
          : decodeMessage(d, message);
        assert.deepEqual(decoded, value);
      });
    }
  }

  for (const v of vectors.invalid) {
    for (const [codec] of codecs(v.message)) {
      it(`rejects: ${v.name} (${codec})`, () => {
        const table = new MessageTable(
          [...runtime.keys()].map(
            (name) => codecs(name).find(([c]) => c === codec)![1] as MessageDescriptor<unknown>,
          ),
        );
        const d = codecs(v.message)[0]![1];
        const message: Message = {
          type: d.id,
          data: hexToBytes(v.hex),
          handles: handlesOf(v.handles ?? []),
        };
        assert.throws(
          () => table.decode(message),
          (e: unknown) =>
            e instanceof IpcError &&
            e.code === 'INVALID_MESSAGE' &&
            e.message.startsWith(`${v.path}: `),
        );
      });
    }
  }

  it('rejects a type id the side does not receive', () => {
    const table = new MessageTable([generated.empty]);
    assert.throws(
      () => table.decode({ type: 1, data: hexToBytes('4649010000000000'), handles: [] }),
      /\(message\): type id 1/,
    );
  });
});
