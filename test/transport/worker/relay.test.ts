/**
 * A channel end that arrived over a socket moves on into a worker thread through a relay in the
 * thread that holds it (issue 26): the bound stays the capacity end to end, handles inside
 * relayed messages keep moving, close is seen both ways, and the moved end moves again.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import {
  Channel,
  type ChannelOptions,
  connect,
  DataPipe,
  type DataPipeConsumer,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  isIpcError,
  listen,
  privateSocketPath,
} from '../../../src/index.js';
import { homeArena } from '../../../src/shm/arena.js';
import { throwsCode } from '../../channel/helpers.js';
import { exitCode, fillArena, nextMessage, releaseBlocks, startWorker } from './workers.js';

const WAIT = { timeout: 20_000 };

/**
 * A pair whose `near` end arrived in this thread over a socket (its `far` end stays local,
 * bridged on the other side of the connection): `near` is what a relay must carry.
 */
async function overSocket(options: ChannelOptions = {}): Promise<{
  far: Channel;
  near: Channel;
  done(): Promise<void>;
}> {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [a, b] = await Promise.all([connect({ path }), listener.accept()]);
  const [far, travelling] = Channel.pair(options);
  a.send({ type: 0, handles: [travelling] });
  const [near] = (await (b as Channel).recv()).handles;
  assert.ok(near instanceof Channel);
  return {
    far,
    near,
    async done() {
      far.close();
      a.close();
      b?.close();
      await listener.close();
      await rm(dirname(path), { recursive: true, force: true });
    },
  };
}

function relayWorker(mode: string, more: Record<string, unknown> = {}, token?: EndpointToken) {
  return new Worker(new URL('./relay-worker.js', import.meta.url), {
    workerData: { mode, token, ...more },
    transferList: token?.transfer ?? [],
  });
}

describe('a channel end from a socket, moved into a worker thread', () => {
  it('carries messages both ways, with channel and pipe ends inside', WAIT, async () => {
    const { far, near, done } = await overSocket();
    const worker = startWorker('echo', exportEndpoint(near));
    far.send({ type: 1, data: new Uint8Array([1, 2, 3]) });
    const echoed = await far.recv();
    assert.equal(echoed.type, 2);
    assert.deepEqual(echoed.data, new Uint8Array([1, 2, 3]));

    // A channel end goes out to the worker and comes back, through the socket both ways.
    const [mine, theirs] = Channel.pair();
    far.send({ type: 5, handles: [theirs] });
    const back = await far.recv();
    assert.equal(back.type, 6);
    const returned = back.handles[0] as Channel;
    mine.send({ type: 9 });
    assert.equal((await returned.recv()).type, 9);
    returned.send({ type: 10 });
    assert.equal((await mine.recv()).type, 10);

    // So does a pipe end.
    const [producer, consumer] = DataPipe.create({ capacityBytes: 64 });
    far.send({ type: 7, handles: [consumer] });
    const pipeBack = await far.recv();
    producer.write(new Uint8Array([4, 5]));
    assert.deepEqual(
      await (pipeBack.handles[0] as DataPipeConsumer).read(2),
      new Uint8Array([4, 5]),
    );
    producer.close();
    mine.close();
    returned.close();

    far.close();
    assert.equal(await exitCode(worker), 0);
    await done();
  });

  it('the far sender meets BACKPRESSURE after exactly the capacity unread', WAIT, async () => {
    const { far, near, done } = await overSocket({ capacity: 4 });
    const worker = startWorker('hold', exportEndpoint(near));
    assert.equal(await nextMessage(worker), 'ready');
    for (let i = 0; i < 4; i++) far.send({ type: i });
    throwsCode(() => far.send({ type: 99 }), 'BACKPRESSURE');
    // Long enough for the relay to pass everything on: it must not open room by doing so.
    await delay(300);
    throwsCode(() => far.send({ type: 99 }), 'BACKPRESSURE');
    // A sleeping relay hears of room once half the queue is read, as a sleeping sender would.
    worker.postMessage({ take: 2 });
    assert.deepEqual(await nextMessage(worker), [0, 1]);
    await far.writable(0, { timeoutMs: 5000 });
    far.send({ type: 4 });
    await far.writable(0, { timeoutMs: 5000 });
    far.send({ type: 5 });
    await delay(300);
    throwsCode(() => far.send({ type: 99 }), 'BACKPRESSURE');
    worker.postMessage({ take: 5 });
    assert.deepEqual(await nextMessage(worker), [2, 3, 4, 5, -1]);
    await worker.terminate();
    await done();
  });

  it(
    'a sender in the worker meets BACKPRESSURE after exactly the capacity unread',
    WAIT,
    async () => {
      const { far, near, done } = await overSocket({ capacity: 4 });
      const worker = relayWorker('fill', {}, exportEndpoint(near));
      assert.equal(await nextMessage(worker), 4);
      await delay(300);
      worker.postMessage('again');
      assert.equal(await nextMessage(worker), 0);
      assert.equal((await far.recv()).type, 0);
      await delay(300);
      worker.postMessage('again');
      assert.equal(await nextMessage(worker), 1);
      await delay(100);
      assert.equal(far.stats.queuedMessages, 4, 'all that was sent waits in the far queue');
      const types: number[] = [];
      for (let i = 0; i < 4; i++) types.push((await far.recv()).type);
      assert.deepEqual(types, [1, 2, 3, 0]);
      worker.postMessage('close');
      assert.equal(await far.closed, 'peer');
      await done();
    },
  );

  it('the far end sees PEER_CLOSED after everything the worker sent', WAIT, async () => {
    const { far, near, done } = await overSocket({ capacity: 2 });
    const worker = relayWorker('sendThenClose', {}, exportEndpoint(near));
    const closed = nextMessage(worker);
    worker.postMessage(5);
    const types: number[] = [];
    for await (const m of far) types.push(m.type);
    assert.deepEqual(types, [0, 1, 2, 3, 4]);
    assert.equal(await far.closed, 'peer');
    assert.equal(await closed, 'closed');
    await done();
  });

  it('the worker sees PEER_CLOSED after everything the far end sent', WAIT, async () => {
    const { far, near, done } = await overSocket({ capacity: 8 });
    const worker = relayWorker('drain', {}, exportEndpoint(near));
    assert.equal(await nextMessage(worker), 'ready');
    for (let i = 0; i < 5; i++) far.send({ type: i });
    far.close();
    assert.deepEqual(await nextMessage(worker), [0, 1, 2, 3, 4]);
    await done();
  });

  it('moves on: back out of the worker, and out over a socket again', WAIT, async () => {
    const { far, near, done } = await overSocket();
    const worker = startWorker('reexport', exportEndpoint(near));
    const again = importEndpoint(await nextMessage<EndpointToken>(worker));
    again.send({ type: 1 });
    assert.equal((await far.recv()).type, 1);
    far.send({ type: 2 });
    assert.equal((await again.recv()).type, 2);

    const path = await privateSocketPath();
    const listener = await listen({ path });
    const [a, b] = await Promise.all([connect({ path }), listener.accept()]);
    a.send({ type: 0, handles: [again] });
    const [overSocketAgain] = (await (b as Channel).recv()).handles as Channel[];
    (overSocketAgain as Channel).send({ type: 3 });
    assert.equal((await far.recv()).type, 3);
    far.send({ type: 4 });
    assert.equal((await (overSocketAgain as Channel).recv()).type, 4);
    (overSocketAgain as Channel).close();
    assert.equal(await far.closed, 'peer');
    a.close();
    b?.close();
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
    await done();
  });

  it('when the relaying thread dies, both far ends see PEER_CLOSED', WAIT, async () => {
    const path = await privateSocketPath();
    const listener = await listen({ path });
    const relaying = relayWorker('connectAndExport', { path });
    const root = (await listener.accept()) as Channel;
    const [far, travelling] = Channel.pair();
    root.send({ type: 0, handles: [travelling] });
    const moved = importEndpoint(await nextMessage<EndpointToken>(relaying));
    moved.send({ type: 1 });
    assert.equal((await far.recv()).type, 1);
    far.send({ type: 2 });
    assert.equal((await moved.recv()).type, 2);
    await relaying.terminate();
    assert.equal(await moved.closed, 'peer');
    assert.equal(await far.closed, 'peer');
    root.close();
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });

  it('a message it cannot pass on closes both ends and publishes relay-error', WAIT, async () => {
    const { far, near, done } = await overSocket({ capacity: 1 });
    const worker = relayWorker('drain', {}, exportEndpoint(near));
    assert.equal(await nextMessage(worker), 'ready');
    const errors: unknown[] = [];
    const onError = ({ error }: { error: unknown }) => errors.push(error);
    diagnosticsChannel.subscribe('ftl-ipc:channel:relay-error', onError as never);
    // With a capacity of 1, room comes back once the worker has read it: the relay is idle.
    far.send({ type: 0 });
    await far.writable(0, { timeoutMs: 5000 });
    // A channel end inside needs shared memory for its own pair, and there is none left.
    const [x, y] = Channel.pair();
    const arena = homeArena();
    const blocks = fillArena(arena);
    try {
      far.send({ type: 1, handles: [x] });
      await far.closed;
    } finally {
      releaseBlocks(arena, blocks);
      diagnosticsChannel.unsubscribe('ftl-ipc:channel:relay-error', onError as never);
    }
    assert.equal(errors.length, 1);
    assert.ok(isIpcError(errors[0], 'RESOURCE_EXHAUSTED'), String(errors[0]));
    // The worker read what went before, then saw its peer close; the end inside was closed.
    assert.deepEqual(await nextMessage(worker), [0]);
    assert.equal(await y.closed, 'peer');
    await done();
  });
});
