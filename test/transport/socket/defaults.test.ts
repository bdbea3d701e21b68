/** The root channel's default limits over a socket: a window that covers a round trip. */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { it } from 'node:test';
import { Channel, connect, listen, privateSocketPath } from '../../../src/index.js';
import { SOCKET_DEFAULT_LIMITS } from '../../../src/transport/socket/connection.js';
import { delivered, throwsCode } from '../../channel/helpers.js';

it('listen and connect default to 1,024 messages and 1 MiB; options still win', async () => {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [client, server] = await Promise.all([
    connect({ path }, { capacity: 32 }),
    listener.accept() as Promise<Channel>,
  ]);
  // Each side's sends are checked against the other side's receive queue.
  assert.equal(client.limits.capacity, 1024);
  assert.equal(client.limits.capacityBytes, 1024 * 1024);
  assert.equal(server.limits.capacity, 32);
  for (let i = 0; i < 1024; i++) client.send({ type: i });
  throwsCode(() => client.send({ type: 1024 }), 'BACKPRESSURE');
  await delivered(server, 1024);
  client.close();
  server.close();
  await listener.close();
  await rm(dirname(path), { recursive: true, force: true });
});

it('a client may send channels of the default limits before the listener accepts it', async () => {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const client = await connect({ path });
  // Nothing tells the client when accept() runs: these arrive while it waits in the backlog.
  const kept: Channel[] = [];
  for (const limits of [{}, SOCKET_DEFAULT_LIMITS, SOCKET_DEFAULT_LIMITS]) {
    const [here, there] = Channel.pair(limits);
    kept.push(here);
    client.send({ type: 1, handles: [there] });
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const server = (await listener.accept()) as Channel;
  for (const here of kept) {
    const message = await server.recv();
    const there = message.handles[0] as Channel;
    here.send({ type: 7 });
    assert.equal((await there.recv()).type, 7);
    there.close();
    here.close();
  }
  client.close();
  server.close();
  await listener.close();
  await rm(dirname(path), { recursive: true, force: true });
});
