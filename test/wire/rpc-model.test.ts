import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Channel, IpcError } from 'ftl-ipc';
import { serveWork, WorkClient } from './rpctest.generated.js';

type Op =
  | { op: 'call'; value: number; work: number; timeoutMs?: number; abortAfter?: number }
  | { op: 'tick' }
  | { op: 'closeClient' }
  | { op: 'closeServer' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        op: fc.constant('call' as const),
        value: fc.integer({ min: -1000, max: 1000 }),
        work: fc.integer({ min: 0, max: 3 }),
        timeoutMs: fc.integer({ min: 0, max: 4 }),
        abortAfter: fc.integer({ min: 0, max: 3 }),
      },
      { requiredKeys: ['op', 'value', 'work'] },
    ),
  },
  { weight: 3, arbitrary: fc.constant({ op: 'tick' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'closeClient' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'closeServer' as const }) },
);

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** What the model allows a call to end with, given what happened to it before it settled. */
interface Tracked {
  value: number;
  timed: boolean;
  abortedAt?: number;
  outcome?: { at: number; value?: number; code?: string };
  settlements: number;
}

describe('RPC model', () => {
  it('random calls, aborts, timeouts and closes: every call settles exactly once, as the model allows', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(op, { minLength: 1, maxLength: 40 }),
        async (capacity, concurrency, ops) => {
          const [a, b] = Channel.pair({ capacity });
          let running = 0;
          let mostRunning = 0;
          const seenTxids = new Set<number>();
          const serving = serveWork(
            b,
            {
              add: async ({ value }, context) => {
                assert.ok(!seenTxids.has(context.txid), 'each call reaches a handler once');
                seenTxids.add(context.txid);
                mostRunning = Math.max(mostRunning, ++running);
                try {
                  for (let i = 0; i < value % 4; i++) await turn();
                  return { value: value + 1 };
                } finally {
                  running--;
                }
              },
              hang: () => ({}),
              noisy: ({ value }) => ({ value }),
            },
            { concurrency },
          );
          const client = new WorkClient(a);
          let clock = 0;
          let closedAt: number | undefined;
          const calls: Tracked[] = [];
          const settled: Promise<void>[] = [];
          for (const o of ops) {
            clock++;
            if (o.op === 'tick') await turn();
            else if (o.op === 'closeClient') {
              closedAt ??= clock;
              client.close();
            } else if (o.op === 'closeServer') {
              closedAt ??= clock;
              b.close();
            } else {
              const tracked: Tracked = {
                value: o.value - (o.value % 4) + o.work,
                timed: o.timeoutMs !== undefined,
                settlements: 0,
              };
              const controller = new AbortController();
              const options = {
                ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
                ...(o.abortAfter !== undefined && { signal: controller.signal }),
              };
              if (o.abortAfter !== undefined) {
                const after = o.abortAfter;
                void (async () => {
                  for (let i = 0; i < after; i++) await turn();
                  tracked.abortedAt = ++clock;
                  controller.abort();
                })();
              }
              calls.push(tracked);
              settled.push(
                client.add({ value: tracked.value }, options).then(
                  (reply) => {
                    tracked.settlements++;
                    tracked.outcome = { at: ++clock, value: reply.value };
                  },
                  (error: unknown) => {
                    tracked.settlements++;
                    tracked.outcome = {
                      at: ++clock,
                      code: error instanceof IpcError ? error.code : String(error),
                    };
                  },
                ),
              );
            }
          }
          const closing = ++clock;
          client.close();
          await Promise.all(settled);
          await serving;
          for (const c of calls) {
            assert.equal(c.settlements, 1);
            const { at, value, code } = c.outcome!;
            const closed = closedAt ?? closing;
            if (code === undefined) {
              assert.equal(value, c.value + 1);
              assert.ok(c.abortedAt === undefined || c.abortedAt > at, 'no reply after an abort');
            } else if (code === 'ABORTED') assert.ok(c.abortedAt !== undefined);
            else if (code === 'TIMEOUT') assert.ok(c.timed);
            else if (code === 'CLOSED' || code === 'PEER_CLOSED')
              assert.ok(closed <= at, `${code} before any close`);
            else assert.fail(`unexpected ${code}`);
          }
          assert.ok(mostRunning <= concurrency);
          assert.ok(a.stats.highWaterMark <= capacity);
        },
      ),
      { numRuns: 300 },
    );
  });
});
