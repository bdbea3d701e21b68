/** One side of examples/pipe-copy: reads a file into a pipe, or writes a pipe out to a file. */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import {
  type DataPipeConsumer,
  type DataPipeProducer,
  type EndpointToken,
  importEndpoint,
  importPipeEnd,
  type PipeToken,
} from 'ftl-ipc';

const { role, path, pipe, progress } = workerData as {
  role: 'reader' | 'writer';
  path: string;
  pipe: PipeToken;
  progress?: EndpointToken;
};
const CHUNK = 256 * 1024;

if (role === 'reader') {
  const producer = importPipeEnd(pipe) as DataPipeProducer;
  const fd = openSync(path, 'r');
  for (;;) {
    let view = producer.beginWrite(1);
    while (view === undefined) {
      await producer.writable();
      view = producer.beginWrite(1);
    }
    const n = readSync(fd, view, 0, Math.min(view.byteLength, CHUNK), null);
    producer.endWrite(n);
    if (n === 0) break;
  }
  closeSync(fd);
  producer.close();
} else {
  const consumer = importPipeEnd(pipe) as DataPipeConsumer;
  const reports = importEndpoint(progress as EndpointToken);
  const fd = openSync(path, 'w');
  const report = new DataView(new ArrayBuffer(8));
  let written = 0;
  for (;;) {
    let view: Uint8Array | undefined;
    try {
      view = consumer.beginRead();
    } catch {
      break; // the reader closed its end and everything was written
    }
    if (view === undefined) {
      await consumer.readable().catch(() => {});
      continue;
    }
    const n = writeSync(fd, view);
    consumer.endRead(n);
    written += n;
    report.setBigUint64(0, BigInt(written), true);
    reports.send({ type: 1, data: new Uint8Array(report.buffer) }, { onFull: 'drop' });
  }
  closeSync(fd);
  reports.close();
}
