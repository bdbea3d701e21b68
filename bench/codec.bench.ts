/**
 * Encode plus decode of one representative message (four integers, a 64-byte string, a 1 KiB
 * payload) with the generated codec, the runtime codec, JSON (bytes as base64, text as UTF-8, as
 * it must be to travel in a Channel) and protobuf-es with the equivalent schema, built from a
 * descriptor at run time. Run: npm run bench:codec
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  fromBinary,
  toBinary,
} from '@bufbuild/protobuf';
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Bench } from 'tinybench';
import { loadIdlOrThrow } from '../src/idl/index.js';
import type { Message } from '../src/index.js';
import { decodeMessage, encodeMessage, runtimeDescriptors } from '../src/wire/index.js';
import { type Reading, reading } from './bench.generated.js';

const value: Reading = {
  id: 123_456,
  offset: -42,
  port: 8080,
  priority: 3,
  label: 'sensor/kitchen/temperature-and-humidity/ground-floor/north-wall!'.slice(0, 64),
  payload: Uint8Array.from({ length: 1024 }, (_, i) => (i * 31) & 0xff),
};

const received = (m: ReturnType<typeof encodeMessage>): Message => ({
  type: m.type,
  data: m.data!,
  handles: [],
});

const runtime = runtimeDescriptors(
  loadIdlOrThrow([new URL('../../bench/bench.yaml', import.meta.url).pathname]),
);
const runtimeReading = runtime.get('bench.sample.reading')!;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

const { UINT32, INT32, STRING, BYTES } = FieldDescriptorProto_Type;
const file = create(FileDescriptorProtoSchema, {
  name: 'bench.proto',
  package: 'bench',
  syntax: 'proto3',
  messageType: [
    {
      name: 'Reading',
      field: [
        ['id', UINT32],
        ['offset', INT32],
        ['port', UINT32],
        ['priority', UINT32],
        ['label', STRING],
        ['payload', BYTES],
      ].map(([name, type], i) => ({
        name: name as string,
        number: i + 1,
        type: type as FieldDescriptorProto_Type,
        jsonName: name as string,
      })),
    },
  ],
});
const ReadingSchema = createFileRegistry(file, () => undefined).getMessage(
  'bench.Reading',
) as DescMessage;
const protoValue = create(ReadingSchema, value as never);

const tasks: Record<string, () => unknown> = {
  'ftl-ipc generated': () => decodeMessage(reading, received(encodeMessage(reading, value))),
  'ftl-ipc runtime codec': () =>
    decodeMessage(runtimeReading, received(encodeMessage(runtimeReading, value as never))),
  JSON: () => {
    const bytes = utf8.encode(
      JSON.stringify({ ...value, payload: Buffer.from(value.payload).toString('base64') }),
    );
    const parsed = JSON.parse(fromUtf8.decode(bytes)) as Reading & { payload: string };
    return { ...parsed, payload: new Uint8Array(Buffer.from(parsed.payload, 'base64')) };
  },
  'protobuf-es': () => fromBinary(ReadingSchema, toBinary(ReadingSchema, protoValue)),
};

// Each must give back what went in, or the comparison means nothing.
for (const [name, run] of Object.entries(tasks)) {
  const out = run() as Record<string, unknown>;
  for (const key of Object.keys(value) as (keyof Reading)[]) {
    if (String(out[key]) !== String(value[key])) throw new Error(`${name} changed ${key}`);
  }
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
for (const [name, run] of Object.entries(tasks)) bench.add(name, run);
await bench.run();

const rate = (name: string) => {
  const task = bench.getTask(name);
  if (task?.result?.state !== 'completed') throw new Error(`${name} did not complete`);
  return task.result.throughput.mean;
};
const ours = rate('ftl-ipc generated');
const rows = Object.keys(tasks).map(
  (name) =>
    `| ${name} | ${(rate(name) / 1e3).toFixed(0)} k/s | ${(ours / rate(name)).toFixed(2)}x |`,
);
process.stdout.write(
  `| codec | encode+decode | ftl-ipc generated is |\n| --- | --- | --- |\n${rows.join('\n')}\n`,
);
