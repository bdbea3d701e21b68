/**
 * Typed RPC against the peers users compare it with, all in one run, all with their defaults:
 * the handler is `v + 1` on an int32 everywhere (bench/rpc-peer.ts). For each peer, calls/s with
 * 1, 64 and 1024 calls in flight (as many loops of `await call()`), and the p50/p99 of calls made
 * one after another. Rounds go through the peers in turn; the table shows medians and ranges.
 * Run: npm run bench:rpc [-- --quick] [--only=thread|process]
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type Transferable, Worker } from 'node:worker_threads';
import { createBirpc } from 'birpc';
import * as Comlink from 'comlink';
import { PingClient } from '../examples/ping/ping.generated.js';
import { Channel, exportEndpoint, spawnProcess } from '../src/index.js';
import { loadProto } from './rpc-grpc.js';
import { nodeEndpoint, type PingApi, type WorkerJob } from './rpc-peer.js';
import { median } from './stats.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const ROUNDS = quick ? 1 : 5;
const DURATION_MS = quick ? 200 : 600;
const SEQUENTIAL = quick ? 500 : 3000;
const IN_FLIGHT = [1, 64, 1024];
const peerFile = fileURLToPath(new URL('./rpc-peer.js', import.meta.url));

interface Running {
  call(v: number): Promise<unknown>;
  stop(): Promise<unknown>;
}

interface Peer {
  name: string;
  placement: 'thread' | 'process';
  start(): Promise<Running>;
}

function worker(job: WorkerJob, transfer: readonly Transferable[]): Worker {
  return new Worker(peerFile, { workerData: job, transferList: [...transfer] });
}

const ftlThread: Peer = {
  name: 'ftl-ipc PingClient',
  placement: 'thread',
  async start() {
    const [a, b] = Channel.pair();
    const token = exportEndpoint(b);
    const w = worker({ kind: 'ftl', token }, token.transfer);
    const client = new PingClient(a);
    return {
      call: (value) => client.ping({ value }),
      stop: () => {
        client.close();
        return once(w, 'exit');
      },
    };
  },
};

function portPeer(kind: 'birpc' | 'comlink', name: string): Peer {
  return {
    name,
    placement: 'thread',
    async start() {
      const { port1, port2 } = new MessageChannel();
      const w = worker({ kind, port: port2 }, [port2]);
      let call: (v: number) => Promise<unknown>;
      if (kind === 'birpc') {
        const rpc = createBirpc<PingApi>(
          {},
          { post: (data) => port1.postMessage(data), on: (fn) => port1.on('message', fn) },
        );
        call = (v) => rpc.ping(v);
      } else {
        const remote = Comlink.wrap<PingApi>(nodeEndpoint(port1));
        call = (v) => remote.ping(v);
      }
      return {
        call,
        stop: async () => {
          port1.close();
          await w.terminate();
        },
      };
    },
  };
}

const ftlProcess: Peer = {
  name: 'ftl-ipc PingClient',
  placement: 'process',
  async start() {
    const [a, b] = Channel.pair();
    const child = await spawnProcess(peerFile, { channels: { ping: b }, args: ['ftl'] });
    const client = new PingClient(a);
    return {
      call: (value) => client.ping({ value }),
      stop: () => {
        client.close();
        return child.exited;
      },
    };
  },
};

const birpcProcess: Peer = {
  name: 'birpc, child_process IPC',
  placement: 'process',
  async start() {
    const child = fork(peerFile, ['birpc']);
    await once(child, 'spawn');
    const rpc = createBirpc<PingApi>(
      {},
      { post: (data) => child.send(data), on: (fn) => child.on('message', fn) },
    );
    return {
      call: (v) => rpc.ping(v),
      stop: () => {
        child.disconnect();
        return once(child, 'exit');
      },
    };
  },
};

const grpcProcess: Peer = {
  name: 'grpc-js, Unix socket',
  placement: 'process',
  async start() {
    const path = join(tmpdir(), `ftl-rpc-bench-${process.pid}.sock`);
    const child: ChildProcess = spawn(process.execPath, [peerFile, 'grpc', path], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await once(child.stdout!, 'data');
    const grpc = await import('@grpc/grpc-js');
    const client = new (loadProto().Client)(`unix:${path}`, grpc.credentials.createInsecure());
    const ping = (v: number) =>
      new Promise((resolve, reject) =>
        (client as unknown as Record<string, (...args: unknown[]) => void>).ping!(
          { value: v },
          (error: unknown, reply: unknown) => (error ? reject(error) : resolve(reply)),
        ),
      );
    return {
      call: ping,
      stop: () => {
        client.close();
        child.stdin!.end();
        return once(child, 'exit');
      },
    };
  },
};

const peers: Peer[] = [
  ftlThread,
  portPeer('birpc', 'birpc, MessagePort'),
  portPeer('comlink', 'comlink'),
  ftlProcess,
  birpcProcess,
  grpcProcess,
].filter((p) => only === undefined || p.placement === only);

/** Calls/s with `inFlight` loops of `await call()` running for DURATION_MS. */
async function throughput(running: Running, inFlight: number): Promise<number> {
  let calls = 0;
  const end = performance.now() + DURATION_MS;
  const loop = async () => {
    while (performance.now() < end) {
      await running.call(calls);
      calls++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, loop));
  return calls / ((performance.now() - started) / 1000);
}

async function latency(running: Running): Promise<{ p50: number; p99: number }> {
  const times = new Float64Array(SEQUENTIAL);
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    await running.call(i);
    times[i] = performance.now() - t;
  }
  times.sort();
  return { p50: times[SEQUENTIAL >> 1]! * 1000, p99: times[Math.floor(SEQUENTIAL * 0.99)]! * 1000 };
}

type Metric = `${number} in flight` | 'p50' | 'p99';
const results = new Map<Peer, Map<Metric, number[]>>();

function record(peer: Peer, metric: Metric, value: number): void {
  const byMetric = results.get(peer) ?? new Map<Metric, number[]>();
  results.set(peer, byMetric);
  byMetric.set(metric, [...(byMetric.get(metric) ?? []), value]);
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

const loadBefore = load();
for (let round = 0; round < ROUNDS; round++) {
  for (const peer of peers) {
    const running = await peer.start();
    await throughput(running, 64); // warm up: JIT, connections, the peers' own buffers
    for (const n of IN_FLIGHT) record(peer, `${n} in flight`, await throughput(running, n));
    const { p50, p99 } = await latency(running);
    record(peer, 'p50', p50);
    record(peer, 'p99', p99);
    await running.stop();
  }
}

const k = (v: number) => `${(v / 1000).toFixed(1)}k`;
const us = (v: number) => `${v.toFixed(1)}`;
function cell(values: readonly number[], format: (v: number) => string): string {
  return `${format(median(values))} (${format(Math.min(...values))} to ${format(Math.max(...values))})`;
}

console.log(
  `RPC, handler v + 1, ${ROUNDS} rounds of ${DURATION_MS} ms per figure, ${SEQUENTIAL} sequential calls; node ${process.version}; load average before ${loadBefore}, after ${load()}`,
);
console.log('');
console.log(
  `| placement | peer | ${IN_FLIGHT.map((n) => `calls/s, ${n} in flight`).join(' | ')} | sequential p50 µs | p99 µs |`,
);
console.log(`| --- | --- | ${IN_FLIGHT.map(() => '---').join(' | ')} | --- | --- |`);
for (const [peer, byMetric] of results) {
  const flights = IN_FLIGHT.map((n) => cell(byMetric.get(`${n} in flight`)!, k));
  console.log(
    `| ${peer.placement} | ${peer.name} | ${flights.join(' | ')} | ${cell(byMetric.get('p50')!, us)} | ${cell(byMetric.get('p99')!, us)} |`,
  );
}
console.log('');
console.log('Ratios of medians, ftl-ipc to each peer in the same placement:');
for (const placement of ['thread', 'process'] as const) {
  const ftl = [...results].find(([p]) => p.placement === placement && p.name.startsWith('ftl'));
  if (ftl === undefined) continue;
  for (const [peer, byMetric] of results) {
    if (peer.placement !== placement || peer === ftl[0]) continue;
    const ratios = IN_FLIGHT.map(
      (n) =>
        `${n} in flight ${(median(ftl[1].get(`${n} in flight`)!) / median(byMetric.get(`${n} in flight`)!)).toFixed(2)}x`,
    );
    const p50 = (median(ftl[1].get('p50')!) / median(byMetric.get('p50')!)).toFixed(2);
    console.log(
      `- ${placement}, vs ${peer.name}: ${ratios.join(', ')}; p50 ${p50}x (lower is better)`,
    );
  }
}
