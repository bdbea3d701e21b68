/**
 * The arena grows while other threads use it: every thread must see every block another
 * thread hands it (issue 26: a worker that imported its end while the arena was small threw
 * RangeError on its first message after the parent grew the arena).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Channel, exportEndpoint, importEndpoint, sharedMemoryStats } from '../../../src/index.js';

function start(scenario: string, token: ReturnType<typeof exportEndpoint>): Worker {
  return new Worker(new URL('./arena-worker.js', import.meta.url), {
    workerData: { scenario, token },
    transferList: token.transfer,
  });
}

function failure(worker: Worker): Promise<never> {
  return new Promise((_, reject) => worker.once('error', reject));
}

it('a worker that imported its end while the arena was small receives and replies after another thread grew it', {
  timeout: 60_000,
}, async () => {
  const [mine, theirs] = Channel.pair();
  const worker = start('importThenEcho', exportEndpoint(theirs));
  const failed = failure(worker);
  await new Promise((resolve) => worker.once('message', resolve));
  const sizeBefore = Math.max(...sharedMemoryStats().map((a) => a.size));
  // Grow the arena from this thread by tens of MiB, then free it all: the worker's next ring
  // comes from blocks far past what it saw when it imported its end.
  const grown: Channel[] = [];
  for (let i = 0; i < 300; i++) {
    const [a, b] = Channel.pair({ capacityBytes: 2 ** 20, maxMessageBytes: 2 ** 17 });
    const moved = importEndpoint(exportEndpoint(b));
    a.send({ type: 0, data: new Uint8Array(100_000) });
    moved.send({ type: 0, data: new Uint8Array(1000) });
    grown.push(a, moved);
  }
  const sizeAfter = Math.max(...sharedMemoryStats().map((a) => a.size));
  assert.ok(
    sizeAfter > sizeBefore + 16 * 2 ** 20,
    `the arena grew from ${sizeBefore} to ${sizeAfter}`,
  );
  for (const ch of grown) ch.close();
  for (let round = 0; round < 20; round++) {
    const size = 16 << (round % 10);
    mine.send({ type: round, data: new Uint8Array(size).fill(round) });
    const reply = await Promise.race([mine.recv(), failed]);
    assert.equal(reply.type, round + 1);
    assert.deepEqual(reply.data, new Uint8Array(size).fill(round));
  }
  mine.close();
  await new Promise((resolve) => worker.once('exit', resolve));
});

it('32 workers with 100 channels each, the arena growing meanwhile: a round trip of 1 KiB on every channel', {
  timeout: 120_000,
}, async () => {
  const workers = 32;
  const perWorker = 100;
  const ctrls: Channel[] = [];
  const started: Worker[] = [];
  const failures: Promise<never>[] = [];
  for (let w = 0; w < workers; w++) {
    const [ctrl, theirs] = Channel.pair();
    const worker = start('echoHandles', exportEndpoint(theirs));
    started.push(worker);
    failures.push(failure(worker));
    ctrls.push(ctrl);
  }
  const failed = Promise.race(failures);
  const channels: Channel[] = [];
  // Handed over while the arena is small; the rings come with the first messages.
  await Promise.race([
    Promise.all(
      ctrls.map(async (ctrl) => {
        for (let i = 0; i < perWorker; i += 10) {
          const batch = Array.from({ length: 10 }, () => Channel.pair());
          channels.push(...batch.map(([a]) => a));
          await ctrl.sendWait({ type: i, handles: batch.map(([, b]) => b) });
          await ctrl.recv();
        }
      }),
    ),
    failed,
  ]);
  for (let round = 0; round < 2; round++) {
    const data = new Uint8Array(1024).fill(round + 1);
    await Promise.race([
      Promise.all(
        channels.map(async (ch, i) => {
          await ch.sendWait({ type: i, data });
          const reply = await ch.recv();
          assert.equal(reply.type, i + 1);
          assert.deepEqual(reply.data, data);
        }),
      ),
      failed,
    ]);
  }
  assert.equal(channels.length, workers * perWorker);
  for (const ch of channels) ch.close();
  for (const ctrl of ctrls) ctrl.close();
  await Promise.all(started.map((w) => new Promise((resolve) => w.once('exit', resolve))));
});
