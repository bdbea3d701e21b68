import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { Channel, isIpcError } from 'ftl-ipc';
import { hexToBytes } from '../vectors/json.js';
import { AllClient, AllServer, Color, echo } from '../vectors/vectors.generated.js';
import { add, serveWork, WorkClient, WorkServer } from './rpctest.generated.js';

const ignore = () => {};
const tick = () => new Promise((resolve) => setImmediate(resolve));
const within = <T>(ms: number, promise: Promise<T>): Promise<T | 'late'> =>
  Promise.race([promise, new Promise<'late'>((resolve) => setTimeout(resolve, ms, 'late'))]);

const rawCall = (raw: Channel, txid: number, value: number) => {
  const data = new Uint8Array(12);
  data.set([0x46, 0x49, 1, 0]);
  new DataView(data.buffer).setUint32(4, txid, true);
  new DataView(data.buffer).setInt32(8, value, true);
  raw.send({ type: add.id, data });
};

const allHandlers = {
  empty: ignore,
  scalars: ignore,
  text: ignore,
  handles: ignore,
  pipes: ignore,
  evolving: ignore,
  echo: ({ text }: { text: string }) => ({ text, color: Color.red }),
};

describe('serve', () => {
  it('runs handlers concurrently, up to the concurrency option, and replies as each ends', async () => {
    for (const concurrency of [1, 4, undefined]) {
      const [a, b] = Channel.pair();
      let running = 0;
      let most = 0;
      const order: number[] = [];
      const serving = serveWork(
        b,
        {
          add: async ({ value }) => {
            most = Math.max(most, ++running);
            await new Promise((resolve) => setTimeout(resolve, (10 - value) * 2));
            running--;
            order.push(value);
            return { value };
          },
          hang: () => ({}),
          noisy: ({ value }) => ({ value }),
        },
        concurrency === undefined ? {} : { concurrency },
      );
      const client = new WorkClient(a);
      const values = Array.from({ length: 10 }, (_, i) => i);
      const replies = await Promise.all(values.map((value) => client.add({ value })));
      assert.deepEqual(
        replies.map((r) => r.value),
        values,
      );
      // Default: as many as the client's window lets through (16 of a 32-message queue).
      assert.equal(most, concurrency ?? 10);
      if (concurrency === 1) assert.deepEqual(order, values);
      else assert.notDeepEqual(order, values);
      client.close();
      await serving;
    }
  });

  it('takes the requests already queued in one go, each synchronous handler without a turn of its own', async () => {
    const [raw, b] = Channel.pair();
    for (let txid = 1; txid <= 8; txid++) rawCall(raw, txid, txid);
    const log: string[] = [];
    const serving = serveWork(b, {
      add: ({ value }) => {
        log.push(`call ${value}`);
        queueMicrotask(() => log.push('microtask'));
        return { value };
      },
      hang: () => ({}),
      noisy: ({ value }) => ({ value }),
    });
    await tick();
    assert.deepEqual(
      log.slice(0, 8),
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `call ${i}`),
    );
    assert.equal(raw.stats.queuedMessages, 8);
    raw.close();
    await serving;
  });

  it('sends the reply of a synchronous handler before any other microtask runs', async () => {
    const [raw, b] = Channel.pair();
    let queuedAtMicrotask = -1;
    const serving = serveWork(b, {
      add: ({ value }) => {
        queueMicrotask(() => (queuedAtMicrotask = raw.stats.queuedMessages));
        return { value };
      },
      hang: () => ({}),
      noisy: ({ value }) => ({ value }),
    });
    rawCall(raw, 1, 1);
    await tick();
    assert.equal(queuedAtMicrotask, 1);
    raw.close();
    await serving;
  });

  it('closes its channel when it returns, and when it rejects', async () => {
    const [a, b] = Channel.pair();
    const client = new WorkClient(a);
    const server = new WorkServer(b);
    const serving = server.serve(
      {
        add: ({ value }) => ({ value }),
        hang: () => ({}),
        noisy: () => {
          throw new Error('broken');
        },
      },
      { stopOnError: true },
    );
    assert.equal((await client.add({ value: 3 })).value, 3);
    await assert.rejects(client.noisy({ value: 1 }), (e) => isIpcError(e, 'REMOTE_ERROR'));
    await assert.rejects(serving, /broken/);
    assert.equal(await b.closed, 'local');

    const [c, d] = Channel.pair();
    const returning = serveWork(d, {
      add: ({ value }) => ({ value }),
      hang: () => ({}),
      noisy: ({ value }) => ({ value }),
    });
    c.close();
    await returning;
    assert.equal(await d.closed, 'peer');
    assert.throws(
      () => d.send({ type: 1 }),
      (e) => isIpcError(e, 'CLOSED'),
    );
  });

  it('publishes invalid input on ftl-ipc:rpc:invalid with the reason and what it did', async () => {
    const events: { error: { code: string; message: string }; action: string }[] = [];
    const listener = (event: unknown) => events.push(event as (typeof events)[number]);
    diagnosticsChannel.subscribe('ftl-ipc:rpc:invalid', listener);
    try {
      const [raw, b] = Channel.pair();
      const serving = new AllServer(b).serve(allHandlers, {
        onInvalid: (error) => (error.message.includes('type id 12345') ? 'ignore' : 'close'),
      });
      raw.send({ type: 12345, data: new Uint8Array(8) });
      raw.send({ type: echo.id, data: hexToBytes('4649010001000000ff') });
      await serving;
      assert.equal(await raw.closed, 'peer');
      assert.deepEqual(
        events.map((e) => [e.error.code, e.action]),
        [
          ['INVALID_MESSAGE', 'ignore'],
          ['INVALID_MESSAGE', 'close'],
        ],
      );
      assert.match(events[1]!.error.message, /^text: /);
    } finally {
      diagnosticsChannel.unsubscribe('ftl-ipc:rpc:invalid', listener);
    }
  });

  it("replies with replyOnFull 'close' by default: a client that stopped reading is cut off", async () => {
    // A client that sends calls and never reads: the third reply meets its full queue.
    const [raw, b] = Channel.pair({ capacity: 2 });
    const serving = serveWork(b, {
      add: ({ value }) => ({ value }),
      hang: () => ({}),
      noisy: ({ value }) => ({ value }),
    });
    for (let txid = 1; txid <= 2; txid++) rawCall(raw, txid, txid);
    await tick();
    rawCall(raw, 3, 3);
    assert.equal(await within(2000, raw.closed), 'peer');
    assert.equal(await within(2000, serving), undefined);
    assert.equal(b.stats.dropped, 1);
  });

  it("honours replyOnFull 'drop': the reply is lost, the channel stays open", async () => {
    const [raw, b] = Channel.pair({ capacity: 1 });
    const serving = serveWork(
      b,
      { add: ({ value }) => ({ value }), hang: () => ({}), noisy: ({ value }) => ({ value }) },
      { replyOnFull: 'drop' },
    );
    rawCall(raw, 1, 1);
    await tick();
    rawCall(raw, 2, 2);
    await tick();
    assert.equal(b.stats.dropped, 1);
    assert.equal(await within(50, raw.closed), 'late');
    raw.close();
    await serving;
  });

  it('pushes back on a client whose server is saturated', async () => {
    const [a, b] = Channel.pair({ capacity: 4 });
    let release = ignore;
    const serving = new AllServer(b).serve(
      {
        ...allHandlers,
        echo: async ({ text }) => {
          await new Promise<void>((resolve) => (release = resolve));
          return { text, color: Color.red };
        },
      },
      { concurrency: 1 },
    );
    const client = new AllClient(a);
    const call = client.echo({ text: 'slow' });
    await tick();
    let sent = 0;
    for (;;) {
      try {
        client.evolving({ a: 1 });
        sent++;
        await tick();
      } catch (error) {
        assert.ok(isIpcError(error, 'BACKPRESSURE'));
        break;
      }
      assert.ok(sent <= 8, `${sent} pushes got through a saturated server`);
    }
    // The queue (4) and what the server holds for a free slot (4).
    assert.equal(sent, 8);
    release();
    assert.equal((await call).text, 'slow');
    client.close();
    await serving;
  });

  it('refuses a concurrency that is not a positive integer', async () => {
    const [, b] = Channel.pair();
    await assert.rejects(
      new WorkServer(b).serve(
        { add: ({ value }) => ({ value }), hang: () => ({}), noisy: ({ value }) => ({ value }) },
        { concurrency: 0 },
      ),
      (e) => isIpcError(e, 'INVALID_ARGUMENT') && /concurrency .* got 0/.test((e as Error).message),
    );
  });
});

describe('pushes nobody reads', () => {
  it('completes the calls while the pushes fit, then fails them at once naming the pushes', async () => {
    const [a, b] = Channel.pair();
    const server = new WorkServer(b);
    const serving = server.serve({
      add: ({ value }) => ({ value }),
      hang: () => ({}),
      noisy: async ({ value }) => {
        await server.noteWait({ value });
        return { value };
      },
    });
    const client = new WorkClient(a, { timeoutMs: 5000 });
    let completed = 0;
    let failure: unknown;
    for (let i = 0; i < 100 && failure === undefined; i++) {
      const started = performance.now();
      try {
        await client.noisy({ value: i });
        completed++;
      } catch (error) {
        failure = error;
        assert.ok(performance.now() - started < 1000, 'failed at once, not by the timeout');
      }
    }
    assert.ok(completed >= 16, `${completed} calls completed`);
    assert.ok(isIpcError(failure, 'BACKPRESSURE'), String(failure));
    assert.match((failure as Error).message, /pushes from the server wait unread.*recv\(\)/);
    // New calls fail at once too, until the pushes are read; then calls work again.
    await assert.rejects(client.add({ value: 1 }), (e) => isIpcError(e, 'BACKPRESSURE'));
    for (let i = 0; i < 32; i++) assert.equal((await client.recv()).kind, 'note');
    assert.equal((await client.add({ value: 41 })).value, 41);
    client.close();
    await serving;
  });
});
