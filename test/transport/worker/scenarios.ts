/** The worker side of the worker-transport tests: `workerData.scenario` names what to do. */
import { parentPort, workerData } from 'node:worker_threads';
import { type Channel, type EndpointToken, importEndpoint } from '../../../src/index.js';

const data = workerData as { scenario: string; token?: EndpointToken; [key: string]: unknown };
const port = parentPort!;

const scenarios: Record<string, () => unknown> = {
  relay() {
    port.on('message', (token: EndpointToken) => port.postMessage(token, [token.port]));
  },

  /** Replies to every message with the same type and data, plus one. */
  async echo() {
    const ch = importEndpoint(data.token as EndpointToken);
    for await (const m of ch) {
      await ch.sendWait({ type: m.type + 1, data: m.data, handles: m.handles });
    }
    ch.close();
  },
};

const run = scenarios[data.scenario];
if (run === undefined) throw new Error(`unknown scenario ${data.scenario}`);
await run();
