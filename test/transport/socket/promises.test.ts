/** Promises of docs/socket-transport.md that no other test holds the transport to. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Channel,
  connect,
  DataPipe,
  type Listener,
  listen,
  privateSocketPath,
  type SocketAddress,
} from '../../../src/index.js';
import { rejectsCode, throwsCode } from '../../channel/helpers.js';
import { socketErrors, until } from './helpers.js';

async function unixListener(
  options: Parameters<typeof listen>[1] = {},
): Promise<{ listener: Listener; address: SocketAddress }> {
  const path = await privateSocketPath();
  return { listener: await listen({ path }, options), address: { path } };
}

describe('listener', () => {
  it('backlog defaults to 64: connections beyond 64 not yet taken are closed', async () => {
    const { listener, address } = await unixListener();
    const clients = await Promise.all(Array.from({ length: 65 }, () => connect(address)));
    const closed = new Set<number>();
    for (const [i, c] of clients.entries()) void c.closed.then(() => closed.add(i));
    await until('one client closed', () => closed.size >= 1);
    // Give a wrong second close time to arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(closed.size, 1, `closed: ${[...closed]}`);
    const taken: Channel[] = [];
    for (let i = 0; i < 64; i++) taken.push((await listener.accept()) as Channel);
    // Every taken channel is live: its client can talk to it.
    for (const [i, c] of clients.entries()) if (!closed.has(i)) c.send({ type: i });
    const types = await Promise.all(taken.map(async (ch) => (await ch.recv()).type));
    assert.equal(new Set(types).size, 64);
    // Room again in the backlog: a new connection is kept.
    const late = await connect(address);
    const lateRoot = (await listener.accept()) as Channel;
    late.send({ type: 99 });
    assert.equal((await lateRoot.recv()).type, 99);
    for (const c of [...clients, late, ...taken, lateRoot]) c.close();
    await listener.close();
  });

  it('close() stops accepting; channels already taken stay open, those not taken are closed', async () => {
    const { listener, address } = await unixListener();
    const [first, second] = [await connect(address), await connect(address)];
    const taken = (await listener.accept()) as Channel;
    await listener.close();
    assert.equal(await listener.accept(), undefined);
    await rejectsCode(connect(address), 'CONNECTION_FAILED');
    // Whichever of the two was taken still works both ways; the other one was closed.
    const [kept, dropped] = await Promise.race([
      first.closed.then(() => [second, first] as const),
      second.closed.then(() => [first, second] as const),
    ]);
    assert.equal(await dropped.closed, 'peer');
    kept.send({ type: 1 });
    assert.equal((await taken.recv()).type, 1);
    taken.send({ type: 2 });
    assert.equal((await kept.recv()).type, 2);
    kept.close();
    dropped.close();
    assert.equal(await taken.closed, 'peer');
    taken.close();
  });
});

describe('TLS', () => {
  it('listen refuses TLS on a Unix socket', async () => {
    const path = await privateSocketPath();
    await rejectsCode(listen({ path }, { tls: {} }), 'INVALID_ARGUMENT');
  });

  it('connect refuses TLS on a Unix socket', async () => {
    const { listener, address } = await unixListener();
    try {
      await rejectsCode(
        connect(address, { tls: {}, handshakeTimeoutMs: 2000 }),
        'INVALID_ARGUMENT',
      );
    } finally {
      await listener.close();
    }
  });
});

describe('limits of a connection', () => {
  it('maxChannels defaults to 4096 ids open at once, the root included', async () => {
    const { listener, address } = await unixListener();
    const client = await connect(address);
    const server = (await listener.accept()) as Channel;
    const kept: Channel[] = [];
    const receiving = (async () => {
      for (;;) {
        const batch = await server.recvBatch().catch(() => undefined);
        if (batch === undefined) return;
        for (const m of batch) kept.push(...(m.handles as Channel[]));
      }
    })();
    const seen = socketErrors();
    try {
      const peers: Channel[] = [];
      // 4095 ends move to the server: with the root, 4096 ids are open.
      for (let sent = 0; sent < 4095; ) {
        const n = Math.min(64, 4095 - sent);
        const handles = Array.from({ length: n }, () => {
          // Small queues: their sum stays far inside maxPeerBytes, so only the count is tested.
          const [mine, theirs] = Channel.pair({ capacity: 1, capacityBytes: 1024 });
          peers.push(mine);
          return theirs;
        });
        await client.sendWait({ type: 0, handles });
        sent += n;
      }
      await until('4095 ends arrived', () => kept.length === 4095, 30_000);
      assert.equal(seen.errors.length, 0, seen.errors[0]?.message);
      const [mine, theirs] = Channel.pair();
      await client.sendWait({ type: 0, handles: [theirs] });
      await until('the refusal', () => seen.errors.length > 0);
      assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
      assert.match(seen.errors[0]?.message ?? '', /more than 4096 channels/);
      assert.equal(await client.closed, 'peer');
      assert.equal(await mine.closed, 'peer');
      mine.close();
      for (const ch of [...peers, ...kept]) ch.close();
    } finally {
      seen.stop();
      client.close();
      server.close();
      await receiving;
      await listener.close();
    }
  });

  it('a pipe over maxLimits.capacityBytes of the receiver is refused; one at it is taken', async () => {
    const maxLimits = { capacityBytes: 1 << 20, maxMessageBytes: 64 * 1024 };
    const { listener, address } = await unixListener({ maxLimits });
    const seen = socketErrors();
    try {
      const client = await connect(address);
      const server = (await listener.accept()) as Channel;
      const [atLimit, atLimitFar] = DataPipe.create({ capacityBytes: 1 << 20 });
      client.send({ type: 1, handles: [atLimitFar] });
      const [moved] = (await server.recv()).handles;
      assert.ok(moved !== undefined);
      atLimit.write(Uint8Array.of(1, 2, 3));
      atLimit.close();
      const [tooBig, tooBigFar] = DataPipe.create({ capacityBytes: (1 << 20) + 1 });
      client.send({ type: 2, handles: [tooBigFar] });
      await until('the refusal', () => seen.errors.length > 0);
      assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
      assert.equal(await client.closed, 'peer');
      throwsCode(() => tooBig.write(Uint8Array.of(1)), 'PEER_CLOSED');
      tooBig.close();
      moved.close();
      server.close();
      client.close();
    } finally {
      seen.stop();
      await listener.close();
    }
  });
});
