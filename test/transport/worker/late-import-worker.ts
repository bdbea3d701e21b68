/** The worker of late-import.ts: makes a pair in its own arena and answers on what arrives. */
import { parentPort } from 'node:worker_threads';
import { Channel, exportEndpoint } from '../../../src/index.js';

const [mine, theirs] = Channel.pair();
const token = exportEndpoint(theirs);
parentPort?.postMessage(token, token.transfer);
const [x] = (await mine.recv()).handles as [Channel];
const got = await x.recv();
x.send({ type: got.type + 1 });
await x.closed;
x.close();
mine.close();
