/**
 * The channel contract, written once and run against every placement of a pair (one thread,
 * two threads, two processes). A placement passes a factory; the suite only uses the public API.
 * Where a transport returns room asynchronously (credits over a socket), tests wait with
 * `writable()` rather than assuming a synchronous refill.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { Channel, type ChannelOptions, type IpcError } from '../../src/index.js';
import { bytes, delivered, rejectsCode, state, throwsCode } from './helpers.js';

export type PairFactory = (options?: ChannelOptions) => Promise<[Channel, Channel]>;

export function channelConformance(placement: string, makePair: PairFactory): void {
  describe(`channel conformance (${placement})`, () => {
    describe('send and receive', () => {
      it('delivers messages in order with type, data and handles always present', async () => {
        const [a, b] = await makePair();
        a.send({ type: 7, data: bytes(1, 2, 3) });
        a.send({ type: 0xffff_ffff });
        assert.deepEqual(await b.recv(), { type: 7, data: bytes(1, 2, 3), handles: [] });
        const second = await b.recv();
        assert.equal(second.type, 0xffff_ffff);
        assert.equal(second.data.byteLength, 0);
        assert.deepEqual(second.handles, []);
        a.close();
        b.close();
      });

      it('is bi-directional', async () => {
        const [a, b] = await makePair();
        a.send({ type: 1 });
        b.send({ type: 2 });
        assert.equal((await b.recv()).type, 1);
        assert.equal((await a.recv()).type, 2);
        a.close();
      });

      it('copies data at send: the sender may reuse its buffer', async () => {
        const [a, b] = await makePair();
        const buffer = bytes(1, 2, 3);
        a.send({ type: 1, data: buffer });
        buffer.fill(9);
        assert.deepEqual((await b.recv()).data, bytes(1, 2, 3));
        a.close();
      });

      it('accepts a Buffer and a view into a larger buffer', async () => {
        const [a, b] = await makePair();
        a.send({ type: 1, data: Buffer.from('hello') });
        const big = bytes(0, 1, 2, 3, 4, 5);
        a.send({ type: 2, data: big.subarray(2, 4) });
        assert.deepEqual([...(await b.recv()).data], [...Buffer.from('hello')]);
        assert.deepEqual((await b.recv()).data, bytes(2, 3));
        a.close();
      });

      it('tryRecv returns undefined on an empty queue', async () => {
        const [a, b] = await makePair();
        assert.equal(b.tryRecv(), undefined);
        a.close();
      });

      it('recv waits for a message; concurrent receivers are served in order', async () => {
        const [a, b] = await makePair();
        const first = b.recv();
        const second = b.recv();
        assert.equal(await state(first), 'pending');
        a.send({ type: 1 });
        a.send({ type: 2 });
        assert.equal((await first).type, 1);
        assert.equal((await second).type, 2);
        a.close();
      });

      it('recvBatch takes everything available at once, up to max', async () => {
        const [a, b] = await makePair({ capacity: 8 });
        for (let i = 0; i < 5; i++) a.send({ type: i });
        await a.writable();
        await delivered(b, 5);
        const batch = await b.recvBatch(3);
        assert.deepEqual(
          batch.map((m) => m.type),
          [0, 1, 2],
        );
        assert.deepEqual(
          (await b.recvBatch()).map((m) => m.type),
          [3, 4],
        );
        const pending = b.recvBatch();
        assert.equal(await state(pending), 'pending');
        a.send({ type: 9 });
        assert.deepEqual(
          (await pending).map((m) => m.type),
          [9],
        );
        await rejectsCode(b.recvBatch(0), 'INVALID_ARGUMENT');
        a.close();
      });

      it('async iteration yields every message and ends when the peer closes', async () => {
        const [a, b] = await makePair({ capacity: 4 });
        const received: number[] = [];
        const done = (async () => {
          for await (const m of b) received.push(m.type);
        })();
        for (let i = 0; i < 20; i++) await a.sendWait({ type: i });
        a.close();
        await done;
        assert.deepEqual(
          received,
          Array.from({ length: 20 }, (_, i) => i),
        );
      });

      it('async iteration ends, without an error, when this side closes', async () => {
        const [a, b] = await makePair();
        const iterator = b[Symbol.asyncIterator]();
        a.send({ type: 1 });
        assert.equal((await iterator.next()).value?.type, 1);
        const waiting = iterator.next();
        b.close();
        assert.deepEqual(await waiting, { value: undefined, done: true });
        a.close();
      });

      it('breaking out of iteration loses no message', async () => {
        const [a, b] = await makePair();
        for (let i = 0; i < 5; i++) a.send({ type: i });
        for await (const m of b) if (m.type === 1) break;
        assert.equal((await b.recv()).type, 2);
        a.close();
      });
    });

    describe('backpressure', () => {
      it('fails at capacity, synchronously, with BACKPRESSURE', async () => {
        const [a, b] = await makePair({ capacity: 3 });
        for (let i = 0; i < 3; i++) assert.equal(a.send({ type: i }), true);
        throwsCode(() => a.send({ type: 3 }), 'BACKPRESSURE');
        assert.equal(a.stats.backpressured, 1);
        await delivered(b, 3);
        assert.equal(b.stats.queuedMessages, 3);
        await b.recv();
        await a.writable();
        assert.equal(a.send({ type: 4 }), true);
        a.close();
      });

      it('counts bytes against capacityBytes', async () => {
        const [a, b] = await makePair({ capacity: 100, capacityBytes: 10, maxMessageBytes: 8 });
        a.send({ type: 1, data: new Uint8Array(8) });
        a.send({ type: 2, data: new Uint8Array(2) });
        throwsCode(() => a.send({ type: 3, data: new Uint8Array(1) }), 'BACKPRESSURE');
        a.send({ type: 4 }); // an empty message still fits: bytes are full, slots are not
        await delivered(b, 3);
        assert.equal(b.stats.queuedBytes, 10);
        await b.recv();
        await a.writable(8);
        a.send({ type: 5, data: new Uint8Array(8) });
        a.close();
      });

      it("onFull 'drop' drops the message, returns false and counts it", async () => {
        const [a, b] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        assert.equal(a.send({ type: 2 }, { onFull: 'drop' }), false);
        assert.equal(a.stats.dropped, 1);
        assert.equal(a.stats.backpressured, 1);
        assert.equal((await b.recv()).type, 1);
        assert.equal(b.tryRecv(), undefined);
        a.close();
      });

      it("onFull 'close' drops the message and closes; the peer drains then sees PEER_CLOSED", async () => {
        const [a, b] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        assert.equal(a.send({ type: 2 }, { onFull: 'close' }), false);
        assert.equal(await a.closed, 'local');
        throwsCode(() => a.send({ type: 3 }), 'CLOSED');
        assert.equal((await b.recv()).type, 1);
        await rejectsCode(b.recv(), 'PEER_CLOSED');
      });

      it('rejects an unknown onFull strategy', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        // Rejected whether or not the queue is full, and nothing is sent.
        throwsCode(() => a.send({ type: 1 }, { onFull: 'later' as 'drop' }), 'INVALID_ARGUMENT');
        a.send({ type: 1 });
        throwsCode(() => a.send({ type: 2 }, { onFull: 'later' as 'drop' }), 'INVALID_ARGUMENT');
        await delivered(b, 1);
        assert.equal(b.stats.queuedMessages, 1);
        a.close();
      });

      it('sendWait waits for room and serves waiting senders first come first served', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        a.send({ type: 0 });
        const order: number[] = [];
        const waits = [1, 2, 3].map((type) => a.sendWait({ type }).then(() => order.push(type)));
        assert.equal(await state(waits[0] as Promise<unknown>), 'pending');
        const got: number[] = [];
        for (let i = 0; i < 4; i++) got.push((await b.recv()).type);
        await Promise.all(waits);
        assert.deepEqual(got, [0, 1, 2, 3]);
        assert.deepEqual(order, [1, 2, 3]);
        a.close();
      });

      it('sendWait rejects with TIMEOUT and the message is not sent', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        await rejectsCode(a.sendWait({ type: 2 }, { timeoutMs: 20 }), 'TIMEOUT');
        await b.recv();
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(b.tryRecv(), undefined);
        a.close();
      });

      it('sendWait rejects with ABORTED, with the reason as cause', async () => {
        const [a] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        const controller = new AbortController();
        const waiting = a.sendWait({ type: 2 }, { signal: controller.signal });
        controller.abort(new Error('user gave up'));
        await assert.rejects(waiting, (err: IpcError) => {
          assert.equal(err.code, 'ABORTED');
          assert.equal((err.cause as Error).message, 'user gave up');
          return true;
        });
        await rejectsCode(a.sendWait({ type: 3 }, { signal: controller.signal }), 'ABORTED');
        a.close();
      });

      it('sendWait rejects with PEER_CLOSED when the peer closes while it waits', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        const waiting = a.sendWait({ type: 2 });
        b.close();
        await rejectsCode(waiting, 'PEER_CLOSED');
      });

      it('sendWait rejects with CLOSED when this side closes while it waits', async () => {
        const [a] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        const waiting = a.sendWait({ type: 2 });
        a.close();
        await rejectsCode(waiting, 'CLOSED');
      });

      it('sendWait rejects an invalid message at once', async () => {
        const [a] = await makePair({ capacity: 1, maxMessageBytes: 4, capacityBytes: 4 });
        await rejectsCode(a.sendWait({ type: 1, data: new Uint8Array(5) }), 'TOO_LARGE');
        a.send({ type: 1 });
        a.sendWait({ type: 2 }).catch(() => {});
        await rejectsCode(a.sendWait({ type: 3, data: new Uint8Array(5) }), 'TOO_LARGE');
        a.close();
      });

      it('writable resolves when there is room and rejects with PEER_CLOSED', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        await a.writable();
        a.send({ type: 1 });
        const w = a.writable();
        assert.equal(await state(w), 'pending');
        await b.recv();
        await w;
        a.send({ type: 2 });
        const w2 = a.writable();
        b.close();
        await rejectsCode(w2, 'PEER_CLOSED');
        await rejectsCode(a.writable(), 'PEER_CLOSED');
      });

      it('writable honours timeoutMs', async () => {
        const [a] = await makePair({ capacity: 1 });
        a.send({ type: 1 });
        await rejectsCode(a.writable(0, { timeoutMs: 10 }), 'TIMEOUT');
        a.close();
      });
    });

    describe('errors and their order', () => {
      it('checks options', async () => {
        throwsCode(() => Channel.pair({ capacity: 0 }), 'INVALID_ARGUMENT');
        throwsCode(() => Channel.pair({ capacity: 1.5 }), 'INVALID_ARGUMENT');
        throwsCode(
          () => Channel.pair({ capacityBytes: 10, maxMessageBytes: 11 }),
          'INVALID_ARGUMENT',
        );
        throwsCode(() => Channel.pair({ maxHandles: -1 }), 'INVALID_ARGUMENT');
        const [a] = Channel.pair({ capacityBytes: 100 });
        assert.equal(a.limits.maxMessageBytes, 100);
        a.close();
        assert.equal(a.limits.capacityBytes, 100, 'limits stay readable after close');
      });

      it('rejects a malformed message with INVALID_ARGUMENT', async () => {
        const [a] = await makePair();
        throwsCode(() => a.send({ type: -1 }), 'INVALID_ARGUMENT');
        throwsCode(() => a.send({ type: 2 ** 32 }), 'INVALID_ARGUMENT');
        throwsCode(() => a.send({ type: 1.5 }), 'INVALID_ARGUMENT');
        throwsCode(
          () => a.send({ type: 1, data: [1, 2] as unknown as Uint8Array }),
          'INVALID_ARGUMENT',
        );
        throwsCode(() => a.send({ type: 1, handles: [{}] as never }), 'INVALID_ARGUMENT');
        throwsCode(() => a.send(null as never), 'INVALID_ARGUMENT');
        a.close();
      });

      it('TOO_LARGE and TOO_MANY_HANDLES name the value and the limit', async () => {
        const [a] = await makePair({ maxMessageBytes: 16, maxHandles: 1 });
        assert.throws(
          () => a.send({ type: 1, data: new Uint8Array(17) }),
          /17 bytes; this channel allows at most 16/,
        );
        const [x, y] = Channel.pair();
        throwsCode(() => a.send({ type: 1, handles: [x, y] }), 'TOO_MANY_HANDLES');
        a.close();
      });

      it('after close: CLOSED everywhere, close is idempotent', async () => {
        const [a, b] = await makePair();
        a.close();
        a.close();
        throwsCode(() => a.send({ type: 1 }), 'CLOSED');
        throwsCode(() => a.tryRecv(), 'CLOSED');
        await rejectsCode(a.recv(), 'CLOSED');
        await rejectsCode(a.sendWait({ type: 1 }), 'CLOSED');
        await rejectsCode(a.writable(), 'CLOSED');
        assert.equal(await a.closed, 'local');
        assert.equal(await b.closed, 'peer');
      });

      it('pending recv rejects with CLOSED when this side closes', async () => {
        const [a, b] = await makePair();
        const pending = b.recv();
        b.close();
        await rejectsCode(pending, 'CLOSED');
        a.close();
      });

      it('order: CLOSED, then TOO_LARGE, TOO_MANY_HANDLES, HANDLE_NOT_MOVABLE, PEER_CLOSED, BACKPRESSURE', async () => {
        const [a, b] = await makePair({ capacity: 1, maxMessageBytes: 4, maxHandles: 1 });
        const [x, y] = Channel.pair();
        const dead = Channel.pair()[0];
        dead.close();
        a.send({ type: 0 });
        // Every condition at once: the queue is full, and the message is too large etc.
        throwsCode(
          () => a.send({ type: 1, data: new Uint8Array(5), handles: [x, y] }),
          'TOO_LARGE',
        );
        throwsCode(() => a.send({ type: 1, handles: [x, y] }), 'TOO_MANY_HANDLES');
        throwsCode(() => a.send({ type: 1, handles: [dead] }), 'HANDLE_NOT_MOVABLE');
        throwsCode(() => a.send({ type: 1, handles: [x] }), 'BACKPRESSURE');
        b.close();
        await a.closed;
        throwsCode(() => a.send({ type: 1, handles: [x] }), 'PEER_CLOSED');
        throwsCode(() => a.send({ type: 1 }, { onFull: 'drop' }), 'PEER_CLOSED');
        a.close();
        throwsCode(() => a.send({ type: 1, data: new Uint8Array(5) }), 'CLOSED');
        // The handles of the failed sends are still usable.
        x.send({ type: 5 });
        assert.equal((await y.recv()).type, 5);
      });
    });

    describe('peer close', () => {
      it('delivers everything queued before the peer closed, then PEER_CLOSED', async () => {
        const [a, b] = await makePair();
        a.send({ type: 1 });
        a.send({ type: 2 });
        a.close();
        assert.equal(await b.closed, 'peer');
        assert.equal((await b.recv()).type, 1);
        assert.equal(b.tryRecv()?.type, 2);
        throwsCode(() => b.tryRecv(), 'PEER_CLOSED');
        await rejectsCode(b.recv(), 'PEER_CLOSED');
        await rejectsCode(b.recvBatch(), 'PEER_CLOSED');
        throwsCode(() => b.send({ type: 3 }), 'PEER_CLOSED');
        b.close();
      });

      it('wakes a waiting receiver with PEER_CLOSED', async () => {
        const [a, b] = await makePair();
        const pending = b.recv();
        a.close();
        await rejectsCode(pending, 'PEER_CLOSED');
      });
    });

    describe('handles', () => {
      it('moves a channel: the old object is dead, the new one talks to the same peer', async () => {
        const [a, b] = await makePair();
        const [x, y] = Channel.pair();
        assert.equal(a.send({ type: 1, handles: [x] }), true);
        throwsCode(() => x.send({ type: 1 }), 'CLOSED');
        assert.equal(await x.closed, 'moved');
        const [moved] = (await b.recv()).handles;
        assert.ok(moved instanceof Channel);
        moved.send({ type: 42 });
        assert.equal((await y.recv()).type, 42);
        y.send({ type: 43 });
        assert.equal((await moved.recv()).type, 43);
        moved.close();
        assert.equal(await y.closed, 'peer');
        a.close();
      });

      it('keeps messages already queued in a moved endpoint', async () => {
        const [a, b] = await makePair();
        const [x, y] = Channel.pair();
        y.send({ type: 1 });
        y.send({ type: 2 });
        a.send({ type: 0, handles: [x] });
        const [moved] = (await b.recv()).handles as [Channel];
        assert.equal((await moved.recv()).type, 1);
        assert.equal((await moved.recv()).type, 2);
        a.close();
        y.close();
      });

      it('all or nothing: a failed send leaves every handle with the sender', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        const [x1, y1] = Channel.pair();
        const [x2, y2] = Channel.pair();
        a.send({ type: 0 });
        throwsCode(() => a.send({ type: 1, handles: [x1, x2] }), 'BACKPRESSURE');
        assert.equal(a.send({ type: 1, handles: [x1, x2] }, { onFull: 'drop' }), false);
        x1.send({ type: 1 });
        x2.send({ type: 2 });
        assert.equal((await y1.recv()).type, 1);
        assert.equal((await y2.recv()).type, 2);
        const dead = Channel.pair()[0];
        dead.close();
        await b.recv();
        await a.writable();
        throwsCode(() => a.send({ type: 1, handles: [x1, dead] }), 'HANDLE_NOT_MOVABLE');
        x1.send({ type: 3 });
        assert.equal((await y1.recv()).type, 3);
        a.close();
      });

      it('HANDLE_NOT_MOVABLE: itself, its peer, twice, already moved', async () => {
        const [a, b] = await makePair();
        throwsCode(() => a.send({ type: 1, handles: [a] }), 'HANDLE_NOT_MOVABLE');
        const [x, y] = Channel.pair();
        throwsCode(() => x.send({ type: 1, handles: [y] }), 'HANDLE_NOT_MOVABLE');
        throwsCode(() => a.send({ type: 1, handles: [x, x] }), 'HANDLE_NOT_MOVABLE');
        a.send({ type: 1, handles: [x] });
        throwsCode(() => a.send({ type: 1, handles: [x] }), 'HANDLE_NOT_MOVABLE');
        assert.equal((await b.recv()).handles.length, 1);
        a.close();
        y.close();
      });

      it('sendWait keeps handles with the sender until sent, and fails if one dies meanwhile', async () => {
        const [a, b] = await makePair({ capacity: 1 });
        const [x, y] = Channel.pair();
        const [p] = Channel.pair();
        a.send({ type: 0 });
        const first = a.sendWait({ type: 1, handles: [x] });
        const second = a.sendWait({ type: 2, handles: [p] });
        x.send({ type: 9 }); // still ours while waiting
        p.close();
        await b.recv();
        await first;
        throwsCode(() => x.send({ type: 1 }), 'CLOSED');
        await rejectsCode(second, 'HANDLE_NOT_MOVABLE');
        const [moved] = (await b.recv()).handles as [Channel];
        assert.equal((await y.recv()).type, 9);
        moved.send({ type: 10 });
        assert.equal((await y.recv()).type, 10);
        a.close();
        y.close();
      });

      it('closing an endpoint closes the handles in its unread messages', async () => {
        const [a, b] = await makePair();
        const [x, y] = Channel.pair();
        a.send({ type: 1, handles: [x] });
        await delivered(b, 1);
        b.close();
        assert.equal(await y.closed, 'peer');
        throwsCode(() => y.send({ type: 1 }), 'PEER_CLOSED');
        assert.equal(b.stats.discarded, 1);
        a.close();
      });

      it('a moved endpoint whose peer closed meanwhile reports it on arrival', async () => {
        const [a, b] = await makePair();
        const [x, y] = Channel.pair();
        a.send({ type: 1, handles: [x] });
        y.close();
        const [moved] = (await b.recv()).handles as [Channel];
        assert.equal(await moved.closed, 'peer');
        await rejectsCode(moved.recv(), 'PEER_CLOSED');
        a.close();
      });
    });

    describe('batches and borrowed views', () => {
      it('sendBatch sends as many as fit, in order, and says how many', async () => {
        const [a, b] = await makePair({ capacity: 4 });
        const batch = Array.from({ length: 6 }, (_, type) => ({ type, data: bytes(type) }));
        assert.equal(a.sendBatch(batch), 4);
        assert.equal(a.stats.sent, 4);
        assert.equal(a.stats.backpressured, 1);
        assert.equal(a.sendBatch(batch, { start: 4 }), 0, 'full: nothing, and no exception');
        const got: number[] = [];
        while (got.length < 4) for (const m of await b.recvBatch()) got.push(m.data[0] as number);
        await a.writable();
        assert.equal(a.sendBatch(batch, { start: 4, end: 5 }), 1);
        assert.equal(a.sendBatch(batch, { start: 5, end: 99 }), 1);
        assert.equal(a.sendBatch(batch, { start: 6 }), 0);
        while (got.length < 6) for (const m of await b.recvBatch()) got.push(m.data[0] as number);
        assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
        throwsCode(() => a.sendBatch(batch, { start: 3, end: 2 }), 'INVALID_ARGUMENT');
        throwsCode(() => a.sendBatch(batch, { start: -1 }), 'INVALID_ARGUMENT');
        throwsCode(() => a.sendBatch('x' as never), 'INVALID_ARGUMENT');
        a.close();
      });

      it('sendBatch is all or nothing per message, handles included', async () => {
        const [a, b] = await makePair({ capacity: 2 });
        const [x1, y1] = Channel.pair();
        const [x2, y2] = Channel.pair();
        const batch = [{ type: 0 }, { type: 1, handles: [x1] }, { type: 2, handles: [x2] }];
        assert.equal(a.sendBatch(batch), 2);
        throwsCode(() => x1.send({ type: 1 }), 'CLOSED');
        x2.send({ type: 7 }); // not sent: still the sender's
        assert.equal((await y2.recv()).type, 7);
        assert.equal((await b.recv()).type, 0);
        const [moved] = (await b.recv()).handles as [Channel];
        moved.send({ type: 8 });
        assert.equal((await y1.recv()).type, 8);
        await a.writable();
        assert.equal(a.sendBatch(batch, { start: 2 }), 1);
        throwsCode(() => x2.send({ type: 1 }), 'CLOSED');
        assert.equal((await b.recv()).handles.length, 1);
        a.close();
        y1.close();
        y2.close();
      });

      it('sendBatch stops before a message that would throw, which the next call throws', async () => {
        const [a, b] = await makePair({ capacity: 8, maxMessageBytes: 4 });
        const [x] = Channel.pair();
        x.close();
        const batch = [
          { type: 1 },
          { type: 2, data: new Uint8Array(5) },
          { type: 3, handles: [x] },
        ];
        assert.equal(a.sendBatch(batch), 1);
        throwsCode(() => a.sendBatch(batch, { start: 1 }), 'TOO_LARGE');
        throwsCode(() => a.sendBatch(batch, { start: 2 }), 'HANDLE_NOT_MOVABLE');
        assert.equal(a.stats.sent, 1);
        b.close();
        await a.closed;
        throwsCode(() => a.sendBatch(batch), 'PEER_CLOSED');
        a.close();
        throwsCode(() => a.sendBatch(batch), 'CLOSED');
      });

      it('tryRecvView lends one object per channel; readable waits without taking', async () => {
        const [a, b] = await makePair();
        const pending = b.readable();
        assert.equal(await state(pending), 'pending');
        const [x, y] = Channel.pair();
        a.send({ type: 1, data: bytes(1, 2) });
        a.send({ type: 2, handles: [x] });
        await pending;
        await delivered(b, 2);
        const first = b.tryRecvView();
        assert.ok(first);
        assert.equal(first.type, 1);
        assert.deepEqual(first.data, bytes(1, 2));
        assert.equal(first.handles.length, 0);
        const second = b.tryRecvView();
        assert.equal(second, first, 'the same view, moved on');
        assert.ok(second);
        assert.equal(second.type, 2);
        const [moved] = second.handles as [Channel];
        assert.equal(b.tryRecvView(), undefined);
        assert.equal(b.stats.received, 2);
        moved.send({ type: 9 });
        assert.equal((await y.recv()).type, 9);
        a.close();
        await rejectsCode(b.readable(), 'PEER_CLOSED');
        throwsCode(() => b.tryRecvView(), 'PEER_CLOSED');
        y.close();
      });
    });

    describe('stats and diagnostics', () => {
      it('counts sent, received, their bytes, dropped, backpressured, queue depth and high water', async () => {
        const [a, b] = await makePair({ capacity: 3 });
        a.send({ type: 1, data: new Uint8Array(10) });
        a.send({ type: 2, data: new Uint8Array(5) });
        a.send({ type: 3 });
        a.send({ type: 4 }, { onFull: 'drop' });
        await delivered(b, 3);
        await b.recv();
        assert.deepEqual(a.stats, {
          sent: 3,
          received: 0,
          sentBytes: 15,
          receivedBytes: 0,
          dropped: 1,
          backpressured: 1,
          discarded: 0,
          queuedMessages: 0,
          queuedBytes: 0,
          highWaterMark: 0,
        });
        const bs = b.stats;
        assert.equal(bs.received, 1);
        assert.equal(bs.receivedBytes, 10);
        assert.equal(bs.queuedMessages, 2);
        assert.equal(bs.queuedBytes, 5);
        assert.equal(bs.highWaterMark, 3);
        a.close();
        assert.equal(a.stats.sent, 3, 'stats survive close');
      });

      it('the counters travel with an endpoint sent as a handle', async () => {
        const [a, b] = await makePair();
        const [x, y] = Channel.pair({ capacity: 2 });
        x.send({ type: 1, data: new Uint8Array(3) });
        x.send({ type: 2, data: new Uint8Array(4) });
        assert.equal(x.send({ type: 3 }, { onFull: 'drop' }), false);
        y.send({ type: 4, data: new Uint8Array(2) });
        y.send({ type: 5, data: new Uint8Array(6) });
        assert.equal((await x.recv()).type, 4);
        const counters = {
          sent: 2,
          received: 1,
          sentBytes: 7,
          receivedBytes: 2,
          dropped: 1,
          backpressured: 1,
          discarded: 0,
          queuedMessages: 1,
          queuedBytes: 6,
          highWaterMark: 2,
        };
        assert.deepEqual(x.stats, counters);
        a.send({ type: 0, handles: [x] });
        const [moved] = (await b.recv()).handles as [Channel];
        await delivered(moved, 1);
        assert.deepEqual(moved.stats, counters);
        // And they go on counting from there.
        assert.equal((await moved.recv()).type, 5);
        assert.equal(moved.stats.received, 2);
        assert.equal(moved.stats.receivedBytes, 8);
        a.close();
        moved.close();
      });

      it('publishes backpressure, drop and close through diagnostics_channel', async () => {
        const events: string[] = [];
        // Only this pair: across processes, channels of earlier tests may still be closing.
        const mine = new Set<unknown>();
        const on = (name: string) => (msg: unknown) => {
          const m = msg as { channel: unknown; onFull?: string; by?: string };
          if (mine.has(m.channel)) events.push(`${name}:${m.onFull ?? m.by ?? 'local'}`);
        };
        const handlers = {
          'ftl-ipc:channel:backpressure': on('backpressure'),
          'ftl-ipc:channel:drop': on('drop'),
          'ftl-ipc:channel:close': on('close'),
        };
        for (const [name, fn] of Object.entries(handlers)) diagnosticsChannel.subscribe(name, fn);
        try {
          const [a, b] = await makePair({ capacity: 1 });
          mine.add(a).add(b);
          a.send({ type: 1 });
          assert.throws(() => a.send({ type: 2 }));
          a.send({ type: 3 }, { onFull: 'drop' });
          a.send({ type: 4 }, { onFull: 'close' });
          await b.closed;
          await new Promise((resolve) => setTimeout(resolve, 10));
          b.close();
        } finally {
          for (const [name, fn] of Object.entries(handlers))
            diagnosticsChannel.unsubscribe(name, fn);
        }
        assert.deepEqual(events, [
          'backpressure:throw',
          'backpressure:drop',
          'drop:drop',
          'backpressure:close',
          'drop:close',
          'close:local',
          'close:peer',
          'close:local',
        ]);
      });
    });
  });
}
