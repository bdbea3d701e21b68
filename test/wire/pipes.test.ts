/** Pipe ends in IDL fields, moving over a real channel through the generated and runtime codecs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, DataPipe, isIpcError } from 'ftl-ipc';
import {
  decodeMessage,
  encodeMessage,
  type MessageDescriptor,
  runtimeDescriptors,
} from 'ftl-ipc/wire';
import { loadVectorSchema } from '../vectors/json.js';
import { AllClient, AllServer, type Pipes, pipes } from '../vectors/vectors.generated.js';

const runtimePipes = runtimeDescriptors(loadVectorSchema()).get(
  'vectors.all.pipes',
) as unknown as MessageDescriptor<Pipes>;
const code = (expected: string) => (e: unknown) => isIpcError(e) && e.code === expected;
const text = (s: string) => new TextEncoder().encode(s);

/** A value for the pipes message, and the ends its receiver does not get. */
function pipesValue() {
  const [sourceIn, source] = DataPipe.create({ capacityBytes: 16 });
  const [sink, sinkOut] = DataPipe.create({ capacityBytes: 16 });
  const [control, controlPeer] = Channel.pair();
  const value: Pipes = { source, control, sinks: [sink] };
  return { value, kept: { sourceIn, sinkOut, controlPeer } };
}

describe('pipe fields', () => {
  for (const [codec, d] of [
    ['generated', pipes],
    ['runtime', runtimePipes],
  ] as const) {
    it(`move pipe ends over a channel: the sender loses them, the receiver uses them (${codec})`, async () => {
      const [a, b] = Channel.pair();
      const { value, kept } = pipesValue();
      const { source, sinks } = value;
      a.send(encodeMessage(d, value));
      assert.throws(() => source.beginRead(), code('CLOSED'));
      assert.throws(() => sinks[0]!.write(text('x')), code('CLOSED'));
      const received = decodeMessage(d, await b.recv());
      kept.sourceIn.write(text('in'));
      assert.deepEqual(await received.source.read(), text('in'));
      received.sinks[0]!.write(text('out'));
      assert.deepEqual(await kept.sinkOut.read(), text('out'));
      received.control.send({ type: 1 });
      assert.equal((await kept.controlPeer.recv()).type, 1);
    });
  }

  it('both codecs write the same bytes, the optional tail included', () => {
    const { value } = pipesValue();
    const [spare] = DataPipe.create();
    for (const v of [value, { ...value, spare }]) {
      assert.deepEqual(encodeMessage(runtimePipes, v).data, encodeMessage(pipes, v).data);
    }
  });

  it('a generated client sends pipe ends to a generated server', async () => {
    const [a, b] = Channel.pair();
    const client = new AllClient(a);
    const server = new AllServer(b);
    const [spare, spareOut] = DataPipe.create();
    await client.pipesWait({ ...pipesValue().value, spare });
    const request = await server.recv();
    assert.equal(request.kind, 'pipes');
    if (request.kind !== 'pipes') return;
    await request.value.spare!.writeAll(text('spare'));
    request.value.spare!.close();
    const chunks: Uint8Array[] = [];
    for await (const chunk of spareOut) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks).toString(), 'spare');
  });

  it('refuses to encode the wrong end, naming the field', () => {
    const { value } = pipesValue();
    const [producer] = DataPipe.create();
    for (const d of [pipes, runtimePipes]) {
      assert.throws(
        () => encodeMessage(d, { ...value, source: producer as never }),
        (e: unknown) =>
          code('INVALID_ARGUMENT')(e) &&
          (e as Error).message.startsWith('source: expected a DataPipeConsumer'),
      );
      assert.throws(
        () => encodeMessage(d, { ...value, sinks: [value.source as never] }),
        (e: unknown) =>
          code('INVALID_ARGUMENT')(e) &&
          (e as Error).message.startsWith('sinks[0]: expected a DataPipeProducer'),
      );
    }
  });

  it('a server rejects the wrong end and closes every handle the message carried', async () => {
    const [a, b] = Channel.pair();
    const server = new AllServer(b);
    // A producer where the consumer is declared: each kept end sees its peer closed.
    const [wrong, wrongPeer] = DataPipe.create();
    const [control, controlPeer] = Channel.pair();
    const [sink, sinkOut] = DataPipe.create();
    const data = encodeMessage(pipes, pipesValue().value).data!;
    a.send({ type: pipes.id, data, handles: [wrong, control, sink] });
    await assert.rejects(
      server.recv(),
      (e: unknown) =>
        code('INVALID_MESSAGE')(e) &&
        (e as Error).message === 'source: handle 0 is a DataPipeProducer, not a DataPipeConsumer',
    );
    await wrongPeer.closed;
    await sinkOut.closed;
    assert.throws(() => wrongPeer.beginRead(), code('PEER_CLOSED'));
    assert.equal(await controlPeer.closed, 'peer');
    await assert.rejects(sinkOut.read(), code('PEER_CLOSED'));
  });
});
