/**
 * The far end of chain.test.ts, a worker thread: holds the end that came the whole way (from the
 * NATS listener in the main thread) and does with it what the main thread posts, answering with
 * a result each time.
 */
import assert from 'node:assert/strict';
import { parentPort } from 'node:worker_threads';
import {
  type Channel,
  type DataPipeConsumer,
  type DataPipeProducer,
  isIpcError,
  parentChannels,
} from '../../../src/index.js';

export type Command =
  | { op: 'fill' }
  | { op: 'send'; count: number; thenClose?: boolean }
  | { op: 'take'; count: number }
  | { op: 'drain' }
  | { op: 'read'; bytes: number }
  | { op: 'writeFull' }
  | { op: 'close' };

const { ctl } = await parentChannels(['ctl']);
const port = parentPort!;
let end: Channel | DataPipeConsumer | DataPipeProducer | undefined;

/** Sends until BACKPRESSURE; how many went. */
function fill(ch: Channel, first: number): number {
  for (let n = 0; ; n++) {
    try {
      ch.send({ type: first + n, data: new Uint8Array([first + n]) });
    } catch (error) {
      if (!isIpcError(error, 'BACKPRESSURE')) throw error;
      return n;
    }
  }
}

let next = 0;
const run: { [K in Command['op']]: (c: Extract<Command, { op: K }>) => Promise<unknown> } = {
  async fill() {
    const n = fill(end as Channel, next);
    next += n;
    return n;
  },
  async send({ count, thenClose }) {
    const ch = end as Channel;
    for (let i = 0; i < count; i++) await ch.sendWait({ type: next++ }, { timeoutMs: 5000 });
    if (thenClose === true) ch.close();
    return count;
  },
  async take({ count }) {
    const types: number[] = [];
    for (let i = 0; i < count; i++) {
      const m = await (end as Channel).recv();
      types.push(m.type);
      assert.ok(m.data.byteLength === 0 || m.data[0] === (m.type & 255), 'data matches type');
    }
    return types;
  },
  async drain() {
    const types: number[] = [];
    for await (const m of end as Channel) types.push(m.type);
    return { types, closed: await (end as Channel).closed };
  },
  async read({ bytes }) {
    const consumer = end as DataPipeConsumer;
    const got: number[] = [];
    while (got.length < bytes) got.push(...(await consumer.read(bytes - got.length)));
    return got;
  },
  async writeFull() {
    const producer = end as DataPipeProducer;
    let total = 0;
    for (;;) {
      const n = producer.write(new Uint8Array(256).fill(7), { partial: true });
      if (n === 0) return total;
      total += n;
    }
  },
  async close() {
    end?.close();
    return 'closed';
  },
};

port.on('message', (command: Command) => {
  const op = run[command.op] as (c: Command) => Promise<unknown>;
  op(command).then(
    (result) => port.postMessage({ result }),
    (error: unknown) => port.postMessage({ error: isIpcError(error) ? error.code : String(error) }),
  );
});
// Commands wait on the ends, which hold the thread; it ends once the main thread closes `ctl`.
port.unref();
for await (const m of ctl) {
  end?.close();
  end = m.handles[0] as typeof end;
  next = 0;
  port.postMessage({ arrived: end?.constructor.name });
}
end?.close();
