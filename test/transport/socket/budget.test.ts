/**
 * `maxPeerBytes` bounds what the channels and pipes a peer has open here may make this side
 * hold (docs/socket-transport.md, Limits and budgets): open at once, not ever opened. An id the
 * peer closed gives its share back, so a long-lived connection that keeps opening and closing
 * ids is never refused for the ones it closed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Channel,
  connect,
  DataPipe,
  type DataPipeConsumer,
  listen,
  privateSocketPath,
} from '../../../src/index.js';
import { socketErrors, until } from './helpers.js';

/** What one id of the test counts against the budget: capacityBytes + 64 x capacity. */
const LIMITS = { capacity: 4, capacityBytes: 1024 };
const COST = LIMITS.capacityBytes + 64 * LIMITS.capacity;
/** Room for two such ids at once: a third open at the same time is refused. */
const BUDGET = 2 * COST;
const CYCLES = 40;

describe('maxPeerBytes over a long-lived connection', () => {
  it(`ids the peer opens and closes give their budget back: ${CYCLES} opened one after another in a budget of two`, {
    timeout: 60_000,
  }, async () => {
    const path = await privateSocketPath();
    const listener = await listen({ path }, { maxPeerBytes: BUDGET, heartbeatMs: 0 });
    const seen = socketErrors();
    const client = await connect({ path }, { heartbeatMs: 0 });
    const server = (await listener.accept()) as Channel;
    /** The handle of the next message on the server's root, or why the connection died. */
    const arrived = async (cycle: number) => {
      try {
        return (await server.recv()).handles[0];
      } catch (err) {
        throw new Error(`cycle ${cycle}: ${seen.errors[0]?.message ?? String(err)}`);
      }
    };
    try {
      for (let n = 0; n < CYCLES; n++) {
        // Channels and pipes alike; either side closes first.
        if (n % 2 === 0) {
          const [mine, theirs] = Channel.pair(LIMITS);
          await client.sendWait({ type: n, handles: [theirs] });
          const there = (await arrived(n)) as Channel;
          mine.send({ type: n });
          assert.equal((await there.recv()).type, n);
          const [first, second] = n % 4 === 0 ? [mine, there] : [there, mine];
          first.close();
          assert.equal(await second.closed, 'peer');
          second.close();
        } else {
          const [producer, consumer] = DataPipe.create({ capacityBytes: COST });
          await client.sendWait({ type: n, handles: [consumer] });
          const there = (await arrived(n)) as DataPipeConsumer;
          producer.write(Uint8Array.of(n));
          assert.deepEqual(await there.read(), Uint8Array.of(n));
          if (n % 4 === 1) {
            producer.close();
            await there.closed;
            there.close();
          } else {
            there.close();
            await producer.closed;
            producer.close();
          }
        }
      }
      assert.equal(seen.errors.length, 0, seen.errors[0]?.message);
      // The budget did bind all along: two ids open at once fit, a third does not.
      const held = [Channel.pair(LIMITS), Channel.pair(LIMITS)];
      for (const [, theirs] of held) await client.sendWait({ type: 0, handles: [theirs] });
      for (let i = 0; i < held.length; i++) assert.ok((await arrived(CYCLES + i)) !== undefined);
      const [refused, refusedFar] = Channel.pair(LIMITS);
      await client.sendWait({ type: 0, handles: [refusedFar] });
      await until('the refusal', () => seen.errors.length > 0, 20_000);
      assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
      assert.match(
        seen.errors[0]?.message ?? '',
        new RegExp(`exceeds the ${BUDGET} bytes allowed`),
      );
      assert.equal(await refused.closed, 'peer');
      for (const [mine] of held) mine.close();
      refused.close();
    } finally {
      seen.stop();
      client.close();
      server.close();
      await listener.close();
    }
  });
});
