/** Argument checks of sendWait and writable happen before the queue is looked at (issue 15). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel } from '../../src/index.js';

describe('wait arguments are checked before the queue', () => {
  it('an already-aborted signal rejects ABORTED and sends nothing, though there is room', async () => {
    const [a, b] = Channel.pair();
    const controller = new AbortController();
    controller.abort(new Error('why'));
    const { signal } = controller;
    await assert.rejects(a.sendWait({ type: 1 }, { signal }), { code: 'ABORTED' });
    await assert.rejects(a.writable(0, { signal }), { code: 'ABORTED' });
    assert.equal(b.stats.queuedMessages, 0);
    assert.equal(a.stats.sent, 0);
    a.close();
    b.close();
  });

  for (const timeoutMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '10' as unknown as number]) {
    it(`timeoutMs ${String(timeoutMs)} is INVALID_ARGUMENT, with room and sending nothing`, async () => {
      const [a, b] = Channel.pair();
      await assert.rejects(a.sendWait({ type: 1 }, { timeoutMs }), {
        code: 'INVALID_ARGUMENT',
        message: /timeoutMs must be a number from 0 to 2147483647/,
      });
      await assert.rejects(a.writable(0, { timeoutMs }), { code: 'INVALID_ARGUMENT' });
      assert.equal(b.stats.queuedMessages, 0);
      a.close();
      b.close();
    });
  }

  for (const bytes of [-1, Number.NaN, 1.5, '10' as unknown as number]) {
    it(`writable(${typeof bytes === 'string' ? `'${bytes}'` : bytes}) is INVALID_ARGUMENT`, async () => {
      const [a, b] = Channel.pair();
      await assert.rejects(a.writable(bytes), {
        code: 'INVALID_ARGUMENT',
        message: /bytes must be an integer >= 0/,
      });
      a.close();
      b.close();
    });
  }

  it('valid arguments still wait and time out as before', async () => {
    const [a, b] = Channel.pair({ capacity: 1 });
    a.send({ type: 1 });
    await assert.rejects(a.writable(0, { timeoutMs: 10 }), { code: 'TIMEOUT' });
    await assert.rejects(a.sendWait({ type: 2 }, { timeoutMs: 0 }), { code: 'TIMEOUT' });
    a.close();
    b.close();
  });
});
