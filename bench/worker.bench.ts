/**
 * Worker-thread channels against MessagePort, in the same run: one-way throughput from the main
 * thread to a worker (the receiver owns a copy of every message) and 16-byte round trips.
 * Then the loop a user writes, at library defaults (`--only=natural` for these rows alone).
 * Run: npm run build && node dist/bench/worker.bench.js [--quick] [--only=throughput|rtt|natural]
 * Results go to stdout as a Markdown table; docs/benchmarks.md keeps a copy.
 */
import type { EventLoopUtilization } from 'node:perf_hooks';
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import {
  Channel,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  type WakePolicy,
} from '../src/index.js';
import { median, range } from './stats.js';

type Job =
  | { kind: 'ftl-sink'; token: EndpointToken; count: number }
  | { kind: 'port-sink'; port: MessagePort; count: number }
  | { kind: 'ftl-echo'; token: EndpointToken; policy: WakePolicy }
  | { kind: 'port-echo'; port: MessagePort };

const SIZES = [16, 256, 4096, 65536];
/** Room for a burst: MessagePort has no bound at all, so a tiny queue would only measure waking. */
const THROUGHPUT_OPTIONS = { capacity: 1024, capacityBytes: 4 * 2 ** 20, maxMessageBytes: 65536 };
const quick = process.argv.includes('--quick');
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);

async function workerMain(job: Job): Promise<void> {
  const port = parentPort!;
  switch (job.kind) {
    case 'ftl-sink': {
      const ch = importEndpoint(job.token);
      port.postMessage('ready');
      const elu = performance.eventLoopUtilization();
      let bytes = 0;
      for (let got = 0; got < job.count; ) {
        for (const m of await ch.recvBatch()) {
          bytes += m.data.byteLength;
          got++;
        }
      }
      port.postMessage({ bytes, active: performance.eventLoopUtilization(elu).active });
      ch.close();
      return;
    }
    case 'port-sink': {
      let got = 0;
      let bytes = 0;
      let elu: EventLoopUtilization | undefined;
      job.port.on('message', (data: Uint8Array) => {
        elu ??= performance.eventLoopUtilization();
        bytes += data.byteLength;
        if (++got === job.count) {
          port.postMessage({ bytes, active: performance.eventLoopUtilization(elu).active });
          job.port.close();
        }
      });
      port.postMessage('ready');
      return;
    }
    case 'ftl-echo': {
      const ch = importEndpoint(job.token, job.policy);
      for await (const m of ch) ch.send({ type: m.type, data: m.data });
      return;
    }
    case 'port-echo':
      job.port.on('message', (data: Uint8Array) => job.port.postMessage(data));
      job.port.once('close', () => job.port.close());
      return;
  }
}

function start(job: Job, transfer: MessagePort[]): Worker {
  return new Worker(new URL(import.meta.url), { workerData: job, transferList: transfer });
}

function done(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

/** Messages per second through a channel into a worker that reads everything. */
async function ftlThroughput(size: number, count: number): Promise<number> {
  const [a, b] = Channel.pair(THROUGHPUT_OPTIONS);
  const token = exportEndpoint(b);
  const worker = start({ kind: 'ftl-sink', token, count }, token.transfer);
  await done(worker); // started: the clock runs for messages only
  const finished = done(worker);
  const data = new Uint8Array(size).fill(7);
  const message = { type: 1, data };
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    while (!a.send(message, { onFull: 'drop' })) await a.writable(size);
  }
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  a.close();
  await worker.terminate();
  return count / seconds;
}

async function portThroughput(size: number, count: number): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  const worker = start({ kind: 'port-sink', port: port2, count }, [port2]);
  await done(worker);
  const finished = done(worker);
  const data = new Uint8Array(size).fill(7);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) port1.postMessage(data);
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  port1.close();
  await worker.terminate();
  return count / seconds;
}

/** What one run of the natural loop cost: messages per second, and busy ns per message per side. */
interface Natural {
  rate: number;
  sender: number;
  receiver: number;
}

type Loop = 'sendWait' | 'writable';

/**
 * The loop a user writes, at library defaults (`Channel.pair()`: 32 messages), into a worker
 * that drains with recvBatch. Busy time is each thread's event-loop active time (spinning
 * included) over the run, per message.
 */
async function ftlNatural(loop: Loop, size: number, count: number): Promise<Natural> {
  const [a, b] = Channel.pair();
  const token = exportEndpoint(b);
  const worker = start({ kind: 'ftl-sink', token, count }, token.transfer);
  await done(worker);
  const finished = done(worker) as Promise<{ active: number }>;
  const m = { type: 1, data: new Uint8Array(size).fill(7) };
  const elu = performance.eventLoopUtilization();
  const t0 = performance.now();
  if (loop === 'sendWait') {
    for (let i = 0; i < count; i++) if (!a.send(m, { onFull: 'drop' })) await a.sendWait(m);
  } else {
    for (let i = 0; i < count; i++) while (!a.send(m, { onFull: 'drop' })) await a.writable(16);
  }
  const { active } = await finished;
  const ms = performance.now() - t0;
  const sender = performance.eventLoopUtilization(elu).active;
  a.close();
  await worker.terminate();
  return {
    rate: (count / ms) * 1000,
    sender: (sender * 1e6) / count,
    receiver: (active * 1e6) / count,
  };
}

async function portNatural(size: number, count: number): Promise<Natural> {
  const { port1, port2 } = new MessageChannel();
  const worker = start({ kind: 'port-sink', port: port2, count }, [port2]);
  await done(worker);
  const finished = done(worker) as Promise<{ active: number }>;
  const data = new Uint8Array(size).fill(7);
  const elu = performance.eventLoopUtilization();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) port1.postMessage(data);
  const sender = performance.eventLoopUtilization(elu).active;
  const { active } = await finished;
  const ms = performance.now() - t0;
  port1.close();
  await worker.terminate();
  return {
    rate: (count / ms) * 1000,
    sender: (sender * 1e6) / count,
    receiver: (active * 1e6) / count,
  };
}

/** Natural-loop rows: runs alternate between the three, medians with their range. */
async function naturalTable(runs: number): Promise<void> {
  const count = 300_000;
  console.log(
    `\n| natural loop, defaults, ${count} messages, median of ${runs} (range) | msg/s | vs MessagePort | sender ns/msg | receiver ns/msg |`,
  );
  console.log('|---|---|---|---|---|');
  for (const size of [16, 256]) {
    const rows: [string, () => Promise<Natural>][] = [
      ['`if (!send) await sendWait`', () => ftlNatural('sendWait', size, count)],
      ['`while (!send) await writable(16)`', () => ftlNatural('writable', size, count)],
      ['MessagePort', () => portNatural(size, count)],
    ];
    const results: Natural[][] = rows.map(() => []);
    for (let run = 0; run < runs; run++) {
      for (const [i, [, measure]] of rows.entries()) results[i]?.push(await measure());
    }
    const port = median((results[2] as Natural[]).map((r) => r.rate));
    for (const [i, [name]] of rows.entries()) {
      const r = results[i] as Natural[];
      const rates = r.map((x) => x.rate);
      const ratios = rates.map((x) => (x / port).toFixed(1));
      console.log(
        `| ${size} B, ${name} | ${fmt(median(rates))} (${fmt(Math.min(...rates))} to ${fmt(Math.max(...rates))}) | ${(median(rates) / port).toFixed(1)}x (${Math.min(...ratios.map(Number))}x to ${Math.max(...ratios.map(Number))}x) | ${median(r.map((x) => x.sender)).toFixed(0)} | ${median(r.map((x) => x.receiver)).toFixed(0)} |`,
      );
    }
  }
}

interface Latency {
  p50: number;
  p99: number;
}

function percentiles(samples: Float64Array): Latency {
  samples.sort();
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

/** 16-byte round trips in microseconds; the first tenth warms up and is not counted. */
async function ftlRoundTrip(policy: WakePolicy, count: number): Promise<Latency> {
  const [a0, b] = Channel.pair();
  const token = exportEndpoint(b);
  const worker = start({ kind: 'ftl-echo', token, policy }, token.transfer);
  const a = importEndpoint(exportEndpoint(a0), policy);
  const data = new Uint8Array(16);
  const warm = Math.floor(count / 10);
  const samples = new Float64Array(count);
  for (let i = 0; i < warm + count; i++) {
    const t0 = process.hrtime.bigint();
    a.send({ type: i, data });
    await a.recv();
    if (i >= warm) samples[i - warm] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  a.close();
  await worker.terminate();
  return percentiles(samples);
}

async function portRoundTrip(count: number): Promise<Latency> {
  const { port1, port2 } = new MessageChannel();
  const worker = start({ kind: 'port-echo', port: port2 }, [port2]);
  const data = new Uint8Array(16);
  const warm = Math.floor(count / 10);
  const samples = new Float64Array(count);
  for (let i = 0; i < warm + count; i++) {
    const t0 = process.hrtime.bigint();
    const reply = new Promise((resolve) => port1.once('message', resolve));
    port1.postMessage(data);
    await reply;
    if (i >= warm) samples[i - warm] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  port1.close();
  await worker.terminate();
  return percentiles(samples);
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`;
}

async function main(): Promise<void> {
  const runs = quick ? 1 : 3;
  const scale = quick ? 0.2 : 1;
  console.log(`node ${process.version}, ${runs} run(s) each, medians (range)\n`);
  if (only === 'natural') {
    await naturalTable(3);
    return;
  }
  if (only !== 'rtt') await throughputTable(runs, scale);
  if (only !== 'throughput') await roundTripTable(runs, scale);
  if (only === undefined) await naturalTable(3);
}

async function throughputTable(runs: number, scale: number): Promise<void> {
  console.log(
    '| one-way main → worker | ftl-ipc msg/s | MessagePort msg/s | ratio | ftl-ipc MB/s | messages sent (ftl-ipc / MessagePort) |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const size of SIZES) {
    // Long enough that a new worker's compiling and the wake policy settling do not weigh.
    const count = Math.round((size <= 256 ? 4_000_000 : size <= 4096 ? 400_000 : 40_000) * scale);
    // MessagePort queues all of it at once, without bound: fewer, or the run takes long.
    const portCount = Math.round(count / (size <= 256 ? 4 : 1));
    // Runs alternate, so that a change in the machine's load hits both alike.
    const ftls: number[] = [];
    const ports: number[] = [];
    for (let run = 0; run < runs; run++) {
      ftls.push(await ftlThroughput(size, count));
      ports.push(await portThroughput(size, portCount));
    }
    const ratios = ftls.map((f, i) => f / (ports[i] as number));
    const ftl = median(ftls);
    console.log(
      `| ${size} B | ${fmt(ftl)} (${range(ftls, fmt)}) | ${fmt(median(ports))} (${range(ports, fmt)}) | ${median(ratios).toFixed(1)}x (${range(ratios, (r) => `${r.toFixed(1)}x`)}) | ${((ftl * size) / 1e6).toFixed(0)} | ${count} / ${portCount} |`,
    );
  }
}

/** Rounds alternate between the three so that a change in the machine's load hits them alike. */
async function roundTripTable(runs: number, scale: number): Promise<void> {
  const trips = Math.round(10_000 * scale);
  const rows: [string, () => Promise<Latency>][] = [
    ['ftl-ipc, adaptive spin (default)', () => ftlRoundTrip({}, trips)],
    ['ftl-ipc, sleeping (spinMicros: 0)', () => ftlRoundTrip({ spinMicros: 0 }, trips)],
    ['MessagePort', () => portRoundTrip(trips)],
  ];
  const results: Latency[][] = rows.map(() => []);
  for (let run = 0; run < runs; run++) {
    for (const [i, [, measure]] of rows.entries()) results[i]?.push(await measure());
  }
  console.log(`\n| round trip 16 B, median of ${runs} (range) | p50 µs | p99 µs |`);
  console.log('|---|---|---|');
  const us = (n: number) => n.toFixed(1);
  for (const [i, [name]] of rows.entries()) {
    const p50s = (results[i] as Latency[]).map((l) => l.p50);
    const p99s = (results[i] as Latency[]).map((l) => l.p99);
    console.log(
      `| ${name} | ${us(median(p50s))} (${range(p50s, us)}) | ${us(median(p99s))} (${range(p99s, us)}) |`,
    );
  }
}

if (isMainThread) await main();
else await workerMain(workerData as Job);
