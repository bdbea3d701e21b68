/**
 * What a user gets: library defaults and the loops a user writes, 300,000 messages one way, the
 * receiver draining with `recvBatch()`, the clock started once the receiver is ready. Every peer
 * is measured in the same run, rows interleaved run by run so a change in the machine's load hits
 * them alike; each row reports the median and the spread (min to max) of its runs, and its ratio
 * to the peer as the median of the per-run ratios. Beside the wall time per message, each side's
 * CPU time per message (its thread's, from /proc/thread-self/schedstat): on a shared machine the
 * wall time moves with the load, the CPU a side spends on a message much less.
 *
 * Run: npm run build && node dist/bench/natural.bench.js [--runs=5] [--count=300000] [--busy]
 *      [--only=worker|socket] [--sizes=16,256] [--rows=text]
 * Profile one loop on both sides: node --cpu-prof dist/bench/natural.bench.js --only=worker
 *      --rows='sendWait' --runs=1 (workers and forked children inherit --cpu-prof).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { Push } from 'zeromq';
import {
  Channel,
  type ChannelOptions,
  exportEndpoint,
  listen,
  type OutgoingMessage,
  privateSocketPath,
} from '../src/index.js';
import type { WorkerJob } from './natural-peer.js';
import { RING_SLOTS, ringSlot } from './ring.js';
import { median, range, threadCpuNs } from './stats.js';

const PEER = fileURLToPath(new URL('./natural-peer.js', import.meta.url));
/** child_process, zeromq and the length-prefixed loop reuse the socket benchmark's child. */
const SOCKET_CHILD = fileURLToPath(new URL('./socket-child.js', import.meta.url));
const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const RUNS = Number(arg('runs') ?? 5);
const COUNT = Number(arg('count') ?? 300_000);
const SIZES = (arg('sizes') ?? '16,256').split(',').map(Number);
const only = arg('only');
const rowFilter = arg('rows');
const BATCH = 256;

type Loop = 'sendWait' | 'writable' | 'batch';
/** Messages per second, and CPU nanoseconds per message of the sending and receiving thread. */
interface Result {
  rate: number;
  send: number;
  recv: number;
}
type Measure = (size: number) => Promise<Result>;

/** Starts the clocks once the receiver is ready; `stop` with the receiver's CPU nanoseconds. */
function clock(): (recvNs: number) => Result {
  const t0 = performance.now();
  const cpu0 = threadCpuNs();
  return (recvNs) => ({
    rate: COUNT / ((performance.now() - t0) / 1000),
    send: (threadCpuNs() - cpu0) / COUNT,
    recv: recvNs / COUNT,
  });
}

/** The two natural loops of the issue, and the batch path; resolves when all were sent. */
async function sendAll(ch: Channel, size: number, loop: Loop): Promise<void> {
  const message: OutgoingMessage = { type: 1, data: new Uint8Array(size).fill(7) };
  if (loop === 'sendWait') {
    for (let i = 0; i < COUNT; i++) {
      if (!ch.send(message, { onFull: 'drop' })) await ch.sendWait(message);
    }
  } else if (loop === 'writable') {
    for (let i = 0; i < COUNT; i++) {
      while (!ch.send(message, { onFull: 'drop' })) await ch.writable(size);
    }
  } else {
    const batch = new Array<OutgoingMessage>(BATCH).fill(message);
    for (let sent = 0; sent < COUNT; ) {
      const n = ch.sendBatch(batch, { end: Math.min(BATCH, COUNT - sent) });
      sent += n;
      if (n === 0) await ch.writable(size);
    }
  }
}

/** Resolves on the worker's message `what` (`done` carries the receiver's CPU nanoseconds). */
function once(worker: Worker, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if (typeof m !== 'string' || m.split(' ')[0] !== what) return;
      worker.off('message', onMessage);
      resolve(Number(m.split(' ')[1]));
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
  });
}

/** Messages per second from the main thread to a worker over a channel. */
function toWorker(options: ChannelOptions | undefined, loop: Loop, view = false): Measure {
  return async (size) => {
    const [a, b] = Channel.pair(options);
    const token = exportEndpoint(b);
    const job: WorkerJob = { kind: 'ftl', token, count: COUNT, view };
    const worker = new Worker(PEER, { workerData: job, transferList: token.transfer });
    await once(worker, 'ready');
    const done = once(worker, 'done');
    const stop = clock();
    await sendAll(a, size, loop);
    const result = stop(await done);
    a.close();
    await worker.terminate();
    return result;
  };
}

/** MessagePort as a user writes it: postMessage in a loop (it has no bound). */
const portToWorker: Measure = async (size) => {
  const { port1, port2 } = new MessageChannel();
  const job: WorkerJob = { kind: 'port', port: port2, count: COUNT };
  const worker = new Worker(PEER, { workerData: job, transferList: [port2 as MessagePort] });
  await once(worker, 'ready');
  const done = once(worker, 'done');
  const data = new Uint8Array(size).fill(7);
  const stop = clock();
  for (let i = 0; i < COUNT; i++) port1.postMessage(data);
  const result = stop(await done);
  port1.close();
  await worker.terminate();
  return result;
};

/**
 * The floor: a hand-written SharedArrayBuffer ring, one producer, one consumer, each message
 * copied in (u32 length + payload in a fixed slot) and copied out; tail published per batch.
 */
const ringToWorker: Measure = async (size) => {
  const slot = ringSlot(size);
  const ring = new SharedArrayBuffer(8 + RING_SLOTS * slot);
  const job: WorkerJob = { kind: 'ring', ring, count: COUNT };
  const worker = new Worker(PEER, { workerData: job });
  await once(worker, 'ready');
  const done = once(worker, 'done');
  const index = new Int32Array(ring, 0, 2);
  const bytes = new Uint8Array(ring, 8);
  const view = new DataView(ring, 8);
  const data = new Uint8Array(size).fill(7);
  const stop = clock();
  for (let tail = 0; tail < COUNT; ) {
    let head = Atomics.load(index, 0);
    if (tail - head === RING_SLOTS) {
      Atomics.wait(index, 0, head);
      head = Atomics.load(index, 0);
    }
    const end = Math.min(COUNT, head + RING_SLOTS, tail + BATCH);
    for (; tail < end; tail++) {
      const off = (tail % RING_SLOTS) * slot;
      view.setUint32(off, size, true);
      bytes.set(data, off + 4);
    }
    Atomics.store(index, 1, tail);
    Atomics.notify(index, 1);
  }
  const result = stop(await done);
  await worker.terminate();
  return result;
};

interface Child {
  proc: ChildProcess;
  ready: Promise<void>;
  /** Resolves with the child's CPU nanoseconds for the messages. */
  done: Promise<number>;
  exited: Promise<unknown>;
}

function startChild(module: string, args: string[]): Child {
  const proc = fork(module, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let out = '';
  let onOut: () => void = () => {};
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    onOut();
  });
  const seen = (word: string) =>
    new Promise<number>((resolve) => {
      const check = () => {
        const line = out.split('\n').find((l) => l.split(' ')[0] === word);
        if (line !== undefined && out.includes(`${line}\n`)) resolve(Number(line.split(' ')[1]));
      };
      const previous = onOut;
      onOut = () => {
        previous();
        check();
      };
      check();
    });
  return {
    proc,
    ready: seen('ready').then(() => {}),
    done: seen('done'),
    exited: new Promise((resolve) => proc.once('exit', resolve)),
  };
}

async function withPath<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const path = await privateSocketPath();
  try {
    return await fn(path);
  } finally {
    await rm(dirname(path), { recursive: true, force: true });
  }
}

/** Messages per second from this process to a child over `listen`/`connect` on a Unix socket. */
function toChild(options: ChannelOptions | undefined, loop: Loop, view = false): Measure {
  return (size) =>
    withPath(async (path) => {
      const listener = await listen({ path }, options);
      const child = startChild(PEER, [
        view ? 'view' : 'batch',
        String(COUNT),
        path,
        JSON.stringify(options ?? {}),
      ]);
      const ch = (await listener.accept()) as Channel;
      await child.ready;
      const stop = clock();
      await sendAll(ch, size, loop);
      const result = stop(await child.done);
      ch.close();
      await listener.close();
      await child.exited;
      return result;
    });
}

/** child_process.send as a user writes it: send in a loop. */
const childProcessSend: Measure = async (size) => {
  const child = startChild(SOCKET_CHILD, ['cp', String(COUNT), '']);
  const payload = { type: 1, data: 'x'.repeat(size) };
  // The child listens for messages as soon as it runs; one round trip says it does.
  await new Promise<void>((resolve) => child.proc.send({ type: 0 }, () => resolve()));
  const stop = clock();
  for (let i = 1; i < COUNT; i++) child.proc.send(payload);
  const result = stop(await child.done);
  child.proc.disconnect();
  await child.exited;
  return result;
};

/** zeromq PUSH/PULL over ipc://, each send awaited, as its documentation shows. */
const zeromq: Measure = (size) =>
  withPath(async (path) => {
    const push = new Push();
    await push.bind(`ipc://${path}`);
    const child = startChild(SOCKET_CHILD, ['zmq', String(COUNT), `ipc://${path}`]);
    const data = Buffer.alloc(size, 7);
    const stop = clock();
    for (let i = 0; i < COUNT; i++) await push.send(data);
    const result = stop(await child.done);
    push.close();
    await child.exited;
    return result;
  });

/** The hand-written loop: u32 length + payload, frames packed into 64 KiB writes. */
const lengthPrefixed: Measure = (size) =>
  withPath(async (path) => {
    let accept: (s: net.Socket) => void = () => {};
    const accepted = new Promise<net.Socket>((resolve) => {
      accept = resolve;
    });
    const server = net.createServer((s) => accept(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const child = startChild(SOCKET_CHILD, ['frames', String(COUNT), path]);
    const socket = await accepted;
    const perWrite = Math.floor(65536 / (4 + size));
    const stop = clock();
    for (let left = COUNT; left > 0; ) {
      const n = Math.min(perWrite, left);
      left -= n;
      const buf = Buffer.alloc(n * (4 + size), 7);
      for (let i = 0; i < n; i++) buf.writeUInt32LE(size, i * (4 + size));
      if (!socket.write(buf)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    const result = stop(await child.done);
    socket.destroy();
    server.close();
    await child.exited;
    return result;
  });

interface Row {
  name: string;
  measure: Measure;
}

const TUNED_WORKER = { capacity: 1024, capacityBytes: 4 * 2 ** 20 };
const TUNED_SOCKET = { capacity: 8192, capacityBytes: 8 * 2 ** 20 };

const RING: Row = { name: 'floor: hand-written SharedArrayBuffer ring', measure: ringToWorker };
const FRAMES: Row = { name: 'floor: length-prefixed loop, 64 KiB writes', measure: lengthPrefixed };

const placements: { name: string; peer: Row; floor: Row; rows: Row[] }[] = [
  {
    name: 'worker',
    peer: { name: 'MessagePort, postMessage loop', measure: portToWorker },
    floor: RING,
    rows: [
      RING,
      { name: 'defaults, send || sendWait', measure: toWorker(undefined, 'sendWait') },
      { name: 'defaults, while !send: writable', measure: toWorker(undefined, 'writable') },
      { name: 'defaults, sendBatch', measure: toWorker(undefined, 'batch') },
      { name: 'defaults, sendBatch, view receiver', measure: toWorker(undefined, 'batch', true) },
      { name: 'tuned: capacity 1,024, writable', measure: toWorker(TUNED_WORKER, 'writable') },
      { name: 'tuned: capacity 1,024, sendBatch', measure: toWorker(TUNED_WORKER, 'batch') },
    ],
  },
  {
    name: 'socket',
    peer: { name: 'child_process.send loop', measure: childProcessSend },
    floor: FRAMES,
    rows: [
      { name: 'zeromq PUSH/PULL', measure: zeromq },
      FRAMES,
      { name: 'defaults, send || sendWait', measure: toChild(undefined, 'sendWait') },
      { name: 'defaults, while !send: writable', measure: toChild(undefined, 'writable') },
      { name: 'defaults, sendBatch', measure: toChild(undefined, 'batch') },
      { name: 'defaults, sendBatch, view receiver', measure: toChild(undefined, 'batch', true) },
      { name: 'tuned: capacity 8,192, writable', measure: toChild(TUNED_SOCKET, 'writable') },
    ],
  },
];

const rate = (r: number) => (r >= 1e6 ? `${(r / 1e6).toFixed(2)} M` : `${(r / 1e3).toFixed(0)} k`);
const ratio = (r: number) => `${r.toFixed(2)}x`;

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
/** --busy: one busy-loop process per core for the whole run, killed after. */
const busy = process.argv.includes('--busy')
  ? Array.from({ length: availableParallelism() }, () =>
      spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }),
    )
  : [];
const stopBusy = () => {
  for (const p of busy) p.kill();
};
process.once('exit', stopBusy);
console.log(
  `node ${process.version}, ${COUNT} messages, ${RUNS} runs, ${busy.length} busy-loop processes, load average ${load()}`,
);
for (const placement of placements) {
  if (only !== undefined && only !== placement.name) continue;
  // --rows=text keeps the rows whose name contains it (for profiling one loop): no ratios then.
  const all = [placement.peer, ...placement.rows].filter(
    (row) => rowFilter === undefined || row.name.includes(rowFilter),
  );
  const peerIn = all[0] === placement.peer;
  const floorAt = all.indexOf(placement.floor);
  for (const size of SIZES) {
    const results = all.map(() => [] as Result[]);
    for (let run = 0; run < RUNS; run++) {
      for (const [i, row] of all.entries()) results[i]?.push(await row.measure(size));
    }
    const rates = results.map((rs) => rs.map((r) => r.rate));
    const peerRates = rates[0] as number[];
    const floorRates = rates[floorAt];
    console.log(
      `\n${placement.name}, ${size} B (load average after: ${load()})\n\n| ${size} B | msg/s median | spread | ns/msg | CPU ns/msg, sender | receiver | vs ${placement.peer.name}, median | spread | vs floor, median | spread |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
    );
    const versus = (mine: number[], base: number[] | undefined) => {
      if (base === undefined) return '- | -';
      const ratios = mine.map((r, k) => r / (base[k] as number));
      return `${ratio(median(ratios))} | ${range(ratios, ratio)}`;
    };
    for (const [i, row] of all.entries()) {
      const mine = rates[i] as number[];
      const ns = (1e9 / median(mine)).toFixed(0);
      const cpu = (side: 'send' | 'recv') =>
        median((results[i] as Result[]).map((r) => r[side])).toFixed(0);
      console.log(
        `| ${row.name.replaceAll('|', '\\|')} | ${rate(median(mine))} | ${range(mine, rate)} | ${ns} | ${cpu('send')} | ${cpu('recv')} | ${versus(mine, peerIn ? peerRates : undefined)} | ${versus(mine, floorRates)} |`,
      );
    }
  }
}
stopBusy();
