import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import {
  Channel,
  createPool,
  DataPipe,
  isIpcError,
  type Pool,
  type PoolOptions,
  poolChannel,
  spawnWorker,
} from 'ftl-ipc';
import { JobClient } from './pooltest.generated.js';

const WORKER = new URL('./pool-worker.js', import.meta.url);
const code = (expected: string, text?: RegExp) => (e: unknown) => {
  assert.ok(isIpcError(e, expected as never), `expected ${expected}, got ${String(e)}`);
  if (text !== undefined) assert.match((e as Error).message, text);
  return true;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function pool(options: Omit<PoolOptions<JobClient>, 'client'>): Promise<Pool<JobClient>> {
  return createPool(WORKER, { client: JobClient, ...options });
}

/** What a user's code does with the generated client; it does not know what is behind it. */
async function exercise(client: JobClient): Promise<string[]> {
  const sums = await Promise.all([1, 2, 3].map((value) => client.add({ value })));
  assert.deepEqual(
    sums.map((r) => r.value),
    [2, 3, 4],
  );
  await assert.rejects(client.hang({ tag: 7 }, { timeoutMs: 50 }), code('TIMEOUT'));
  const push = await client.recv();
  assert.equal(push.kind, 'aborted');
  return sums.map((r) => r.worker);
}

for (const isolation of ['thread', 'process'] as const) {
  describe(`pool of ${isolation}s`, () => {
    it('balances calls to the worker with the most free window; counters per worker', {
      timeout: 30_000,
    }, async () => {
      const p = await pool({ isolation, size: 3, concurrency: 4 });
      try {
        const calls = Array.from({ length: 12 }, () => p.client.sleep({ ms: 200 }));
        await sleep(50);
        assert.deepEqual(
          p.stats().workers.map((w) => w.inFlight),
          [4, 4, 4],
        );
        const by = new Map<string, number>();
        for (const { worker } of await Promise.all(calls))
          by.set(worker, (by.get(worker) ?? 0) + 1);
        assert.deepEqual([...by.values()], [4, 4, 4]);
        const stats = p.stats().workers;
        assert.deepEqual(
          stats.map((w) => [w.state, w.inFlight, w.completed, w.failed, w.restarts]),
          [
            ['ready', 0, 4, 0, 0],
            ['ready', 0, 4, 0, 0],
            ['ready', 0, 4, 0, 0],
          ],
        );
        assert.deepEqual(new Set(by.keys()), new Set(stats.map((w) => w.id)));
      } finally {
        await p.destroy();
      }
    });

    it('a bounded queue: calls beyond every window wait in it, one past maxQueue fails with BACKPRESSURE', {
      timeout: 30_000,
    }, async () => {
      const p = await pool({ isolation, size: 2, concurrency: 2, maxQueue: 3 });
      try {
        const admitted = Array.from({ length: 7 }, () => p.client.sleep({ ms: 200 }));
        assert.equal(p.stats().queued, 3);
        await assert.rejects(
          p.client.sleep({ ms: 1 }),
          code(
            'BACKPRESSURE',
            /2 pool workers have their 2 calls in flight and the pool queue holds its maxQueue of 3/,
          ),
        );
        assert.equal((await Promise.all(admitted)).length, 7);
        // A queued call's own timeout and signal work while it waits.
        const busy = Array.from({ length: 4 }, () => p.client.sleep({ ms: 300 }));
        await assert.rejects(
          p.client.add({ value: 1 }, { timeoutMs: 50 }),
          code('TIMEOUT', /pool queue/),
        );
        const controller = new AbortController();
        const aborted = p.client.add({ value: 1 }, { signal: controller.signal });
        controller.abort();
        await assert.rejects(aborted, code('ABORTED', /pool queue/));
        assert.equal(p.stats().queued, 0);
        await Promise.all(busy);
      } finally {
        await p.destroy();
      }
      const none = await pool({ isolation, size: 1, concurrency: 1, maxQueue: 0 });
      try {
        const running = none.client.sleep({ ms: 100 });
        await assert.rejects(none.client.add({ value: 1 }), code('BACKPRESSURE'));
        await running;
      } finally {
        await none.destroy();
      }
    });

    it('cancellation (signal, deadline) reaches the handler in the pool worker, queued calls too', {
      timeout: 30_000,
    }, async () => {
      const p = await pool({ isolation, size: 1, concurrency: 1, maxQueue: 4 });
      try {
        const controller = new AbortController();
        const first = p.client.hang({ tag: 1 }, { signal: controller.signal });
        // Waits in the queue, then runs with what is left of its deadline.
        const second = p.client.hang({ tag: 2 }, { timeoutMs: 300 });
        assert.equal(p.stats().queued, 1);
        await sleep(50);
        controller.abort();
        await assert.rejects(first, code('ABORTED'));
        const push1 = await p.client.recv();
        const started = performance.now();
        await assert.rejects(second, code('TIMEOUT'));
        const push2 = await p.client.recv();
        assert.ok(performance.now() - started < 1000);
        const id = p.stats().workers[0]!.id;
        assert.equal(push1.kind, 'aborted');
        assert.deepEqual(push1.value, { tag: 1, code: 'ABORTED', worker: id });
        assert.equal(push2.kind, 'aborted');
        assert.equal(push2.value.tag, 2);
        assert.equal(push2.value.worker, id);
      } finally {
        await p.destroy();
      }
    });

    it('a crash fails only the calls its worker held, naming it and its exit; it is replaced with backoff', {
      timeout: 30_000,
    }, async () => {
      const events: { event: string; worker: number }[] = [];
      const listen = (m: unknown) => events.push(m as { event: string; worker: number });
      diagnosticsChannel.subscribe(poolChannel.name, listen);
      const p = await pool({
        isolation,
        size: 2,
        concurrency: 4,
        restart: { limit: 5, backoffMs: 50, maxBackoffMs: 1000 },
      });
      try {
        const dead = p.stats().workers[0]!.id;
        // Placement by free window: crash on worker 0, then sleeps alternate 1, 0, 1, 0.
        const crash = p.client.crash({ ms: 100, code: 3 });
        const sleeps = Array.from({ length: 4 }, () => p.client.sleep({ ms: 400 }));
        const results = await Promise.allSettled([crash, ...sleeps]);
        const failed = results.filter((r) => r.status === 'rejected');
        const done = results.filter((r) => r.status === 'fulfilled');
        assert.equal(failed.length, 3);
        for (const f of failed)
          code(
            'PEER_CLOSED',
            new RegExp(`pool worker 0 \\(${dead}\\) exited with code 3 while it held the call`),
          )(f.reason);
        for (const d of done) assert.notEqual((d.value as { worker: string }).worker, dead);
        await until('the replacement', () => p.stats().workers[0]!.state === 'ready');
        const [w0, w1] = p.stats().workers;
        assert.equal(w0!.restarts, 1);
        assert.equal(w0!.failed, 3);
        assert.equal(w1!.failed, 0);
        assert.notEqual(w0!.id, dead);
        const after = await Promise.all(
          Array.from({ length: 8 }, (_, value) => p.client.add({ value })),
        );
        assert.equal(new Set(after.map((r) => r.worker)).size, 2);
        const mine = events.filter((e) => e.worker === 0).map((e) => e.event);
        assert.deepEqual(mine.slice(-3), ['exit', 'restart', 'start']);
      } finally {
        diagnosticsChannel.unsubscribe(poolChannel.name, listen);
        await p.destroy();
      }
    });

    it('close() with calls in flight and queued loses none, then the workers exit', {
      timeout: 30_000,
    }, async () => {
      const p = await pool({ isolation, size: 2, concurrency: 2, maxQueue: 64 });
      const calls = Array.from({ length: 30 }, (_, i) => p.client.sleep({ ms: 10 + (i % 3) }));
      const closing = p.close();
      await assert.rejects(p.client.add({ value: 1 }), code('CLOSED', /the pool is closed/));
      assert.equal((await Promise.all(calls)).length, 30);
      await closing;
      const workers = p.stats().workers;
      assert.deepEqual(
        workers.map((w) => [w.state, w.id, w.inFlight, w.failed]),
        [
          ['stopped', undefined, 0, 0],
          ['stopped', undefined, 0, 0],
        ],
      );
      assert.equal(workers[0]!.completed + workers[1]!.completed, 30);
    });

    it('channel ends and data pipe ends travel in calls', { timeout: 30_000 }, async () => {
      const p = await pool({ isolation, size: 2 });
      try {
        const [mine, theirs] = Channel.pair();
        const { worker } = await p.client.relay({ reply: theirs });
        const message = await mine.recv();
        assert.equal(new TextDecoder().decode(message.data), worker);
        const [producer, consumer] = DataPipe.create({ capacityBytes: 1024 });
        const sum = p.client.sum({ source: consumer });
        await producer.writeAll(new Uint8Array(10_000));
        producer.close();
        assert.equal((await sum).bytes, 10_000);
      } finally {
        await p.destroy();
      }
    });
  });
}

describe('pool', () => {
  it('the generated client works unchanged over one channel and over a pool', {
    timeout: 30_000,
  }, async () => {
    const [mine, theirs] = Channel.pair();
    const spawned = await spawnWorker(WORKER, { channels: { 'ftl-ipc:pool': theirs } });
    const single = new JobClient(mine);
    assert.equal(new Set(await exercise(single)).size, 1);
    single.close();
    await spawned.exited;
    const p = await pool({ size: 2, concurrency: 1, maxQueue: 8 });
    try {
      assert.equal(new Set(await exercise(p.client)).size, 2);
    } finally {
      await p.destroy();
    }
  });

  it('destroy() fails queued and in-flight calls with CLOSED at once', {
    timeout: 30_000,
  }, async () => {
    const p = await pool({ size: 1, concurrency: 1, maxQueue: 4 });
    const running = p.client.hang({ tag: 1 });
    const queued = p.client.add({ value: 1 });
    const started = performance.now();
    const failed = Promise.all([
      assert.rejects(queued, code('CLOSED', /destroyed/)),
      assert.rejects(running, code('CLOSED', /destroyed/)),
    ]);
    await p.destroy();
    await failed;
    assert.ok(performance.now() - started < 2000);
  });

  it('stuckMs: a worker still running a call past its timeout is terminated and replaced', {
    timeout: 30_000,
  }, async () => {
    const events: { event: string; reason?: string }[] = [];
    const listen = (m: unknown) => events.push(m as { event: string });
    diagnosticsChannel.subscribe(poolChannel.name, listen);
    const p = await pool({
      size: 1,
      stuckMs: 100,
      restart: { limit: 5, backoffMs: 10, maxBackoffMs: 10 },
    });
    try {
      await assert.rejects(p.client.spin({ ms: 20_000 }, { timeoutMs: 100 }), code('TIMEOUT'));
      await until(
        'the replacement',
        () => p.stats().workers[0]!.restarts === 1 && p.stats().workers[0]!.state === 'ready',
      );
      assert.equal((await p.client.add({ value: 1 })).value, 2);
      const terminate = events.find((e) => e.event === 'terminate');
      assert.match(terminate?.reason ?? '', /a call ran 100 ms past its timeout or abort/);
      // A call that ends in time leaves its worker alone.
      await assert.rejects(p.client.hang({ tag: 1 }, { timeoutMs: 50 }), code('TIMEOUT'));
      await sleep(300);
      assert.equal(p.stats().workers[0]!.restarts, 1);
    } finally {
      diagnosticsChannel.unsubscribe(poolChannel.name, listen);
      await p.destroy();
    }
  });

  it('min/max: grows when every window is full, closes idle workers beyond min', {
    timeout: 30_000,
  }, async () => {
    const p = await pool({ min: 1, max: 3, concurrency: 1, maxQueue: 8, idleTimeoutMs: 200 });
    try {
      assert.equal(p.stats().workers.length, 1);
      // Long enough for two more workers to start on a loaded machine (~0.5 s each here).
      const calls = Array.from({ length: 3 }, () => p.client.sleep({ ms: 2500 }));
      const workers = new Set((await Promise.all(calls)).map((r) => r.worker));
      assert.equal(workers.size, 3);
      await until(
        'idle shutdown',
        () =>
          p
            .stats()
            .workers.map((w) => w.state)
            .sort()
            .join() === 'ready,stopped,stopped',
      );
      assert.deepEqual(
        p
          .stats()
          .workers.map((w) => w.state)
          .sort(),
        ['ready', 'stopped', 'stopped'],
      );
      assert.equal((await p.client.add({ value: 1 })).value, 2);
    } finally {
      await p.destroy();
    }
  });

  it('resourceLimits reach the worker threads; bad options are INVALID_ARGUMENT naming them', {
    timeout: 30_000,
  }, async () => {
    const p = await pool({ size: 1, resourceLimits: { maxOldGenerationSizeMb: 48 } });
    try {
      assert.equal((await p.client.limits({})).oldMb, 48);
    } finally {
      await p.destroy();
    }
    await assert.rejects(
      pool({ size: 0 }),
      code('INVALID_ARGUMENT', /size must be a positive integer, got 0/),
    );
    await assert.rejects(
      pool({ min: 3, max: 2 }),
      code('INVALID_ARGUMENT', /min \(3\) is more than max \(2\)/),
    );
    await assert.rejects(
      pool({ isolation: 'process', resourceLimits: {} }),
      code('INVALID_ARGUMENT', /resourceLimits/),
    );
  });
});
