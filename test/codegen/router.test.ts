import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, isIpcError } from 'ftl-ipc';
import type { CallRouter } from 'ftl-ipc/wire';
import { serveWork, WorkClient, type WorkEvent } from '../wire/rpctest.generated.js';

const handlers = {
  add: ({ value }: { value: number }) => ({ value: value + 1 }),
  hang: (_: unknown, { signal }: { signal: AbortSignal }) =>
    new Promise<Record<string, never>>((_, reject) =>
      signal.addEventListener('abort', () => reject(signal.reason)),
    ),
  noisy: ({ value }: { value: number }) => ({ value }),
};

describe('generated clients over a CallRouter', () => {
  it('the same class calls over a channel and over a router that forwards (counting) to one', async () => {
    const [a, b] = Channel.pair();
    const serving = serveWork(b, handlers);
    const direct = new WorkClient(a);
    assert.equal((await direct.add({ value: 1 })).value, 2);
    assert.equal(direct.channel, a);

    const seen: string[] = [];
    const inner = direct.router;
    const router: CallRouter<WorkEvent> = {
      call: (d, value, options) => {
        seen.push(`${d.kind}:${options?.timeoutMs}`);
        return inner.call(d, value, options);
      },
      send: (d, value, options) => inner.send(d, value, options),
      sendWait: (d, value, options) => inner.sendWait(d, value, options),
      recv: () => inner.recv(),
      close: () => inner.close(),
    };
    // The client's default timeout reaches the router's calls that do not give their own.
    const routed = new WorkClient(router, { timeoutMs: 50 });
    assert.equal((await routed.add({ value: 41 })).value, 42);
    await assert.rejects(routed.hang({ tag: 1 }), (e) => isIpcError(e, 'TIMEOUT'));
    assert.equal((await routed.add({ value: 1 }, { timeoutMs: 1000 })).value, 2);
    assert.deepEqual(seen, ['add:50', 'hang:50', 'add:1000']);
    assert.throws(
      () => routed.channel,
      (e) => isIpcError(e, 'INVALID_ARGUMENT'),
    );
    assert.throws(
      () => new WorkClient(router, { timeoutMs: -1 }),
      (e) => isIpcError(e, 'INVALID_ARGUMENT'),
    );
    routed.close();
    await serving;
  });
});
