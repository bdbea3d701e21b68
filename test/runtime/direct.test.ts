import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixture, Run } from './helpers.js';

describe('direct links between a thread or process server and its process client', {
  timeout: 60_000,
}, () => {
  for (const [server, client] of [
    ['thread', 'process'],
    ['process', 'process'],
    ['process', 'thread'],
  ]) {
    it(`carry messages while the supervisor thread is blocked (server in a ${server}, client in a ${client}): it relays nothing`, async () => {
      const run = new Run(`
services:
  - name: echo
    module: ${fixture('echo-server')}
    isolation: ${server}
    provides: [echo]
  - name: pinger
    module: ${fixture('pinger')}
    isolation: ${client}
    config: { ms: 2500 }
    depends: [{ name: echo, protocol: echo }]
`);
      await run.waitFor(/\[pinger\] pinging/);
      // Relayed through this thread, not one round trip could end while it sleeps.
      const from = Date.now();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
      const to = Date.now();
      const times = JSON.parse((await run.waitFor(/\[pinger\] pings (.*)/))[1]!) as number[];
      const during = times.filter((t) => t > from + 100 && t < to - 100);
      assert.ok(
        during.length > 10,
        `${during.length} round trips while blocked, ${times.length} in all`,
      );
      await run.system.stop();
    });
  }

  it("hold exactly the dependency's capacity, as the pair it stands for", async () => {
    for (const isolation of ['thread', 'process']) {
      const run = new Run(`
services:
  - name: sink
    module: ${fixture('hoarder')}
    isolation: ${isolation}
    provides: [sink]
  - name: flooder
    module: ${fixture('flooder')}
    isolation: process
    depends: [{ name: flood, protocol: sink, capacity: 7 }]
`);
      const sent = await run.waitFor(/\[flooder\] sent (\d+) before BACKPRESSURE/);
      assert.equal(sent[1], '7', isolation);
      await run.system.stop(500);
    }
  });

  it('a client whose server fails for good starts, sees PEER_CLOSED, and the run ends', async () => {
    const run = new Run(`
services:
  - name: broken
    module: ${fixture('fail')}
    isolation: process
    provides: [svc]
    restart: { policy: on-failure, limit: 1, backoffMs: 20 }
  - name: client
    module: ${fixture('peer-closed-client')}
    isolation: process
    depends: [{ name: svc, protocol: svc }]
`);
    await run.waitFor(/\[client\] recv failed with PEER_CLOSED/);
    await run.system.done;
  });
});
