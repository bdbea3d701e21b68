/**
 * One failover run on a 3-node cluster, for cluster.test.ts and bench/nats.bench.ts: 20,000
 * numbered messages and 2,000 calls with 64 in flight while the server under one side is
 * killed (-9). Asserts exactly once, in order; returns the longest pauses.
 */
import assert from 'node:assert/strict';
import { Channel, connect, listen } from '../../../src/index.js';
import type { NatsServer } from './server.js';

export const COUNT = 20_000;
export const CALLS = 2_000;
const secret = 'cluster';

/**
 * One run: the listener (receiver of the stream, server of the calls) on servers[0], the client
 * on servers[1]; `victim`'s server is killed a quarter into the stream. Returns the longest
 * pause between two stream messages and between two replies, in ms.
 */
export async function failoverRun(
  servers: NatsServer[],
  victim: 'sender' | 'receiver',
  service: string,
): Promise<{ streamPauseMs: number; callPauseMs: number }> {
  const [a, b] = servers as [NatsServer, NatsServer];
  const listener = await listen({ nats: a.url, service }, { secret });
  const accepted = listener.accept();
  const out = await connect({ nats: b.url, service }, { secret });
  const root = (await accepted) as Channel;
  await listener.close();
  const [calls, far] = Channel.pair({ capacity: 128 });
  await out.sendWait({ type: 0, handles: [far] });
  const server = (await root.recv()).handles[0] as Channel;
  // The server of the calls answers each with its number, in order.
  void (async () => {
    for (;;) {
      const m = await server.recv().catch(() => undefined);
      if (m === undefined) return;
      await server.sendWait({ type: m.type, data: m.data });
    }
  })();
  let killed = false;
  const sending = (async () => {
    for (let i = 1; i <= COUNT; i++) {
      await out.sendWait({ type: i, data: new Uint8Array(64) });
      if (i === COUNT / 4) {
        killed = true;
        void (victim === 'sender' ? b : a).kill();
      }
    }
  })();
  let callPauseMs = 0;
  const calling = (async () => {
    let next = 1;
    let answered = 1;
    let last = Date.now();
    const reader = (async () => {
      while (answered <= CALLS) {
        const m = await calls.recv();
        assert.equal(m.type, answered, `reply ${m.type} arrived where ${answered} was due`);
        answered++;
        const now = Date.now();
        callPauseMs = Math.max(callPauseMs, now - last);
        last = now;
      }
    })();
    while (next <= CALLS) {
      if (next - answered >= 64) await new Promise((resolve) => setTimeout(resolve, 1));
      else await calls.sendWait({ type: next++ });
    }
    await reader;
  })();
  let streamPauseMs = 0;
  let last = Date.now();
  for (let next = 1; next <= COUNT; next++) {
    const m = await root.recv();
    assert.equal(m.type, next, `message ${m.type} arrived where ${next} was due`);
    const now = Date.now();
    streamPauseMs = Math.max(streamPauseMs, now - last);
    last = now;
  }
  await sending;
  await calling;
  assert.ok(killed);
  // Nothing more, and no duplicate, is on its way.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(root.tryRecv(), undefined);
  calls.close();
  out.close();
  await root.closed;
  root.close();
  return { streamPauseMs, callPauseMs };
}
