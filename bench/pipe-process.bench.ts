/**
 * 64 KiB chunks from the parent to a child process: a data pipe whose consumer was sent to the
 * child over a socket channel (byte credits, the bound exact end to end) against a raw Unix-socket
 * byte stream to the same child script, in one run. Run: npm run bench:pipe-process
 */
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, DataPipe, privateSocketPath, spawnProcess } from '../src/index.js';

const CHUNK = 64 * 1024;
const TOTAL = 256 * 1024 * 1024;
const child = fileURLToPath(new URL('./pipe-child.js', import.meta.url));

async function start(args: string[]) {
  const [ctl, forChild] = Channel.pair();
  const spawned = await spawnProcess(child, { channels: { ctl: forChild }, args });
  const counted = ctl
    .recv()
    .then((m) => new DataView(m.data.buffer, m.data.byteOffset).getFloat64(0, true));
  return { ctl, spawned, counted };
}

async function viaPipe(): Promise<number> {
  const { ctl, spawned, counted } = await start(['pipe']);
  const [producer, consumer] = DataPipe.create({ capacityBytes: 1024 * 1024 });
  await ctl.sendWait({ type: 0, handles: [consumer] });
  const source = new Uint8Array(CHUNK).fill(1);
  const started = performance.now();
  for (let sent = 0; sent < TOTAL; sent += CHUNK) {
    let view = producer.beginWrite(CHUNK);
    while (view === undefined) {
      await producer.writable(CHUNK);
      view = producer.beginWrite(CHUNK);
    }
    view.set(source);
    producer.endWrite(CHUNK);
  }
  producer.close();
  const bytes = await counted;
  const seconds = (performance.now() - started) / 1000;
  await spawned.exited;
  if (bytes !== TOTAL) throw new Error(`the child counted ${bytes} bytes through the pipe`);
  return TOTAL / seconds;
}

async function viaSocket(): Promise<number> {
  const path = await privateSocketPath();
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  const { spawned, counted } = await start(['socket', path]);
  const [socket] = (await once(server, 'connection')) as [Socket];
  const source = Buffer.alloc(CHUNK, 1);
  const started = performance.now();
  for (let sent = 0; sent < TOTAL; sent += CHUNK) {
    if (!socket.write(source)) await once(socket, 'drain');
  }
  socket.end();
  const bytes = await counted;
  const seconds = (performance.now() - started) / 1000;
  await spawned.exited;
  server.close();
  rmSync(dirname(path), { recursive: true, force: true });
  if (bytes !== TOTAL) throw new Error(`the child counted ${bytes} bytes through the socket`);
  return TOTAL / seconds;
}

const best = { pipe: 0, socket: 0 };
for (let round = 0; round < 3; round++) {
  best.pipe = Math.max(best.pipe, await viaPipe());
  best.socket = Math.max(best.socket, await viaSocket());
}
const gbps = (n: number) => `${(n / 1e9).toFixed(2)} GB/s`;
process.stdout.write(
  [
    `64 KiB chunks, parent to child process, ${TOTAL / 2 ** 20} MiB per run, best of 3`,
    '| method | bandwidth | data pipe is |',
    '| --- | --- | --- |',
    `| data pipe over a socket channel | ${gbps(best.pipe)} | 1.00x |`,
    `| raw Unix-socket byte stream | ${gbps(best.socket)} | ${(best.pipe / best.socket).toFixed(2)}x |`,
    '',
  ].join('\n'),
);
