/**
 * In-thread send+recv throughput: ftl-ipc Channel against a same-thread MessageChannel, in one
 * run, as a ratio. Each task moves a batch of messages through and receives every one of them.
 * Run: npm run bench
 */
import { MessageChannel } from 'node:worker_threads';
import { Bench } from 'tinybench';
import { Channel } from '../src/index.js';

const BATCH = 1000;

function channelTask(size: number): () => void {
  const [a, b] = Channel.pair({ capacity: BATCH });
  const data = new Uint8Array(size);
  return () => {
    for (let i = 0; i < BATCH; i++) a.send({ type: 1, data });
    for (let i = 0; i < BATCH; i++) b.tryRecv();
  };
}

const ports: MessageChannel[] = [];

function messagePortTask(size: number): () => Promise<void> {
  const channel = new MessageChannel();
  ports.push(channel);
  const { port1, port2 } = channel;
  const data = new Uint8Array(size);
  let remaining = 0;
  let done: () => void = () => {};
  port2.on('message', () => {
    if (--remaining === 0) done();
  });
  return () =>
    new Promise<void>((resolve) => {
      remaining = BATCH;
      done = resolve;
      for (let i = 0; i < BATCH; i++) port1.postMessage(data);
    });
}

const bench = new Bench({ time: 1500, warmupTime: 300 });
for (const size of [16, 256]) {
  bench.add(`ftl-ipc Channel ${size} B`, channelTask(size));
  bench.add(`MessageChannel ${size} B`, messagePortTask(size));
}
await bench.run();
for (const { port1 } of ports) port1.close();

const rate = (name: string) => {
  const task = bench.getTask(name);
  if (task?.result?.state !== 'completed') throw new Error(`${name} did not complete`);
  return task.result.throughput.mean * BATCH;
};
const rows = [16, 256].map((size) => {
  const ours = rate(`ftl-ipc Channel ${size} B`);
  const theirs = rate(`MessageChannel ${size} B`);
  return `| ${size} B | ${(ours / 1e6).toFixed(2)} M/s | ${(theirs / 1e6).toFixed(2)} M/s | ${(ours / theirs).toFixed(1)}x |`;
});
process.stdout.write(
  `| size | ftl-ipc Channel | same-thread MessageChannel | ratio |\n| --- | --- | --- | --- |\n${rows.join('\n')}\n`,
);
