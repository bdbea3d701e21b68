/**
 * How long it takes to start a worker or a child process with a channel and get a first reply:
 * spawnWorker against the hand-made `new Worker` + exportEndpoint, and spawnProcess, in one run.
 * Each sample is one start to the first echoed message, then the channel is closed and the
 * thread or process awaited.
 * Run: npm run bench:spawn [-- --runs=N]   (default 30 runs of each, after 3 warm-up runs)
 */
import { Worker, workerData } from 'node:worker_threads';
import {
  Channel,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  parentChannels,
  spawnProcess,
  spawnWorker,
} from '../src/index.js';

const SELF = new URL(import.meta.url);
const ROLE = 'FTL_IPC_BENCH_SPAWN';

/** The started side: echo every message on the channel until it closes. */
async function echo(channel: Channel): Promise<void> {
  for await (const m of channel) channel.send(m);
  channel.close();
}

type Start = () => Promise<{ channel: Channel; exited: Promise<unknown> }>;

const starts: Record<string, Start> = {
  'new Worker + exportEndpoint': async () => {
    const [channel, theirs] = Channel.pair();
    const token = exportEndpoint(theirs);
    const worker = new Worker(SELF, {
      workerData: { token },
      transferList: token.transfer,
      env: { ...process.env, [ROLE]: 'token' },
    });
    return { channel, exited: new Promise((resolve) => worker.once('exit', resolve)) };
  },
  spawnWorker: async () => {
    const [channel, theirs] = Channel.pair();
    const { exited } = await spawnWorker(SELF, {
      channels: { echo: theirs },
      env: { ...process.env, [ROLE]: 'parent' },
    });
    return { channel, exited };
  },
  spawnProcess: async () => {
    const [channel, theirs] = Channel.pair();
    const { exited } = await spawnProcess(SELF, {
      channels: { echo: theirs },
      env: { ...process.env, [ROLE]: 'parent' },
    });
    return { channel, exited };
  },
};

async function sample(start: Start): Promise<number> {
  const began = performance.now();
  const { channel, exited } = await start();
  channel.send({ type: 1 });
  await channel.recv();
  const ms = performance.now() - began;
  channel.close();
  await exited;
  return ms;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const runs = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 30);
  const names = Object.keys(starts);
  const samples = new Map(names.map((n) => [n, [] as number[]]));
  for (let i = 0; i < 3; i++) for (const n of names) await sample(starts[n]!);
  // Interleaved, so that a change in the machine's load touches every variant alike.
  for (let i = 0; i < runs; i++)
    for (const n of names) samples.get(n)!.push(await sample(starts[n]!));
  const base = quantile(
    samples.get(names[0]!)!.toSorted((a, b) => a - b),
    0.5,
  );
  console.log(
    `| start to first reply (${runs} runs) | median ms | p10–p90 ms | ratio to new Worker |`,
  );
  console.log('| --- | ---: | ---: | ---: |');
  for (const n of names) {
    const s = samples.get(n)!.toSorted((a, b) => a - b);
    const median = quantile(s, 0.5);
    console.log(
      `| ${n} | ${median.toFixed(1)} | ${quantile(s, 0.1).toFixed(1)}–${quantile(s, 0.9).toFixed(1)} | ${(median / base).toFixed(2)} |`,
    );
  }
}

const role = process.env[ROLE];
if (role === 'token') await echo(importEndpoint((workerData as { token: EndpointToken }).token));
else if (role === 'parent') await echo((await parentChannels(['echo'])).echo);
else await main();
