/**
 * Promises of docs/worker.md that hold only when the other thread is woken for them: each test
 * leaves the waiting side nothing else that could wake it, so a lost wake-up fails it by name
 * (its `timeout`) instead of passing through some other path.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Channel, exportEndpoint } from '../../../src/index.js';
import { within } from '../../channel/helpers.js';
import { nextMessage, startWorker } from './workers.js';

/** Long enough for a sender that found no room to stop spinning and sleep (spinMicros: 50). */
const SETTLE_MS = 50;
/** What a wake-up may take on a loaded machine, many times over. */
const WAIT_MS = 10_000;

/** Starts closing-worker.ts and moves `count` fresh ends to it; returns their peers here. */
async function endsInWorker(
  count: number,
): Promise<{ worker: Worker; ends: Channel[]; exited: Promise<unknown[]> }> {
  const [ctrl, theirs] = Channel.pair({ capacity: 64 });
  const token = exportEndpoint(theirs);
  const worker = new Worker(new URL('./closing-worker.js', import.meta.url), {
    workerData: { token, count },
    transferList: token.transfer,
  });
  const held = nextMessage<{ held: number }>(worker);
  const ends: Channel[] = [];
  for (let i = 0; i < count; i += 32) {
    const handles: Channel[] = [];
    for (let j = i; j < Math.min(count, i + 32); j++) {
      const [mine, forWorker] = Channel.pair({ capacity: 4 });
      ends.push(mine);
      handles.push(forWorker);
    }
    await ctrl.sendWait({ type: 0, handles });
  }
  assert.deepEqual(await held, { held: count });
  ctrl.close();
  return { worker, ends, exited: once(worker, 'exit') };
}

/** Closes `count` ends here at once: each peer, in a worker that only awaits `closed`, sees it. */
async function closedHereSeenThere(count: number): Promise<void> {
  const { worker, ends, exited } = await endsInWorker(count);
  try {
    const reported = nextMessage<{ closed: string[] }>(worker);
    await delay(SETTLE_MS);
    for (const end of ends) end.close();
    const { closed } = await within(reported, WAIT_MS, `the worker seeing ${count} closes`);
    assert.deepEqual(closed, Array(count).fill('peer'));
    assert.deepEqual(await exited, [0]);
  } finally {
    await worker.terminate();
  }
}

describe('worker transport: what wakes the other thread', () => {
  it('a sender sleeping for room is woken when the reader in a worker takes one message and its task ends', {
    timeout: 60_000,
  }, async () => {
    // Capacity 8: one message taken is far below half the queue and far from draining it, so
    // only the end of the reader's task is left to wake this sender.
    const [here, there] = Channel.pair({ capacity: 8 });
    const worker = startWorker('hold', exportEndpoint(there));
    try {
      assert.equal(await nextMessage(worker), 'ready');
      for (let i = 0; i < 8; i++) here.send({ type: i });
      // Each rejects with TIMEOUT, saying what it waited for, if the reader never wakes us.
      const sent = here.sendWait({ type: 8 }, { timeoutMs: WAIT_MS });
      await delay(SETTLE_MS);
      worker.postMessage({ take: 1 });
      assert.deepEqual(await nextMessage(worker), [0]);
      await sent;
      // Full again: the same for a sender that waits with writable().
      const room = here.writable(0, { timeoutMs: WAIT_MS });
      await delay(SETTLE_MS);
      worker.postMessage({ take: 1 });
      assert.deepEqual(await nextMessage(worker), [1]);
      await room;
      here.send({ type: 9 });
      assert.equal(here.stats.sent, 10);
    } finally {
      here.close();
      await worker.terminate();
    }
  });

  it(
    'a close here reaches an end in a worker that only awaits `closed` (no recv, no sendWait)',
    {
      timeout: 60_000,
    },
    () => closedHereSeenThere(1),
  );

  it(
    '200 closes here at once (more than a thread mailbox holds) all reach the ends in a worker',
    {
      timeout: 60_000,
    },
    () => closedHereSeenThere(200),
  );

  it('a close in a worker reaches an end here that only awaits `closed`', {
    timeout: 60_000,
  }, async () => {
    const { worker, ends, exited } = await endsInWorker(1);
    try {
      await delay(SETTLE_MS);
      worker.postMessage('close');
      const reasons = Promise.all(ends.map((end) => end.closed));
      assert.deepEqual(await within(reasons, WAIT_MS, 'the close in the worker seen here'), [
        'peer',
      ]);
      assert.deepEqual(await nextMessage(worker), { closed: ['local'] });
      assert.deepEqual(await exited, [0]);
    } finally {
      for (const end of ends) end.close();
      await worker.terminate();
    }
  });
});
