/**
 * A process whose main thread starts a worker before it loads ftl-ipc: each thread then makes an
 * arena of its own, and a channel made here reaches the worker inside a message on a channel of
 * the worker's arena. Prints what it saw as JSON; arenas.test.ts runs it.
 */
import { Worker } from 'node:worker_threads';

const worker = new Worker(new URL('./late-import-worker.js', import.meta.url));
const token = await new Promise((resolve) => worker.once('message', resolve));
const { Channel, importEndpoint, sharedMemoryStats } = await import('../../../src/index.js');
const ch = importEndpoint(token as Parameters<typeof importEndpoint>[0]);
const [x, y] = Channel.pair();
ch.send({ type: 1, handles: [x] });
y.send({ type: 7 });
const reply = await y.recv();
console.log(JSON.stringify({ arenas: sharedMemoryStats().length, reply: reply.type }));
y.close();
ch.close();
await new Promise((resolve) => worker.once('exit', resolve));
