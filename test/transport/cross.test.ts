/** Transports together: an endpoint whose peer lives in a worker, sent on over a socket. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Channel, connect, exportEndpoint, listen, privateSocketPath } from '../../src/index.js';
import { pattern, startWorker } from './worker/workers.js';

it('a channel to a worker, sent over a socket, keeps order and data end to end through a queue of 4', {
  timeout: 10_000,
}, async () => {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [client, accepted] = await Promise.all([connect({ path }), listener.accept()]);
  const server = accepted as Channel;

  const [here, there] = Channel.pair({ capacity: 4 });
  const worker = startWorker('echo', exportEndpoint(there));
  client.send({ type: 0, handles: [here] });
  const [far] = (await server.recv()).handles as [Channel];

  // 100 messages through a queue of 4: the bridge must hold and release credit to keep going.
  const count = 100;
  const sending = (async () => {
    for (let n = 0; n < count; n++) await far.sendWait({ type: n * 2, data: pattern(n, 300) });
  })();
  for (let n = 0; n < count; n++) {
    const m = await far.recv();
    assert.equal(m.type, n * 2 + 1);
    assert.deepEqual(m.data, pattern(n, 300));
  }
  await sending;
  far.close();
  await new Promise((resolve) => worker.once('exit', resolve));
  client.close();
  server.close();
  await listener.close();
});

it('byte credits keep flowing: 64 messages of 32 KiB each way between a worker and a socket', {
  timeout: 10_000,
}, async () => {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [client, accepted] = await Promise.all([connect({ path }), listener.accept()]);
  const server = accepted as Channel;
  // The default 1 MiB of capacityBytes holds 31 of these: the rest needs credit given back.
  const [here, there] = Channel.pair();
  const worker = startWorker('echo', exportEndpoint(there));
  client.send({ type: 0, handles: [here] });
  const [far] = (await server.recv()).handles as [Channel];
  const count = 64;
  const sending = (async () => {
    for (let n = 0; n < count; n++) await far.sendWait({ type: n * 2, data: pattern(n, 32768) });
  })();
  for (let n = 0; n < count; n++) {
    const m = await far.recv();
    assert.equal(m.type, n * 2 + 1);
    assert.deepEqual(m.data, pattern(n, 32768));
  }
  await sending;
  far.close();
  await new Promise((resolve) => worker.once('exit', resolve));
  client.close();
  server.close();
  await listener.close();
});
