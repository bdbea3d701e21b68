/** The root channel's default limits over a socket: a window that covers a round trip. */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { it } from 'node:test';
import { type Channel, connect, listen, privateSocketPath } from '../../../src/index.js';
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
