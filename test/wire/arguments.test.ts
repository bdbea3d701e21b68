/** A null (or other non-object) value is INVALID_ARGUMENT, not a TypeError from the encoder. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PingClient, ping } from '../../examples/ping/ping.generated.js';
import { Channel } from '../../src/index.js';
import { encodeMessage } from '../../src/wire/message.js';

describe('encoding a value that is not an object', () => {
  for (const value of [null, undefined, 7, 'text']) {
    it(`encodeMessage(d, ${String(value)}) is INVALID_ARGUMENT`, () => {
      assert.throws(() => encodeMessage(ping, value as never), {
        code: 'INVALID_ARGUMENT',
        message: /ping\.ping\.ping must be encoded from an object/,
      });
    });
  }

  it('PingClient.ping(null) rejects INVALID_ARGUMENT and sends nothing', async () => {
    const [a, b] = Channel.pair();
    const client = new PingClient(a);
    await assert.rejects(client.ping(null as never), { code: 'INVALID_ARGUMENT' });
    assert.equal(b.stats.queuedMessages, 0);
    a.close();
    b.close();
  });
});
