/**
 * The channel contract with the pair split by the worker transport: one end is exported, its
 * token crosses into a relay worker and back (a real clone and port transfer each way), and
 * the two ends then talk only through shared memory. Tests with an end really living inside a
 * worker are in worker.test.ts.
 */
import { after } from 'node:test';
import { Channel, exportEndpoint, importEndpoint } from '../../../src/index.js';
import { channelConformance } from '../../channel/conformance.js';
import { Relay } from './workers.js';

const relay = new Relay();
after(() => relay.stop());

channelConformance('two threads, shared memory', async (options) => {
  const [a, b] = Channel.pair(options);
  return [a, importEndpoint(await relay.bounce(exportEndpoint(b)))];
});
