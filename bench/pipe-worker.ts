/** The producing side of bench/pipe.bench.ts: sends `chunks` chunks of 64 KiB by one method. */
import { once } from 'node:events';
import { connect } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { type DataPipeProducer, importPipeEnd, type PipeToken } from '../src/index.js';

const { method, chunks, chunkBytes, token, socketPath } = workerData as {
  method: 'pipe-write' | 'pipe-two-phase' | 'port' | 'socket';
  chunks: number;
  chunkBytes: number;
  token?: PipeToken;
  socketPath?: string;
};
const source = new Uint8Array(chunkBytes).fill(1);
const port = parentPort as NonNullable<typeof parentPort>;
// The clock starts once this worker has loaded its modules, not when it comes online.
port.postMessage('ready');
await once(port, 'message');

if (method === 'pipe-write') {
  // The loop a user writes: the pipe copies each chunk in, waiting for room as needed.
  const producer = importPipeEnd(token as PipeToken) as DataPipeProducer;
  for (let i = 0; i < chunks; i++) await producer.writeAll(source);
  producer.close();
} else if (method === 'pipe-two-phase') {
  const producer = importPipeEnd(token as PipeToken) as DataPipeProducer;
  for (let i = 0; i < chunks; i++) {
    let view = producer.beginWrite(chunkBytes);
    while (view === undefined) {
      await producer.writable(chunkBytes);
      view = producer.beginWrite(chunkBytes);
    }
    view.set(source);
    producer.endWrite(chunkBytes);
  }
  producer.close();
} else if (method === 'port') {
  // Bounded by hand, as a careful MessagePort user must: 16 chunks in flight at most.
  let credit = 16;
  let wake: (() => void) | undefined;
  port.on('message', () => {
    credit++;
    wake?.();
  });
  for (let i = 0; i < chunks; i++) {
    while (credit === 0) await new Promise<void>((resolve) => (wake = resolve));
    credit--;
    const chunk = new Uint8Array(chunkBytes);
    chunk.set(source);
    port.postMessage(chunk, [chunk.buffer]);
  }
  port.close();
} else {
  const socket = connect(socketPath as string);
  for (let i = 0; i < chunks; i++) {
    if (!socket.write(source)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end();
}
