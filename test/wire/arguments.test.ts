/** A null (or other non-object) value is INVALID_ARGUMENT, not a TypeError from the encoder. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PingClient, ping } from '../../examples/ping/ping.generated.js';
import { Channel, isIpcError } from '../../src/index.js';
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

describe('call options of a generated client', () => {
  const bad: [string, unknown, RegExp][] = [
    ['timeoutMs -5', { timeoutMs: -5 }, /timeoutMs must be a number from 0 to 2147483647, got -5$/],
    ['timeoutMs NaN', { timeoutMs: Number.NaN }, /timeoutMs .*, got NaN$/],
    ['timeoutMs Infinity', { timeoutMs: Infinity }, /timeoutMs .*, got Infinity$/],
    ['timeoutMs 2^31', { timeoutMs: 2 ** 31 }, /timeoutMs .*, got 2147483648$/],
    ["timeoutMs '100'", { timeoutMs: '100' }, /timeoutMs .*, got "100"$/],
    ["signal 'x'", { signal: 'x' }, /signal must be an AbortSignal, got "x"$/],
    ['signal {}', { signal: {} }, /signal must be an AbortSignal, got an object$/],
    ['options null', null, /options must be an object, got null$/],
    ['options 5', 5, /options must be an object, got 5$/],
  ];
  for (const [what, options, message] of bad) {
    it(`a call with ${what} rejects INVALID_ARGUMENT naming the value, and sends nothing`, async () => {
      const [a, b] = Channel.pair();
      const client = new PingClient(a);
      await assert.rejects(client.ping({ value: 1 }, options as never), (e: unknown) => {
        assert.ok(isIpcError(e, 'INVALID_ARGUMENT'), String(e));
        assert.match(e.message, /^ping\.ping\.ping: /);
        assert.match(e.message, message);
        return true;
      });
      assert.equal(b.stats.queuedMessages, 0);
      a.close();
      b.close();
    });
  }

  it('an already aborted signal still rejects ABORTED, with its reason', async () => {
    const [a, b] = Channel.pair();
    const reason = new Error('changed my mind');
    await assert.rejects(
      new PingClient(a).ping({ value: 1 }, { signal: AbortSignal.abort(reason) }),
      (e: unknown) => isIpcError(e, 'ABORTED') && e.cause === reason,
    );
    a.close();
    b.close();
  });

  it("the client's default timeoutMs is checked when it is made", () => {
    const [a, b] = Channel.pair();
    for (const timeoutMs of [-1, Number.NaN, '5'])
      assert.throws(() => new PingClient(a, { timeoutMs: timeoutMs as never }), {
        code: 'INVALID_ARGUMENT',
        message: /^timeoutMs must be a number from 0 to 2147483647, got /,
      });
    a.close();
    b.close();
  });
});

describe('wait options of Channel.sendWait', () => {
  it("signal 'x' is INVALID_ARGUMENT, not a TypeError", async () => {
    const [a, b] = Channel.pair();
    await assert.rejects(
      a.sendWait({ type: 1, data: new Uint8Array(8) }, { signal: 'x' as never }),
      {
        code: 'INVALID_ARGUMENT',
        message: 'signal must be an AbortSignal, got "x"',
      },
    );
    a.close();
    b.close();
  });
});
