/** The worker side of relay.test.ts: `workerData.mode` names what to do. */
import { parentPort, workerData } from 'node:worker_threads';
import {
  connect,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  isIpcError,
} from '../../../src/index.js';

const data = workerData as { mode: string; token?: EndpointToken; path?: string };
const port = parentPort!;

/** Sends until BACKPRESSURE; the count. */
function fill(ch: ReturnType<typeof importEndpoint>): number {
  let sent = 0;
  for (;;) {
    try {
      ch.send({ type: sent });
      sent++;
    } catch (err) {
      if (!isIpcError(err, 'BACKPRESSURE')) throw err;
      return sent;
    }
  }
}

const modes: Record<string, () => unknown> = {
  /** Sends until BACKPRESSURE, reports the count, and again on each message from the parent. */
  fill() {
    const ch = importEndpoint(data.token as EndpointToken);
    port.postMessage(fill(ch));
    port.on('message', (command: string) => {
      if (command === 'close') {
        ch.close();
        port.close();
      } else port.postMessage(fill(ch));
    });
  },

  /** Sends `n` messages on command, then closes; reports what it could not send. */
  sendThenClose() {
    const ch = importEndpoint(data.token as EndpointToken);
    port.once('message', async (n: number) => {
      for (let i = 0; i < n; i++) await ch.sendWait({ type: i, data: new Uint8Array([i]) });
      ch.close();
      port.postMessage('closed');
    });
  },

  /** Reads everything until PEER_CLOSED and reports the types. */
  async drain() {
    const ch = importEndpoint(data.token as EndpointToken);
    port.postMessage('ready');
    const types: number[] = [];
    for await (const m of ch) types.push(m.type);
    port.postMessage(types);
  },

  /**
   * Connects to the parent's socket, takes the channel end the root delivers, and hands it to
   * the parent as a token: this thread relays it and may be killed.
   */
  async connectAndExport() {
    const root = await connect({ path: data.path as string });
    const [end] = (await root.recv()).handles;
    const token = exportEndpoint(end as ReturnType<typeof importEndpoint>);
    port.postMessage(token, token.transfer);
  },
};

const run = modes[data.mode];
if (run === undefined) throw new Error(`unknown mode ${data.mode}`);
await run();
