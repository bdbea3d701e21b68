/**
 * Ends move anywhere (issue 26): a channel end and a pipe end go main thread → worker → child
 * process → NATS → worker, each hop a different transport (shared memory, a socket, NATS, and a
 * relay into shared memory again), and the bound, the data and the close hold between the main
 * thread and the far worker as on a direct pair.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import {
  Channel,
  type ChannelOptions,
  DataPipe,
  type DataPipeConsumer,
  type DataPipeProducer,
  type Listener,
  listen,
  type NatsAddress,
  spawnWorker,
} from '../../../src/index.js';
import { throwsCode } from '../../channel/helpers.js';
import { type NatsServer, natsSuite, startNats } from '../nats/server.js';
import type { Command } from './far-worker.js';

const WAIT = { timeout: 30_000 };
/** Long enough for every hop to pass on what it can: none may open room by doing so. */
const SETTLE_MS = 300;

describe('an end moved main thread → worker → process → NATS → worker', natsSuite, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let listener: Listener<NatsAddress>;
  let toHop: Channel;
  let toFar: Channel;
  let far: Worker;
  const exits: Promise<unknown>[] = [];

  before(async () => {
    server = await startNats();
    nc = await natsConnect({ servers: server.url });
    listener = await listen({ nats: nc, service: 'chain' }, { insecure: true });
    const [hopCtl, forHop] = Channel.pair();
    toHop = hopCtl;
    const hop = await spawnWorker(new URL('./hop-worker.js', import.meta.url), {
      channels: { ctl: forHop },
      env: { ...process.env, CHAIN_NATS_URL: server.url },
    });
    const [farCtl, forFar] = Channel.pair();
    toFar = farCtl;
    const started = await spawnWorker(new URL('./far-worker.js', import.meta.url), {
      channels: { ctl: forFar },
    });
    far = started.worker;
    exits.push(hop.exited, started.exited);
    // The main thread's part: what arrives over NATS goes on into the far worker.
    const link = (await listener.accept()) as Channel;
    void (async () => {
      for await (const m of link) await toFar.sendWait(m);
      toFar.close();
    })();
  });

  after(async () => {
    toHop.close();
    await Promise.all(exits);
    await listener.close();
    await nc.close();
    await server.stop();
  });

  /** Posts `command` to the far worker; its result (an error code is a failure). */
  async function ask<T>(command: Command): Promise<T> {
    const answer = new Promise<{ result?: T; error?: string }>((resolve) =>
      far.once('message', resolve),
    );
    far.postMessage(command);
    const { result, error } = await answer;
    assert.equal(error, undefined, `${command.op}: ${error}`);
    return result as T;
  }

  /** Sends `end` down the chain; resolves once the far worker holds it. */
  async function sendDown(end: Channel | DataPipeConsumer | DataPipeProducer): Promise<string> {
    const arrived = new Promise<{ arrived: string }>((resolve) => far.once('message', resolve));
    toHop.send({ type: 0, handles: [end] });
    return (await arrived).arrived;
  }

  async function channelDown(options: ChannelOptions): Promise<Channel> {
    const [near, travelling] = Channel.pair(options);
    assert.equal(await sendDown(travelling), 'Channel');
    return near;
  }

  it('a channel: messages both ways, the bound exact at either end', WAIT, async () => {
    const near = await channelDown({ capacity: 4 });
    // The far worker sends to a main thread that reads nothing: exactly the capacity goes.
    assert.equal(await ask({ op: 'fill' }), 4);
    await delay(SETTLE_MS);
    assert.equal(await ask({ op: 'fill' }), 0);
    // All that was sent reaches the near queue, however long the hops take on a loaded machine.
    for (const deadline = Date.now() + 5000; near.stats.queuedMessages < 4; await delay(20)) {
      assert.ok(Date.now() < deadline, `${near.stats.queuedMessages} of 4 arrived in 5 s`);
    }
    // The main thread sends to a far worker that reads nothing: the same.
    for (let i = 0; i < 4; i++) near.send({ type: 10 + i, data: new Uint8Array([10 + i]) });
    throwsCode(() => near.send({ type: 99 }), 'BACKPRESSURE');
    await delay(SETTLE_MS);
    throwsCode(() => near.send({ type: 99 }), 'BACKPRESSURE');

    // What is read makes room again through every hop, and never more than the capacity.
    const types: number[] = [];
    for (let i = 0; i < 4; i++) types.push((await near.recv()).type);
    assert.deepEqual(types, [0, 1, 2, 3]);
    assert.equal(await ask({ op: 'send', count: 4 }), 4);
    await delay(SETTLE_MS);
    assert.equal(await ask({ op: 'fill' }), 0);
    assert.deepEqual(await ask({ op: 'take', count: 4 }), [10, 11, 12, 13]);
    for (let i = 0; i < 4; i++) await near.sendWait({ type: 14 + i }, { timeoutMs: 5000 });
    await delay(SETTLE_MS);
    throwsCode(() => near.send({ type: 99 }), 'BACKPRESSURE');
    for (let i = 0; i < 4; i++) assert.equal((await near.recv()).type, 4 + i);
    assert.deepEqual(await ask({ op: 'take', count: 4 }), [14, 15, 16, 17]);

    // Close seen at the far worker, after everything sent before it.
    await near.sendWait({ type: 20 }, { timeoutMs: 5000 });
    await near.sendWait({ type: 21 }, { timeoutMs: 5000 });
    near.close();
    assert.deepEqual(await ask({ op: 'drain' }), { types: [20, 21], closed: 'peer' });
  });

  it(
    'a channel: the far worker closes, the main thread sees it after the last message',
    WAIT,
    async () => {
      const near = await channelDown({ capacity: 2 });
      const sent = ask({ op: 'send', count: 5, thenClose: true });
      const types: number[] = [];
      for await (const m of near) types.push(m.type);
      assert.equal(await sent, 5);
      assert.deepEqual(types, [0, 1, 2, 3, 4]);
      assert.equal(await near.closed, 'peer');
    },
  );

  it(
    'a pipe consumer: the producer meets BACKPRESSURE after exactly the capacity',
    WAIT,
    async () => {
      const [producer, consumer] = DataPipe.create({ capacityBytes: 64 });
      assert.equal(await sendDown(consumer), 'DataPipeConsumer');
      const bytes = Uint8Array.from({ length: 64 }, (_, i) => i);
      assert.equal(producer.write(bytes), 64);
      throwsCode(() => producer.write(new Uint8Array(1)), 'BACKPRESSURE');
      await delay(SETTLE_MS);
      throwsCode(() => producer.write(new Uint8Array(1)), 'BACKPRESSURE');
      assert.deepEqual(await ask({ op: 'read', bytes: 64 }), [...bytes]);
      await producer.writeAll(bytes, { timeoutMs: 5000 });
      await delay(SETTLE_MS);
      assert.equal(producer.write(new Uint8Array(1), { partial: true }), 0);
      assert.deepEqual(await ask({ op: 'read', bytes: 64 }), [...bytes]);
      // Close seen both ways: the consumer's close fails the producer's writes.
      await ask({ op: 'close' });
      await producer.closed;
      throwsCode(() => producer.write(new Uint8Array(1)), 'PEER_CLOSED');
    },
  );

  it(
    'a pipe producer: at most the capacity written, the close seen after the bytes',
    WAIT,
    async () => {
      const [producer, consumer] = DataPipe.create({ capacityBytes: 64 });
      assert.equal(await sendDown(producer), 'DataPipeProducer');
      assert.equal(await ask({ op: 'writeFull' }), 64);
      await delay(SETTLE_MS);
      assert.equal(await ask({ op: 'writeFull' }), 0);
      await consumer.readable(64, { timeoutMs: 5000 });
      assert.deepEqual(await consumer.read(64), new Uint8Array(64).fill(7));
      // The room read here goes back up the chain: exactly 64 more.
      assert.equal(await writeFullWhenRoom(), 64);
      await ask({ op: 'close' });
      let total = 0;
      for await (const chunk of consumer) total += chunk.byteLength;
      assert.equal(total, 64);
    },
  );

  /** The far producer writes until its pipe is full again, waiting for the room to come back. */
  async function writeFullWhenRoom(): Promise<number> {
    let total = 0;
    const deadline = Date.now() + 5000;
    while (total < 64 && Date.now() < deadline) {
      total += await ask<number>({ op: 'writeFull' });
      await delay(20);
    }
    await delay(SETTLE_MS);
    return total + (await ask<number>({ op: 'writeFull' }));
  }
});
