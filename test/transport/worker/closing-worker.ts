/**
 * The worker side of promises.test.ts: keeps the channel ends that arrive over `token` without
 * reading them or waiting for room, so that only a close reaching this thread can settle their
 * `closed`. Posts `{ held }` once `count` ends are here, then `{ closed: reasons }` once every
 * one of them has settled; on 'close' closes them all itself.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Channel, type EndpointToken, importEndpoint } from '../../../src/index.js';

const { token, count } = workerData as { token: EndpointToken; count: number };
const port = parentPort!;
const ctrl = importEndpoint(token);
const held: Channel[] = [];
while (held.length < count) {
  for (const handle of (await ctrl.recv()).handles) held.push(handle as Channel);
}
port.postMessage({ held: held.length });
// The parent port keeps this thread alive meanwhile: the ends only await `closed`.
port.on('message', () => {
  for (const end of held) end.close();
});
const reasons = await Promise.all(held.map((end) => end.closed));
port.postMessage({ closed: reasons });
ctrl.close();
port.close();
