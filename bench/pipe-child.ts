/**
 * The receiving process of bench/pipe-process.bench.ts: counts the bytes that arrive through a
 * data pipe end (sent on `ctl`) or a Unix socket (argv[3]), then reports the count on `ctl`.
 */
import { connect } from 'node:net';
import { type DataPipeConsumer, parentChannels } from '../src/index.js';

const { ctl } = await parentChannels(['ctl']);
const report = async (bytes: number) => {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setFloat64(0, bytes, true);
  await ctl.sendWait({ type: 1, data });
  ctl.close();
};

if (process.argv[2] === 'pipe') {
  const [consumer] = (await ctl!.recv()).handles as [DataPipeConsumer];
  let bytes = 0;
  for (;;) {
    let view: Uint8Array | undefined;
    try {
      view = consumer.beginRead();
    } catch {
      break; // the producer closed and everything was read
    }
    if (view === undefined) {
      await consumer.readable().catch(() => {});
      continue;
    }
    bytes += view.byteLength;
    consumer.endRead(view.byteLength);
  }
  await report(bytes);
} else {
  const socket = connect(process.argv[3] as string);
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength;
  });
  socket.on('end', () => void report(bytes));
}
