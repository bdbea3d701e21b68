/** The worker transport with one end really inside a worker thread. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  Channel,
  type ChannelOptions,
  DataPipe,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  type Message,
} from '../../../src/index.js';
import { liveMemory, rejectsCode, throwsCode } from '../../channel/helpers.js';
import { exitCode, nextMessage, pattern, startWorker } from './workers.js';

/** A pair whose second end runs `scenario` in a new worker. */
function withWorker(scenario: string, options: ChannelOptions = {}, more = {}) {
  const [here, there] = Channel.pair(options);
  const worker = startWorker(scenario, exportEndpoint(there), more);
  return { here, worker };
}

/** Receives everything until PEER_CLOSED; returns the messages and when the close was seen. */
async function drainUntilClosed(ch: Channel): Promise<{ messages: Message[]; closedAt: number }> {
  const messages: Message[] = [];
  for await (const m of ch) messages.push(m);
  return { messages, closedAt: performance.now() };
}

describe('worker transport, one end in a worker', () => {
  describe('send and receive', () => {
    it('round-trips messages of every size, wrapping the ring many times, bytes intact', async () => {
      const { here, worker } = withWorker('echo', {
        capacity: 16,
        capacityBytes: 4096,
        maxMessageBytes: 1000,
      });
      const sizes = [0, 1, 7, 8, 9, 15, 16, 17, 100, 999, 1000];
      const total = 600;
      const sizeOf = (n: number) => sizes[n % sizes.length] as number;
      const reading = (async () => {
        const got: Message[] = [];
        while (got.length < total) got.push(...(await here.recvBatch()));
        return got;
      })();
      for (let n = 0; n < total; n++) await here.sendWait({ type: n, data: pattern(n, sizeOf(n)) });
      const got = await reading;
      for (const [n, m] of got.entries()) {
        assert.equal(m.type, n + 1);
        assert.deepEqual(m.data, pattern(n, sizeOf(n)));
      }
      here.close();
      assert.equal(await exitCode(worker), 0);
    });

    it('keeps a worker alive while it waits in recv, and lets it end when its peer closes', async () => {
      const { here, worker } = withWorker('echo');
      await new Promise((resolve) => setTimeout(resolve, 50));
      here.send({ type: 10 });
      assert.equal((await here.recv()).type, 11);
      here.close();
      assert.equal(await exitCode(worker), 0);
    });
  });

  describe('backpressure is exact and synchronous', () => {
    it('a sender here gets BACKPRESSURE at exactly capacity messages while the worker holds', async () => {
      const { here, worker } = withWorker('hold', { capacity: 5 });
      assert.equal(await nextMessage(worker), 'ready');
      for (let i = 0; i < 5; i++) here.send({ type: i });
      throwsCode(() => here.send({ type: 5 }), 'BACKPRESSURE');
      worker.postMessage({ take: 2 });
      assert.deepEqual(await nextMessage(worker), [0, 1]);
      await here.writable();
      here.send({ type: 5 });
      here.send({ type: 6 });
      throwsCode(() => here.send({ type: 7 }), 'BACKPRESSURE');
      here.close();
      await worker.terminate();
    });

    it('a sender here gets BACKPRESSURE at exactly capacityBytes', async () => {
      const { here, worker } = withWorker('hold', {
        capacity: 100,
        capacityBytes: 1000,
        maxMessageBytes: 300,
      });
      assert.equal(await nextMessage(worker), 'ready');
      for (let i = 0; i < 3; i++) here.send({ type: i, data: new Uint8Array(300) });
      here.send({ type: 3, data: new Uint8Array(100) });
      throwsCode(() => here.send({ type: 4, data: new Uint8Array(1) }), 'BACKPRESSURE');
      here.send({ type: 5 });
      worker.postMessage({ take: 1 });
      await nextMessage(worker);
      await here.writable(300);
      here.send({ type: 6, data: new Uint8Array(300) });
      throwsCode(() => here.send({ type: 7, data: new Uint8Array(1) }), 'BACKPRESSURE');
      here.close();
      await worker.terminate();
    });

    it('a sender in the worker fits exactly capacity messages before BACKPRESSURE', async () => {
      const { here, worker } = withWorker('fill', { capacity: 37 }, { size: 24 });
      assert.equal(await nextMessage(worker), 37);
      assert.equal(here.stats.queuedMessages, 37);
      assert.equal(here.stats.queuedBytes, 37 * 24);
      assert.equal(here.stats.highWaterMark, 37);
      worker.postMessage('close');
      const { messages } = await drainUntilClosed(here);
      assert.equal(messages.length, 37);
      await exitCode(worker);
    });

    it('a worker flooding a thread that never reads leaves its memory flat', async () => {
      const count = 200_000;
      const size = 1024;
      const { here, worker } = withWorker('flood', { capacity: 64 }, { count, size });
      // Live memory after a full GC on both sides of the flood, so garbage made meanwhile
      // (by the test runner, say) neither hides growth nor fakes it.
      const before = liveMemory();
      const tally = await nextMessage<{ accepted: number; dropped: number }>(worker);
      const after = liveMemory();
      assert.equal(tally.accepted, 64);
      assert.equal(tally.dropped, count - 64);
      assert.equal(here.stats.queuedMessages, 64);
      // 200 MB were offered; the ring holds 64 KiB of it. Allow for test-runner noise only.
      assert.ok(
        after.heapUsed - before.heapUsed < 8 * 2 ** 20,
        `heap grew by ${after.heapUsed - before.heapUsed} bytes`,
      );
      assert.ok(
        after.arrayBuffers - before.arrayBuffers < 8 * 2 ** 20,
        `array buffers grew by ${after.arrayBuffers - before.arrayBuffers} bytes`,
      );
      worker.postMessage('close');
      await exitCode(worker);
      here.close();
    });
  });

  describe('peer death', () => {
    it('a worker that ends before importing its token: the peer sees PEER_CLOSED within 1 s', async () => {
      const [here, there] = Channel.pair();
      const token = exportEndpoint(there);
      const worker = new Worker('process.exit(0)', {
        eval: true,
        workerData: { token },
        transferList: token.transfer,
      });
      const exited = once(worker, 'exit');
      // The watching port is unref'd (a token never posted must not keep a process alive), and
      // nothing else here is once the worker is gone: the timer keeps the test's loop running.
      const keepAlive = setTimeout(() => {}, 5000);
      const started = Date.now();
      await rejectsCode(here.recv(), 'PEER_CLOSED');
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
      clearTimeout(keepAlive);
      await exited;
    });

    for (const mode of ['exit', 'throw', 'return', 'terminate'] as const) {
      it(`a worker that ${mode === 'return' ? 'ends with the endpoint open' : `${mode}s`}: its peer drains, then PEER_CLOSED within 100 ms`, async () => {
        const { here, worker } = withWorker(
          'die',
          {},
          { count: 5, size: 100, mode: mode === 'terminate' ? 'hang' : mode },
        );
        worker.on('error', () => {});
        const pending = here.recv();
        assert.equal(await nextMessage(worker), 'sent');
        if (mode === 'terminate') void worker.terminate();
        const [{ messages, closedAt }, exitedAt] = await Promise.all([
          drainUntilClosed(here),
          exitCode(worker).then(() => performance.now()),
        ]);
        assert.equal((await pending).type, 0);
        assert.deepEqual(
          messages.map((m) => m.type),
          [1, 2, 3, 4],
        );
        assert.ok(
          closedAt - exitedAt < 100,
          `PEER_CLOSED came ${closedAt - exitedAt} ms after exit`,
        );
        assert.equal(await here.closed, 'peer');
        throwsCode(() => here.send({ type: 1 }), 'PEER_CLOSED');
        here.close();
      });
    }

    it('a sender waiting for room here gets PEER_CLOSED when the reader is terminated', async () => {
      const { here, worker } = withWorker('hold', { capacity: 2 });
      assert.equal(await nextMessage(worker), 'ready');
      here.send({ type: 0 });
      here.send({ type: 1 });
      const rejected = Promise.all([
        rejectsCode(here.sendWait({ type: 2 }), 'PEER_CLOSED'),
        rejectsCode(here.writable(), 'PEER_CLOSED'),
      ]);
      await worker.terminate();
      await rejected;
      here.close();
    });

    it('a worker whose last sendWait timed out can end: nothing keeps it alive', async () => {
      const { here, worker } = withWorker('giveUp', { capacity: 3 });
      assert.equal(await nextMessage(worker), 'TIMEOUT');
      let timer: NodeJS.Timeout | undefined;
      const stillAlive = new Promise((resolve) => {
        timer = setTimeout(resolve, 5000, 'still alive');
      });
      const outcome = await Promise.race([exitCode(worker), stillAlive]);
      clearTimeout(timer);
      await worker.terminate();
      assert.equal(outcome, 0);
      assert.equal(here.stats.queuedMessages, 3);
      here.close();
    });

    it('a token imported here after its peer died here-unseen still reports PEER_CLOSED', async () => {
      const { here, worker } = withWorker('die', {}, { count: 2, size: 8, mode: 'exit' });
      const token = exportEndpoint(here);
      assert.equal(await exitCode(worker), 3);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const late = importEndpoint(token);
      assert.equal(await late.closed, 'peer');
      const { messages } = await drainUntilClosed(late);
      assert.equal(messages.length, 2);
    });

    it('an end whose peer died can still move to another thread, with handles queued for it', async () => {
      const { here, worker } = withWorker(
        'die',
        {},
        { count: 2, size: 8, mode: 'exit-with-handle' },
      );
      const orphan = importEndpoint(exportEndpoint(here));
      assert.equal(await exitCode(worker), 3);
      assert.equal(await orphan.closed, 'peer');
      // Its port closed with the peer and could not travel as it is.
      const echo = withWorker('echo');
      echo.here.send({ type: 0, handles: [orphan] });
      const [back] = (await echo.here.recv()).handles as [Channel];
      const { messages } = await drainUntilClosed(back);
      assert.deepEqual(
        messages.map((m) => m.type),
        [0, 1, 2],
      );
      const [inner] = (messages[2] as Message).handles as [Channel];
      assert.equal(await inner.closed, 'peer');
      echo.here.close();
      await exitCode(echo.worker);
    });

    it('a reader that dies with channels and pipe ends unread in its queue: their far ends see it closed', async () => {
      const { here, worker } = withWorker('hold');
      assert.equal(await nextMessage(worker), 'ready');
      const [x, y] = Channel.pair();
      const [producer, consumer] = DataPipe.create({ capacityBytes: 1024 });
      here.send({ type: 0, handles: [x, consumer] });
      await worker.terminate();
      assert.equal(await y.closed, 'peer');
      await producer.closed;
      throwsCode(() => producer.write(new Uint8Array(1)), 'PEER_CLOSED');
      here.close();
      y.close();
      producer.close();
    });

    it('a pending recv in the worker rejects with PEER_CLOSED when this side closes; it exits', async () => {
      const { here, worker } = withWorker('echo');
      here.close();
      assert.equal(await exitCode(worker), 0);
    });
  });

  describe('handles across threads', () => {
    it('an end of a local pair sent to a worker talks to its peer left here', async () => {
      const { here, worker } = withWorker('echo');
      const [x, y] = Channel.pair({ capacity: 4 });
      y.send({ type: 100 });
      here.send({ type: 1, handles: [x] });
      const [moved] = (await here.recv()).handles as [Channel];
      // x went to the worker and came back: it still holds y's message and talks to y.
      assert.equal((await moved.recv()).type, 100);
      moved.send({ type: 7, data: pattern(7, 33) });
      const m = await y.recv();
      assert.deepEqual([m.type, m.data], [7, pattern(7, 33)]);
      here.close();
      moved.close();
      assert.equal(await y.closed, 'peer');
      await exitCode(worker);
    });

    it('a channel created inside a worker can be sent here and used', async () => {
      const { here, worker } = withWorker('makeChannel');
      const [made] = (await here.recv()).handles as [Channel];
      assert.equal(made.limits.capacity, 8);
      made.send({ type: 41, data: pattern(1, 9) });
      const m = await made.recv();
      assert.deepEqual([m.type, m.data], [42, pattern(1, 9)]);
      made.close();
      assert.equal(await exitCode(worker), 0);
    });

    it('ends in two other threads talk directly: the thread that sent them is blocked meanwhile', async () => {
      const count = 200;
      const size = 40;
      const flag = new Int32Array(new SharedArrayBuffer(4));
      const sender = withWorker('sendOnHandle', {}, { count, size });
      const reader = withWorker('readOnHandle', {}, { count, size, flag });
      const [x, y] = Channel.pair({ capacity: 8 });
      sender.here.send({ type: 0, handles: [x] });
      reader.here.send({ type: 0, handles: [y] });
      // This thread runs no JavaScript until the reader has everything: nothing relays here.
      assert.equal(Atomics.wait(flag, 0, 0, 10_000), 'ok');
      const report = await nextMessage<{ bad: number; end: string }>(reader.worker);
      assert.deepEqual(report, { bad: 0, end: 'PEER_CLOSED' });
      await Promise.all([exitCode(sender.worker), exitCode(reader.worker)]);
      sender.here.close();
      reader.here.close();
    });

    it('when a third thread holding one end dies, the end in another worker sees PEER_CLOSED', async () => {
      const flag = new Int32Array(new SharedArrayBuffer(4));
      const sender = withWorker('sendOnHandle', {}, { count: 3, size: 8, mode: 'hang' });
      const reader = withWorker('readOnHandle', {}, { count: 3, size: 8, flag });
      const [x, y] = Channel.pair();
      sender.here.send({ type: 0, handles: [x] });
      reader.here.send({ type: 0, handles: [y] });
      assert.equal(await nextMessage(sender.worker), 'sent');
      const report = nextMessage<{ bad: number; end: string }>(reader.worker);
      await sender.worker.terminate();
      assert.deepEqual(await report, { bad: 0, end: 'PEER_CLOSED' });
      sender.here.close();
      reader.here.close();
      await exitCode(reader.worker);
    });

    it('a data pipe end sent in a message works in the worker', async () => {
      const { here, worker } = withWorker('pipeWrite', {}, { count: 100_000 });
      const [producer, consumer] = DataPipe.create({ capacityBytes: 4096 });
      here.send({ type: 0, handles: [producer] });
      const chunks: Uint8Array[] = [];
      for await (const chunk of consumer) chunks.push(chunk);
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(pattern(0, 100_000)));
      assert.equal(await exitCode(worker), 0);
      here.close();
    });

    it('an endpoint can leave a worker again and come back here', async () => {
      const [a, b] = Channel.pair();
      const worker = startWorker('reexport', exportEndpoint(b));
      const back = importEndpoint(await nextMessage<EndpointToken>(worker));
      a.send({ type: 3 });
      assert.equal((await back.recv()).type, 3);
      back.close();
      assert.equal(await a.closed, 'peer');
      await exitCode(worker);
    });
  });

  describe('tokens', () => {
    it('export kills the original object; a token imports once; bad tokens are rejected', async () => {
      const [a, b] = Channel.pair();
      const token = exportEndpoint(b);
      throwsCode(() => b.send({ type: 1 }), 'CLOSED');
      assert.equal(await b.closed, 'moved');
      throwsCode(() => exportEndpoint(b), 'CLOSED');
      throwsCode(() => exportEndpoint({} as Channel), 'INVALID_ARGUMENT');
      const imported = importEndpoint(token);
      throwsCode(() => importEndpoint(token), 'INVALID_ARGUMENT');
      throwsCode(() => importEndpoint({} as EndpointToken), 'INVALID_ARGUMENT');
      throwsCode(() => importEndpoint(null as unknown as EndpointToken), 'INVALID_ARGUMENT');
      a.send({ type: 5 });
      assert.equal((await imported.recv()).type, 5);
      a.close();
      await rejectsCode(imported.recv(), 'PEER_CLOSED');
    });

    it('checks the wake policy, and works without any spin', async () => {
      const [a, b] = Channel.pair();
      const token = exportEndpoint(b);
      throwsCode(() => importEndpoint(token, { spinMicros: -1 }), 'INVALID_ARGUMENT');
      throwsCode(
        () => importEndpoint(token, { adaptive: 'yes' as unknown as boolean }),
        'INVALID_ARGUMENT',
      );
      const sleeper = importEndpoint(token, { spinMicros: 0 });
      const pending = sleeper.recv();
      a.send({ type: 9 });
      assert.equal((await pending).type, 9);
      a.close();
    });

    it('refuses to export a channel whose limits need a ring over 1 GiB', () => {
      const [, b] = Channel.pair({ capacity: 2 ** 30 });
      throwsCode(() => exportEndpoint(b), 'HANDLE_NOT_MOVABLE');
      assert.equal(b.send({ type: 1 }), true, 'the refused channel stays usable');
    });
  });
});
