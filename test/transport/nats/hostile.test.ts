/*
 * Hostile peers over NATS: the frames of the socket transport's malformed-peer tests, and what
 * only NATS adds (a message too short for its header, a sequence gap, a connect request naming a
 * subject outside the prefix). Each time the offender loses its own connection, nothing else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import {
  type Channel,
  connect,
  type Listener,
  listen,
  type NatsAddress,
} from '../../../src/index.js';
import { FRAME_MSG, HEADER_BYTES, writeHeader } from '../../../src/transport/socket/frame.js';
import { frame, rawHello, socketErrors, until } from '../socket/helpers.js';
import { rawNatsPeer } from './helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

const LIMITS = { capacity: 2, capacityBytes: 1024, maxMessageBytes: 512, maxHandles: 4 };

describe('a hostile peer over NATS', natsSuite, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let listener: Listener<NatsAddress>;
  before(async () => {
    server = await startNats();
    nc = await natsConnect({ servers: server.url });
    listener = await listen(
      { nats: nc, service: 'victim' },
      {
        ...LIMITS,
        heartbeatMs: 0,
        insecure: true,
      },
    );
  });
  after(async () => {
    await listener.close();
    // The connections a raw peer left open end with it.
    await nc.close();
    await server.stop();
  });

  async function stillServes(): Promise<void> {
    const [a, b] = await Promise.all([
      connect(listener.address, { insecure: true }),
      listener.accept(),
    ]);
    a.send({ type: 42 });
    assert.equal((await (b as Channel).recv()).type, 42);
    a.close();
    b?.close();
  }

  /** Handshakes as a raw peer, sends `frames`, expects its connection closed (reset). */
  async function expectClosed(
    frames: (peer: Awaited<ReturnType<typeof rawNatsPeer>>) => void,
    reason?: RegExp,
  ): Promise<Channel> {
    const seen = socketErrors();
    const peer = await rawNatsPeer(server.url, 'victim');
    try {
      peer.send(rawHello(LIMITS));
      const root = (await listener.accept()) as Channel;
      frames(peer);
      await peer.ended;
      assert.equal(await root.closed, 'peer');
      if (reason !== undefined) {
        await until('the error', () => seen.errors.length > 0);
        assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
        assert.match(seen.errors[0]?.message ?? '', reason);
      }
      return root;
    } finally {
      seen.stop();
      await peer.close();
    }
  }

  it('sends more than its credits; what arrived before is still delivered', async () => {
    const root = await expectClosed((peer) => {
      for (const type of [1, 2, 3]) peer.send(frame(FRAME_MSG, 0, type));
    }, /exceeds the credits granted \(0 messages/);
    assert.equal((await root.recv()).type, 1);
    assert.equal((await root.recv()).type, 2);
    await stillServes();
  });

  it('announces an oversized length, or an unknown frame type or channel id', async () => {
    const header = Buffer.alloc(HEADER_BYTES);
    writeHeader(header, 0, 0xffff_fff0, FRAME_MSG, 0, 0, 0);
    await expectClosed((peer) => peer.send(header), /exceeds its maxMessageBytes 512/);
    await expectClosed((peer) => peer.send(frame(99, 0, 0)), /unknown frame type 99/);
    await expectClosed((peer) => peer.send(frame(FRAME_MSG, 777, 1)), /unknown channel id 777/);
    await stillServes();
  });

  it('splits a frame over NATS messages: reassembled like a socket stream', async () => {
    const peer = await rawNatsPeer(server.url, 'victim');
    peer.send(rawHello(LIMITS));
    const root = (await listener.accept()) as Channel;
    const msg = frame(FRAME_MSG, 0, 5, Buffer.from('hello'));
    for (let i = 0; i < msg.length; i++) peer.send(msg.subarray(i, i + 1));
    const got = await root.recv();
    assert.equal(got.type, 5);
    assert.equal(Buffer.from(got.data).toString(), 'hello');
    root.close();
    await peer.close();
  });

  it('skips a number (as a lost message would): never a hole; the rest is asked for again', async () => {
    const peer = await rawNatsPeer(server.url, 'victim');
    try {
      peer.send(rawHello(LIMITS));
      const root = (await listener.accept()) as Channel;
      peer.send(frame(FRAME_MSG, 0, 1));
      peer.send(frame(FRAME_MSG, 0, 2), { seq: 5 });
      assert.equal((await root.recv()).type, 1);
      // RESEND (kind 4) of message 2: the listener has 0, 1 and wants what follows.
      await until('a RESEND', () => peer.received.some((m) => m[8] === 4 && m[0] === 2));
      assert.equal(root.tryRecv(), undefined);
      peer.send(frame(FRAME_MSG, 0, 2), { seq: 2 });
      assert.equal((await root.recv()).type, 2);
      root.close();
    } finally {
      await peer.close();
    }
    await stillServes();
  });

  it('sends a message shorter than its header, or of an unknown kind', async () => {
    await expectClosed((peer) => peer.publishRaw(new Uint8Array(3)));
    await expectClosed((peer) => peer.send(Buffer.alloc(0), { kind: 9 }));
    await stillServes();
  });

  it('a connect request naming a foreign reply subject: refused, nothing published there', async () => {
    const seen = socketErrors();
    const peer = await rawNatsPeer(server.url, 'victim');
    const published: string[] = [];
    peer.nc.subscribe('orders.create', { callback: (_e, m) => void published.push(m.string()) });
    peer.nc.subscribe('ftl-ipc.c.abc', { callback: (_e, m) => void published.push(m.string()) });
    try {
      for (const reply of ['orders.create', 'ftl-ipc.c.abc']) {
        await assert.rejects(
          peer.nc.request('ftl-ipc.svc.victim', 'ftl-ipc nats 1 none', {
            timeout: 300,
            noMux: true,
            reply,
          }),
        );
      }
      await until('the errors', () => seen.errors.length >= 2);
      assert.match(
        seen.errors[0]?.message ?? '',
        /asked for an answer on "orders.create", not ftl-ipc.c.<id>.r/,
      );
      await peer.nc.flush();
      assert.deepEqual(published, []);
    } finally {
      seen.stop();
      await peer.close();
    }
    await stillServes();
  });
});
