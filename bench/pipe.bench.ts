/**
 * 64 KiB chunks from a worker to the main thread: a data pipe with two-phase I/O against
 * single-core Buffer.copy bandwidth (the physical limit here), MessagePort with transferred
 * ArrayBuffers, and a Unix-socket stream, all in one run. Run: npm run bench:pipe
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DataPipe, exportPipeEnd } from '../src/index.js';

const CHUNK = 64 * 1024;
const CHUNKS = 8192; // 512 MiB per method
const TOTAL = CHUNK * CHUNKS;
const workerUrl = new URL('./pipe-worker.js', import.meta.url);

const RING = 1024 * 1024;

/**
 * One copy of each chunk into a 1 MiB ring: the memory traffic of the pipe, without the pipe.
 * V8 copies into shared memory with relaxed atomic word copies, slower than memcpy: both limits.
 */
function copyBandwidth(shared: boolean): number {
  const from = new Uint8Array(CHUNK).fill(1);
  const ring = new Uint8Array(shared ? new SharedArrayBuffer(RING) : new ArrayBuffer(RING));
  const started = performance.now();
  for (let i = 0; i < CHUNKS; i++) ring.set(from, (i * CHUNK) % RING);
  return TOTAL / ((performance.now() - started) / 1000);
}

async function viaPipe(): Promise<number> {
  const [producer, consumer] = DataPipe.create({ capacityBytes: RING });
  const token = exportPipeEnd(producer);
  const worker = new Worker(workerUrl, {
    workerData: { method: 'pipe', chunks: CHUNKS, chunkBytes: CHUNK, token },
    transferList: token.transfer,
  });
  await once(worker, 'online');
  const started = performance.now();
  let received = 0;
  let checksum = 0;
  while (received < TOTAL) {
    const view = consumer.beginRead();
    if (view === undefined) {
      await consumer.readable();
      continue;
    }
    checksum += view[view.byteLength - 1] as number; // read in place: no copy
    received += view.byteLength;
    consumer.endRead(view.byteLength);
  }
  const seconds = (performance.now() - started) / 1000;
  consumer.close();
  if (checksum === 0) throw new Error('the pipe delivered no data');
  return TOTAL / seconds;
}

async function viaMessagePort(): Promise<number> {
  const worker = new Worker(workerUrl, {
    workerData: { method: 'port', chunks: CHUNKS, chunkBytes: CHUNK },
  });
  await once(worker, 'online');
  const started = performance.now();
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
  const [socket] = await once(server, 'connection');
  const started = performance.now();
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

const gbps = (bytesPerSecond: number) => `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
const rounds = 3;
const best = { copy: 0, sharedCopy: 0, pipe: 0, port: 0, socket: 0 };
for (let round = 0; round < rounds; round++) {
  best.copy = Math.max(best.copy, copyBandwidth(false));
  best.sharedCopy = Math.max(best.sharedCopy, copyBandwidth(true));
  best.pipe = Math.max(best.pipe, await viaPipe());
  best.port = Math.max(best.port, await viaMessagePort());
  best.socket = Math.max(best.socket, await viaUnixSocket());
}
process.stdout.write(
  [
    `64 KiB chunks, worker to main thread, ${TOTAL / 2 ** 20} MiB per run, best of ${rounds}`,
    '| method | bandwidth | data pipe is |',
    '| --- | --- | --- |',
    `| data pipe, two-phase I/O | ${gbps(best.pipe)} | 1.00x |`,
    `| one copy into an ArrayBuffer ring, one core | ${gbps(best.copy)} | ${(best.pipe / best.copy).toFixed(2)}x of it |`,
    `| one copy into a SharedArrayBuffer ring, one core | ${gbps(best.sharedCopy)} | ${(best.pipe / best.sharedCopy).toFixed(2)}x of it |`,
    `| MessagePort, transferred ArrayBuffers | ${gbps(best.port)} | ${(best.pipe / best.port).toFixed(2)}x |`,
    `| Unix-socket stream | ${gbps(best.socket)} | ${(best.pipe / best.socket).toFixed(2)}x |`,
    '',
  ].join('\n'),
);
