/** Worker side of the cross-thread pipe tests: what to do comes in workerData. */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import {
  type DataPipeConsumer,
  type DataPipeProducer,
  importPipeEnd,
  type PipeToken,
} from '../../src/index.js';

const { token, task, bytes } = workerData as { token: PipeToken; task: string; bytes: number };
const end = importPipeEnd(token);

function pattern(offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((offset + i) * 131) >>> 3;
  return out;
}

if (task === 'produce') {
  // Random-size writes, two-phase and copying, so reads and writes straddle the wrap-around.
  const producer = end as DataPipeProducer;
  let sent = 0;
  let turn = 0;
  while (sent < bytes) {
    const n = Math.min(bytes - sent, 1 + ((turn++ * 7919) % 5000));
    if (turn % 2 === 0) {
      await producer.writable(Math.min(n, producer.capacityBytes));
      const view = producer.beginWrite(1) as Uint8Array;
      const k = Math.min(view.byteLength, n);
      view.set(pattern(sent, k));
      producer.endWrite(k);
      sent += k;
    } else {
      await producer.writeAll(pattern(sent, n));
      sent += n;
    }
  }
  producer.close();
} else if (task === 'consume') {
  const hash = createHash('sha256');
  for await (const chunk of end as DataPipeConsumer) hash.update(chunk);
  parentPort?.postMessage(hash.digest('hex'));
} else if (task === 'read-then-idle') {
  // Frees far less than half the pipe, then leaves the pipe alone without ending the thread.
  await (end as DataPipeConsumer).read(bytes);
  parentPort?.postMessage('read');
  setInterval(() => {}, 1000);
} else if (task === 'write-then-hang') {
  (end as DataPipeProducer).write(pattern(0, bytes));
  parentPort?.postMessage('written');
  setInterval(() => {}, 1000);
}
