/** The worker side of the worker-transport tests: `workerData.scenario` names what to do. */
import { parentPort, workerData } from 'node:worker_threads';
import {
  Channel,
  DataPipeProducer,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  isIpcError,
} from '../../../src/index.js';
import { pattern } from './workers.js';

interface Data {
  scenario: string;
  token: EndpointToken;
  count: number;
  size: number;
  mode: string;
  flag: Int32Array;
}

const data = workerData as Data;
const port = parentPort!;

async function firstHandle(ch: Channel): Promise<Channel> {
  const [handle] = (await ch.recv()).handles;
  if (!(handle instanceof Channel)) throw new Error('expected a channel handle');
  return handle;
}

const scenarios: Record<string, () => unknown> = {
  relay() {
    port.on('message', (token: EndpointToken) => port.postMessage(token, token.transfer));
  },

  /** Replies to every message with type + 1, the same data and the same handles. */
  async echo() {
    const ch = importEndpoint(data.token);
    for await (const m of ch) {
      await ch.sendWait({ type: m.type + 1, data: m.data, handles: m.handles });
    }
    ch.close();
  },

  /** Never reads on its own; on `{ take: n }` from the parent takes n messages, reports types. */
  hold() {
    const ch = importEndpoint(data.token);
    port.on('message', (command: { take: number }) => {
      const types: number[] = [];
      for (let i = 0; i < command.take; i++) types.push(ch.tryRecv()?.type ?? -1);
      port.postMessage(types);
    });
    port.postMessage('ready');
  },

  /** Sends until the first BACKPRESSURE and reports how many went through synchronously. */
  fill() {
    const ch = importEndpoint(data.token);
    let sent = 0;
    for (;;) {
      try {
        ch.send({ type: sent, data: new Uint8Array(data.size) });
        sent++;
      } catch (err) {
        if (!isIpcError(err, 'BACKPRESSURE')) throw err;
        break;
      }
    }
    port.postMessage(sent);
    port.once('message', () => ch.close());
  },

  /** Fills the queue, lets one sendWait time out, then has nothing left to do. */
  async giveUp() {
    const ch = importEndpoint(data.token);
    while (ch.send({ type: 0 }, { onFull: 'drop' }));
    const outcome = await ch.sendWait({ type: 1 }, { timeoutMs: 30 }).then(
      () => 'sent',
      (err: unknown) => (isIpcError(err) ? err.code : String(err)),
    );
    port.postMessage(outcome);
  },

  /** Sends `count` messages of types 0, 1, 2... as fast as room appears, then closes. */
  async stream() {
    const ch = importEndpoint(data.token);
    for (let n = 0; n < data.count; n++) await ch.sendWait({ type: n });
    ch.close();
  },

  /** Tries `count` sends of `size` bytes, dropping what does not fit; reports the tally. */
  flood() {
    const ch = importEndpoint(data.token);
    const payload = new Uint8Array(data.size);
    let accepted = 0;
    for (let i = 0; i < data.count; i++)
      if (ch.send({ type: i, data: payload }, { onFull: 'drop' })) accepted++;
    port.postMessage({ accepted, dropped: ch.stats.dropped });
    port.once('message', () => ch.close());
  },

  /** Sends `count` patterned messages, then dies the way `mode` says, holding the endpoint. */
  die() {
    const ch = importEndpoint(data.token);
    for (let n = 0; n < data.count; n++) ch.send({ type: n, data: pattern(n, data.size) });
    // A channel whose other end dies with this thread, riding in the last message.
    if (data.mode === 'exit-with-handle')
      ch.send({ type: data.count, handles: [Channel.pair()[0]] });
    port.postMessage('sent');
    if (data.mode.startsWith('exit')) process.exit(3);
    if (data.mode === 'throw') throw new Error('worker died on purpose');
    if (data.mode === 'hang') setInterval(() => {}, 1000);
    // 'return': the thread ends once nothing is pending, with the endpoint still open.
  },

  /** Makes a channel here, sends one end out over `token`, and echoes on the other. */
  async makeChannel() {
    const ch = importEndpoint(data.token);
    const [mine, theirs] = Channel.pair({ capacity: 8 });
    ch.send({ type: 1, handles: [theirs] });
    for await (const m of mine) await mine.sendWait({ type: m.type + 1, data: m.data });
    ch.close();
  },

  /** Receives a channel over `token` and sends `count` patterned messages on it. */
  async sendOnHandle() {
    const ch = importEndpoint(data.token);
    const out = await firstHandle(ch);
    for (let n = 0; n < data.count; n++)
      await out.sendWait({ type: n, data: pattern(n, data.size) });
    port.postMessage('sent');
    if (data.mode === 'hang') setInterval(() => {}, 1000);
    else out.close();
    ch.close();
  },

  /**
   * Receives a channel over `token`, reads `count` patterned messages checking every byte, then
   * raises `flag` (shared with the parent, which may be blocked) and reports how it ended.
   */
  async readOnHandle() {
    const ch = importEndpoint(data.token);
    const input = await firstHandle(ch);
    let bad = 0;
    for (let n = 0; n < data.count; n++) {
      const m = await input.recv();
      const want = pattern(n, data.size);
      if (m.type !== n || Buffer.compare(m.data, want) !== 0) bad++;
    }
    Atomics.store(data.flag, 0, 1);
    Atomics.notify(data.flag, 0);
    let end = 'open';
    try {
      await input.recv();
    } catch (err) {
      end = isIpcError(err) ? err.code : String(err);
    }
    port.postMessage({ bad, end });
    ch.close();
  },

  /** Receives a data pipe's producer end over `token` and writes `count` patterned bytes. */
  async pipeWrite() {
    const ch = importEndpoint(data.token);
    const [producer] = (await ch.recv()).handles;
    if (!(producer instanceof DataPipeProducer)) throw new Error('expected a pipe producer');
    await producer.writeAll(pattern(0, data.count));
    producer.close();
    ch.close();
  },

  /**
   * Move churn: each message brings a channel; answers the message waiting on it, then sends
   * the channel back.
   */
  async bounce() {
    const ch = importEndpoint(data.token);
    for await (const m of ch) {
      const [handle] = m.handles;
      if (!(handle instanceof Channel)) throw new Error('expected a channel handle');
      const got = await handle.recv();
      handle.send({ type: got.type + 1 });
      await ch.sendWait({ type: 0, handles: [handle] });
    }
  },

  /**
   * Keeps every channel that arrives (up to `count`), sends one message on each, reports, and
   * closes them all when the parent says so.
   */
  async holdMany() {
    const ch = importEndpoint(data.token);
    const held: Channel[] = [];
    while (held.length < data.count) {
      for (const handle of (await ch.recv()).handles) held.push(handle as Channel);
    }
    for (const h of held) h.send({ type: 1, data: pattern(0, data.size) });
    port.postMessage('sent');
    port.once('message', () => {
      for (const h of held) h.close();
      ch.close();
    });
  },

  /** Hands its imported endpoint back to the parent, re-exported. */
  reexport() {
    const ch = importEndpoint(data.token);
    const token = exportEndpoint(ch);
    port.postMessage(token, token.transfer);
  },
};

const run = scenarios[data.scenario];
if (run === undefined) throw new Error(`unknown scenario ${data.scenario}`);
await run();
