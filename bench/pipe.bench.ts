/**
 * 64 KiB chunks from a worker to the main thread: a data pipe at its default capacity driven by
 * the loop a user writes, the same pipe with tuned two-phase I/O, MessagePort with transferred
 * ArrayBuffers and a Unix-socket stream, against the one-core copy limits; all in one run, the
 * methods alternating within each round, medians and spread over the rounds.
 *
 * Run: npm run bench:pipe [-- --rounds N] [-- --only pipe-default,port]
 * Profile: node --cpu-prof --cpu-prof-dir=prof dist/bench/pipe.bench.js --only pipe-default
 * (workers inherit --cpu-prof and write a profile of their own).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { DataPipe, type DataPipeOptions, exportPipeEnd } from '../src/index.js';
import { median } from './stats.js';

const CHUNK = 64 * 1024;
const CHUNKS = 8192; // 512 MiB per method
const TOTAL = CHUNK * CHUNKS;
const workerUrl = new URL('./pipe-worker.js', import.meta.url);
/** The tuned pipe: room for many chunks, so that neither thread waits for the other. */
const TUNED = 4 * 1024 * 1024;
/** The copy limits copy into a ring of the default pipe's size. */
const COPY_RING = (() => {
  const [producer, consumer] = DataPipe.create();
  const capacity = producer.capacityBytes;
  consumer.close();
  producer.close();
  return capacity;
})();

/** One copy of each chunk into a ring, in one thread: the memory traffic of the pipe alone. */
function copyBandwidth(shared: boolean): number {
  const from = new Uint8Array(CHUNK).fill(1);
  const ring = new Uint8Array(
    shared ? new SharedArrayBuffer(COPY_RING) : new ArrayBuffer(COPY_RING),
  );
  const started = performance.now();
  for (let i = 0; i < CHUNKS; i++) ring.set(from, (i * CHUNK) % COPY_RING);
  return TOTAL / ((performance.now() - started) / 1000);
}

/** A user's loop: `await writeAll(chunk)` in the worker, `for await` here (each chunk a copy). */
async function viaPipeDefault(): Promise<number> {
  const [producer, consumer] = DataPipe.create();
  const started = await startProducer('pipe-write', producer);
  let received = 0;
  let checksum = 0;
  for await (const chunk of consumer) {
    checksum += chunk[chunk.byteLength - 1] as number;
    received += chunk.byteLength;
  }
  return finish(started, received, checksum);
}

/** Two-phase on both sides, read in place (no copy here). */
async function viaPipeTwoPhase(options: DataPipeOptions): Promise<number> {
  const [producer, consumer] = DataPipe.create(options);
  const started = await startProducer('pipe-two-phase', producer);
  let received = 0;
  let checksum = 0;
  while (received < TOTAL) {
    const view = consumer.beginRead();
    if (view === undefined) {
      await consumer.readable();
      continue;
    }
    checksum += view[view.byteLength - 1] as number;
    received += view.byteLength;
    consumer.endRead(view.byteLength);
  }
  consumer.close();
  return finish(started, received, checksum);
}

async function startProducer(
  method: string,
  producer: Parameters<typeof exportPipeEnd>[0],
): Promise<number> {
  const token = exportPipeEnd(producer);
  const worker = new Worker(workerUrl, {
    workerData: { method, chunks: CHUNKS, chunkBytes: CHUNK, token },
    transferList: token.transfer,
  });
  return go(worker);
}

/** Starts the worker's run once it has loaded its modules; returns the time it started. */
async function go(worker: Worker): Promise<number> {
  await once(worker, 'message');
  worker.postMessage('go');
  return performance.now();
}

function finish(started: number, received: number, checksum: number): number {
  const seconds = (performance.now() - started) / 1000;
  if (received !== TOTAL || checksum === 0) throw new Error(`the pipe delivered ${received} bytes`);
  return TOTAL / seconds;
}

async function viaMessagePort(): Promise<number> {
  const worker = new Worker(workerUrl, {
    workerData: { method: 'port', chunks: CHUNKS, chunkBytes: CHUNK },
  });
  const started = await go(worker);
  let received = 0;
  await new Promise<void>((resolve) => {
    worker.on('message', (chunk: Uint8Array) => {
      received += chunk.byteLength;
      worker.postMessage(0);
      if (received === TOTAL) resolve();
    });
  });
  const seconds = (performance.now() - started) / 1000;
  await worker.terminate();
  return TOTAL / seconds;
}

async function viaUnixSocket(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ftl-ipc-bench-'));
  const socketPath = join(dir, 's');
  const server = createServer();
  server.listen(socketPath);
  await once(server, 'listening');
  const worker = new Worker(workerUrl, {
    workerData: { method: 'socket', chunks: CHUNKS, chunkBytes: CHUNK, socketPath },
  });
  const started = await go(worker);
  const [socket] = await once(server, 'connection');
  let received = 0;
  socket.on('data', (data: Buffer) => {
    received += data.byteLength;
  });
  await once(socket, 'end');
  const seconds = (performance.now() - started) / 1000;
  await worker.terminate();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  if (received !== TOTAL) throw new Error(`socket received ${received} bytes`);
  return TOTAL / seconds;
}

const KiB = (bytes: number) => `${bytes / 1024} KiB`;
const methods = [
  {
    key: 'pipe-default',
    name: `data pipe, default (${KiB(COPY_RING)}), writeAll + for await`,
    run: viaPipeDefault,
  },
  {
    key: 'pipe-default-two-phase',
    name: 'data pipe, default, two-phase I/O',
    run: () => viaPipeTwoPhase({}),
  },
  {
    key: 'pipe-tuned',
    name: `data pipe, ${KiB(TUNED)}, two-phase I/O`,
    run: () => viaPipeTwoPhase({ capacityBytes: TUNED }),
  },
  {
    key: 'port',
    name: 'MessagePort, transferred ArrayBuffers',
    run: viaMessagePort,
  },
  { key: 'socket', name: 'Unix-socket stream', run: viaUnixSocket },
  {
    key: 'copy',
    name: `one copy into a ${KiB(COPY_RING)} ArrayBuffer ring, one core`,
    run: async () => copyBandwidth(false),
  },
  {
    key: 'shared-copy',
    name: `one copy into a ${KiB(COPY_RING)} SharedArrayBuffer ring, one core`,
    run: async () => copyBandwidth(true),
  },
];

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, only: { type: 'string' } },
});
const rounds = Number(values.rounds);
const only = values.only?.split(',');
const chosen = methods.filter((m) => only === undefined || only.includes(m.key));
const results = new Map<string, number[]>(chosen.map((m) => [m.key, []]));
for (let round = 0; round < rounds; round++) {
  for (const method of chosen) results.get(method.key)?.push(await method.run());
}

const gbps = (bytesPerSecond: number) => (bytesPerSecond / 1e9).toFixed(2);
const spread = (xs: number[], f: (x: number) => string) =>
  `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
/** Each round's ratio of `of` to `to`, so that a disturbed round disturbs both sides of its ratio. */
const ratios = (of: string, to: string) => {
  const xs = results.get(of);
  const base = results.get(to);
  if (xs === undefined || base === undefined) return undefined;
  return xs.map((x, i) => x / (base[i] as number));
};
const times = (r: number[] | undefined) =>
  r === undefined ? '' : `${median(r).toFixed(2)}x (${spread(r, (x) => x.toFixed(2))})`;

const lines = [
  `64 KiB chunks, worker to main thread, ${TOTAL / 2 ** 20} MiB per run, median (min–max) of ${rounds} rounds, load average ${loadavg()[0]?.toFixed(2)} at the end`,
  '| method | GB/s | × MessagePort |',
  '| --- | --- | --- |',
];
for (const method of chosen) {
  const xs = results.get(method.key) as number[];
  lines.push(
    `| ${method.name} | ${gbps(median(xs))} (${spread(xs, gbps)}) | ${times(ratios(method.key, 'port'))} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
