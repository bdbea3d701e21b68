/** The worker side of the arena tests: `workerData.scenario` names what to do. */
import { parentPort, workerData } from 'node:worker_threads';
import { Channel, type EndpointToken, importEndpoint } from '../../../src/index.js';
import { homeArena, KIND_CLAIMED, KIND_SLOT } from '../../../src/shm/arena.js';
import { OWNER, P_MSGS, ringControl } from '../../../src/transport/worker/layout.js';

const data = workerData as {
  scenario: string;
  token: EndpointToken;
  cutShort?: 'published' | 'unpublished';
};
const port = parentPort!;

/** Echoes every message on `ch` (type + 1, same data) until the peer closes. */
async function echo(ch: Channel): Promise<void> {
  try {
    for await (const m of ch) await ch.sendWait({ type: m.type + 1, data: m.data });
  } finally {
    ch.close();
  }
}

const scenarios: Record<string, () => unknown> = {
  /** Imports its end at once, says so, and echoes; the first message comes much later. */
  importThenEcho() {
    const ch = importEndpoint(data.token);
    port.postMessage('imported');
    return echo(ch);
  },

  /** Imports its end, says so, and never reads: its queue fills. */
  importOnly() {
    importEndpoint(data.token);
    port.postMessage('imported');
    // Alive until terminated: an idle worker would exit, and its end close with it.
    port.on('message', () => {});
  },

  /** Imports its end, says so, and closes it. */
  importThenClose() {
    importEndpoint(data.token).close();
    port.postMessage('imported');
  },

  /** Every channel handle arriving on the control channel is echoed until its peer closes. */
  async echoHandles() {
    const ctrl = importEndpoint(data.token);
    const echoes: Promise<void>[] = [];
    for await (const m of ctrl) {
      for (const h of m.handles) if (h instanceof Channel) echoes.push(echo(h));
      await ctrl.sendWait({ type: m.type });
    }
    await Promise.all(echoes);
  },

  /** Sends every message's handles straight back on the control channel, until it closes. */
  async bounceHandles() {
    const ctrl = importEndpoint(data.token);
    for await (const m of ctrl) await ctrl.sendWait({ type: m.type, handles: m.handles });
  },

  /**
   * Sends the handles of the first message back, says so, and waits to be terminated. With
   * `cutShort`, first puts its block back to handed over (and, for 'unpublished', the message
   * out of the count of messages sent), leaving what a terminate() after the message was
   * published but before the send returned leaves (or one after the handles were handed to
   * the message but before it was published).
   */
  async sendBack() {
    const ctrl = importEndpoint(data.token);
    const m = await ctrl.recv();
    await ctrl.sendWait({ type: m.type, handles: m.handles });
    if (data.cutShort !== undefined) {
      // The control channel's side is the only one this thread still holds, and the message's
      // handles block the only block it claimed.
      const arena = homeArena();
      for (const slot of arena.blocks(KIND_SLOT)) {
        for (const side of [0, 1]) {
          if (arena.i32[(slot >> 2) + OWNER + side] !== arena.entry) continue;
          const control = (slot >> 2) + ringControl(side);
          if (data.cutShort === 'unpublished') Atomics.sub(arena.i32, control + P_MSGS, 1);
          for (const block of arena.blocks(KIND_CLAIMED)) {
            if (arena.claimer(block) === arena.entry) arena.handOver(block, control);
          }
        }
      }
    }
    port.postMessage('sent');
    port.on('message', () => {});
  },

  /** Keeps every handle it receives open, acknowledging each message, until told to exit. */
  async holdHandles() {
    const ctrl = importEndpoint(data.token);
    const held: unknown[] = [];
    for await (const m of ctrl) {
      held.push(...m.handles);
      await ctrl.sendWait({ type: m.type });
    }
  },
};

await (scenarios[data.scenario] as () => unknown)();
