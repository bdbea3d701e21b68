/** Transports together: an endpoint whose peer lives in a worker, sent on over a socket. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  Channel,
  type ChannelOptions,
  connect,
  exportEndpoint,
  listen,
  privateSocketPath,
} from '../../src/index.js';
import { pattern, startWorker } from './worker/workers.js';

/**
 * Makes a pair here, moves one end into an echoing worker and the other over a socket, then
 * sends `count` messages of `size` bytes from the socket side and checks every echo.
 */
async function echoThroughWorkerAndSocket(
  options: ChannelOptions,
  count: number,
  size: number,
): Promise<void> {
  const path = await privateSocketPath();
  const listener = await listen({ path });
  const [client, accepted] = await Promise.all([connect({ path }), listener.accept()]);
  const server = accepted as Channel;
  const [here, there] = Channel.pair(options);
  const worker = startWorker('echo', exportEndpoint(there));
  client.send({ type: 0, handles: [here] });
  const [far] = (await server.recv()).handles as [Channel];
  const sending = (async () => {
    for (let n = 0; n < count; n++) await far.sendWait({ type: n * 2, data: pattern(n, size) });
  })();
  for (let n = 0; n < count; n++) {
    const m = await far.recv();
    assert.equal(m.type, n * 2 + 1);
    assert.deepEqual(m.data, pattern(n, size));
  }
  await sending;
  far.close();
  await new Promise((resolve) => worker.once('exit', resolve));
  client.close();
  server.close();
  await listener.close();
}

it(
  'a channel to a worker, sent over a socket, keeps order and data through a queue of 4',
  {
    timeout: 10_000,
  },
  () => echoThroughWorkerAndSocket({ capacity: 4 }, 100, 300),
);

// The default 1 MiB of capacityBytes holds 31 of these: the rest needs byte credit given back.
it(
  'byte credits keep flowing: 64 messages of 32 KiB each way between a worker and a socket',
  {
    timeout: 10_000,
  },
  () => echoThroughWorkerAndSocket({}, 64, 32768),
);
