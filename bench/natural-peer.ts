/**
 * The receiving side of bench/natural.bench.ts, as a worker thread (workerData set) or a child
 * process (argv: mode, count, socket path, limits as JSON). It reads with `recvBatch()` as a user
 * would, says `ready` once it can receive and `done <ns>` when it has `count` messages, with the
 * CPU time this thread spent between the two.
 */
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import {
  type Channel,
  type ChannelOptions,
  connect,
  type EndpointToken,
  importEndpoint,
} from '../src/index.js';
import { RING_SLOTS } from './ring.js';
import { threadCpuNs } from './stats.js';

export type WorkerJob =
  | { kind: 'ftl'; token: EndpointToken; count: number; view: boolean }
  | { kind: 'port'; port: MessagePort; count: number }
  | { kind: 'ring'; ring: SharedArrayBuffer; count: number };

/** The hand-written consumer: copies each message out into one scratch buffer. */
function drainRing(sab: SharedArrayBuffer, count: number): number {
  const index = new Int32Array(sab, 0, 2);
  const bytes = new Uint8Array(sab, 8);
  const view = new DataView(sab, 8);
  const slot = (bytes.byteLength / RING_SLOTS) | 0;
  const scratch = new Uint8Array(slot);
  let head = 0;
  let sum = 0;
  while (head < count) {
    let tail = Atomics.load(index, 1);
    if (tail === head) {
      Atomics.wait(index, 1, head);
      tail = Atomics.load(index, 1);
    }
    for (; head < tail; head++) {
      const off = (head % RING_SLOTS) * slot;
      const len = view.getUint32(off, true);
      scratch.set(bytes.subarray(off + 4, off + 4 + len));
      sum += len;
    }
    Atomics.store(index, 0, head);
    Atomics.notify(index, 0);
  }
  return sum;
}

/** Drains `count` messages, with `recvBatch()` or with borrowed views. */
async function drain(ch: Channel, count: number, view: boolean): Promise<number> {
  let bytes = 0;
  for (let got = 0; got < count; ) {
    if (view) {
      await ch.readable();
      for (let m = ch.tryRecvView(); m !== undefined; m = ch.tryRecvView()) {
        bytes += m.data.byteLength;
        got++;
      }
    } else {
      for (const m of await ch.recvBatch()) {
        bytes += m.data.byteLength;
        got++;
      }
    }
  }
  return bytes;
}

async function inWorker(job: WorkerJob, port: MessagePort): Promise<void> {
  let cpu = 0;
  const ready = () => {
    port.postMessage('ready');
    cpu = threadCpuNs();
  };
  const done = () => port.postMessage(`done ${threadCpuNs() - cpu}`);
  if (job.kind === 'port') {
    let got = 0;
    job.port.on('message', () => {
      if (++got === job.count) done();
    });
    ready();
    return;
  }
  if (job.kind === 'ring') {
    ready();
    drainRing(job.ring, job.count);
    done();
    return;
  }
  const ch = importEndpoint(job.token);
  ready();
  await drain(ch, job.count, job.view);
  done();
  ch.close();
}

async function inChild(): Promise<void> {
  const [mode, count, path, limits] = process.argv.slice(2) as [string, string, string, string];
  const ch = await connect({ path }, JSON.parse(limits) as ChannelOptions);
  process.stdout.write('ready\n');
  const cpu = threadCpuNs();
  await drain(ch, Number(count), mode === 'view');
  process.stdout.write(`done ${threadCpuNs() - cpu}\n`);
  for await (const _ of ch) {
    // Until the parent closes.
  }
  ch.close();
}

if (!isMainThread) await inWorker(workerData as WorkerJob, parentPort as MessagePort);
else await inChild();
