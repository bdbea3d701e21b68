/*
 * NATS core drops what is in flight when a server dies and its clients move to another. A
 * channel must then prove nothing was lost or close with PEER_CLOSED: the receiver here sees an
 * unbroken prefix of the stream, and either all of it or PEER_CLOSED, never a hole.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type Channel, connect, type IpcError, listen } from '../../../src/index.js';
import { type NatsServer, natsSuite, startCluster } from './server.js';

const COUNT = 20_000;

describe('a NATS server of a 3-node cluster killed mid-stream', natsSuite, () => {
  let servers: NatsServer[] = [];
  afterEach(async () => {
    for (const s of servers) await s.stop();
    servers = [];
  });

  for (const victim of ['sender', 'receiver'] as const) {
    it(`the ${victim}'s server: no message lost silently`, async (t) => {
      servers = await startCluster(3);
      const [a, b] = servers as [NatsServer, NatsServer];
      const fast = { reconnectTimeWait: 50, maxReconnectAttempts: -1 };
      // The listener (receiver) is on a, the sender on b; the third is where either may go.
      const listener = await listen(
        { nats: { servers: a.url, ...fast }, service: `stream-${victim}` },
        { heartbeatMs: 100, secret: 'cluster' },
      );
      const accepted = listener.accept();
      const out = await connect(
        { nats: { servers: b.url, ...fast }, service: `stream-${victim}` },
        { heartbeatMs: 100, secret: 'cluster' },
      );
      const ch = (await accepted) as Channel;
      await listener.close();
      const sending = (async () => {
        for (let i = 0; i < COUNT; i++) {
          await out.sendWait({ type: i, data: new Uint8Array(64) });
          if (i === COUNT / 4) void (victim === 'sender' ? b : a).kill();
        }
      })().then(
        () => 'all sent',
        (err: IpcError) => err.code,
      );
      let next = 0;
      let end = 'complete';
      while (next < COUNT) {
        const m = await ch.recv().catch((err: IpcError) => err.code);
        if (typeof m === 'string') {
          end = m;
          break;
        }
        assert.equal(m.type, next, `message ${m.type} arrived where ${next} was due`);
        next++;
      }
      assert.ok(end === 'complete' || end === 'PEER_CLOSED', end);
      const sent = await sending;
      if (end === 'complete') assert.equal(sent, 'all sent');
      out.close();
      ch.close();
      t.diagnostic(`${next} of ${COUNT} in order, then ${end}; the sender: ${sent}`);
    });
  }
});
