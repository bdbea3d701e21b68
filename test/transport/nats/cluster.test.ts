/*
 * Failover on a 3-node cluster: NATS core drops what is in flight when a server dies and its
 * clients move to another (and nats.js drops what it buffered while reconnecting). A channel
 * must carry on without loss: what the receiver had not acknowledged is sent again, duplicates
 * are dropped by number. And when one side knows its peer is gone, the other learns it soon.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Channel } from '../../../src/index.js';
import { connect, listen } from '../../../src/index.js';
import { CALLS, COUNT, failoverRun } from './failover.js';
import { type NatsServer, natsSuite, startCluster } from './server.js';

const RUNS = 2;

describe('a NATS server of a 3-node cluster killed mid-stream', natsSuite, () => {
  let servers: NatsServer[] = [];
  afterEach(async () => {
    for (const s of servers) await s.stop();
    servers = [];
  });

  for (const victim of ['sender', 'receiver'] as const) {
    it(`kill -9 of the ${victim}'s server: ${COUNT} messages and ${CALLS} calls (64 in flight) arrive exactly once, in order (${RUNS} runs)`, {
      timeout: 120_000,
    }, async (t) => {
      for (let run = 0; run < RUNS; run++) {
        servers = await startCluster(3);
        const pause = await failoverRun(servers, victim, `stream-${victim}-${run}`);
        t.diagnostic(
          `run ${run + 1}: longest pause ${pause.streamPauseMs} ms in the stream, ${pause.callPauseMs} ms between replies`,
        );
        for (const s of servers) await s.stop();
        servers = [];
      }
    });
  }

  it('one side closes while its server is down: the other sees PEER_CLOSED within 2 s (default settings)', {
    timeout: 60_000,
  }, async () => {
    servers = await startCluster(3);
    const [a, b] = servers as [NatsServer, NatsServer];
    const listener = await listen({ nats: a.url, service: 'notice' }, { secret: 'notice' });
    const accepted = listener.accept();
    const out = await connect({ nats: b.url, service: 'notice' }, { secret: 'notice' });
    const root = (await accepted) as Channel;
    await listener.close();
    out.send({ type: 1 });
    assert.equal((await root.recv()).type, 1);
    // The client's server dies; while its client reconnects, the client closes its channel.
    await b.kill();
    const closedAt = Date.now();
    out.close();
    assert.equal(await root.closed, 'peer');
    const took = Date.now() - closedAt;
    assert.ok(took < 2000, `PEER_CLOSED after ${took} ms`);
    root.close();
  });
});
