/**
 * Ends in flight between a worker and this thread when `terminate()` ends the worker (issue 26:
 * the soak's flows hung on ends that died in transit, and live blocks crept per death).
 * terminate() stops a thread between any two stores, so a send can be cut anywhere: before its
 * record is published, after it, or between the two. Whatever the point, every end comes
 * through: it arrives here and works, or its peer sees PEER_CLOSED; and no block is left.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  Channel,
  DataPipe,
  exportEndpoint,
  type Handle,
  importEndpoint,
  sharedMemoryStats,
} from '../../../src/index.js';
import { rejectsCode, state, within } from '../../channel/helpers.js';

function liveBlocks(): number {
  return sharedMemoryStats().reduce((sum, a) => sum + a.liveBlocks, 0);
}

// This thread's own entry in the arena is made on first use: it stays.
const [warm, other] = Channel.pair();
importEndpoint(exportEndpoint(other)).close();
warm.close();

it('ends bounced between this thread and a worker terminated at a random point: each arrives and works or its peer sees PEER_CLOSED, and every block comes back', {
  timeout: 120_000,
}, async () => {
  const before = liveBlocks();
  const ENDS = 16;
  for (let round = 0; round < Number(process.env.ROUNDS ?? 40); round++) {
    const [ctrl, theirs] = Channel.pair();
    const token = exportEndpoint(theirs);
    const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
      workerData: { scenario: 'bounceHandles', token },
      transferList: token.transfer,
    });
    const pairs = Array.from({ length: ENDS }, () => Channel.pair());
    /** Far ends that are back here when the worker is gone, by pair. */
    const back = new Map<number, Channel>();
    const bouncing = (async () => {
      for await (const m of ctrl) {
        const h = m.handles[0] as Channel;
        try {
          await ctrl.sendWait({ type: m.type, handles: [h] });
        } catch {
          back.set(m.type, h);
        }
      }
    })();
    for (let i = 0; i < ENDS; i++) {
      await ctrl.sendWait({ type: i, handles: [(pairs[i] as [Channel, Channel])[1]] });
    }
    await within(
      new Promise((resolve) => worker.once('online', resolve)),
      10_000,
      'the worker to start',
    );
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    await worker.terminate();
    await within(bouncing, 10_000, `round ${round}: the control channel to drain`);
    for (let i = 0; i < ENDS; i++) {
      const [mine] = pairs[i] as [Channel, Channel];
      const far = back.get(i);
      if (far === undefined) {
        await within(mine.closed, 5_000, `round ${round}: end ${i}'s peer to close`);
        continue;
      }
      assert.equal(await state(mine.closed, 0), 'pending', `round ${round}: end ${i} came back`);
      mine.send({ type: 1, data: new Uint8Array(8) });
      assert.equal((await within(far.recv(), 5_000, `round ${round}: end ${i} to read`)).type, 1);
      far.send({ type: 2 });
      assert.equal((await within(mine.recv(), 5_000, `round ${round}: end ${i}'s peer`)).type, 2);
      far.close();
    }
    for (const [mine] of pairs) mine.close();
    ctrl.close();
    assert.equal(liveBlocks(), before, `round ${round}: ${liveBlocks() - before} blocks left`);
  }
});

/** Sends `away` to a worker that sends it back and is terminated before this thread reads it. */
async function sentBackBy(cutShort: 'published' | 'unpublished', away: Handle): Promise<Channel> {
  const [ctrl, theirs] = Channel.pair();
  const token = exportEndpoint(theirs);
  const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
    workerData: { scenario: 'sendBack', token, cutShort },
    transferList: token.transfer,
  });
  await ctrl.sendWait({ type: 7, handles: [away] });
  await within(
    new Promise((resolve) => worker.once('message', resolve)),
    10_000,
    'the worker to send the end back',
  );
  await worker.terminate();
  return ctrl;
}

it("a worker terminated after the message carrying an end was published, before its send returned: the end is the reader's and works", {
  timeout: 30_000,
}, async () => {
  const before = liveBlocks();
  const [mine, away] = Channel.pair();
  const ctrl = await sentBackBy('published', away);
  const m = await within(ctrl.recv(), 5_000, 'the message carrying the end');
  const far = m.handles[0] as Channel;
  assert.equal(await state(mine.closed, 100), 'pending', 'the end came back: its peer is open');
  mine.send({ type: 1, data: new Uint8Array(8) });
  assert.equal((await within(far.recv(), 5_000, 'the end to read')).type, 1);
  far.send({ type: 2 });
  assert.equal((await within(mine.recv(), 5_000, 'its peer to read')).type, 2);
  mine.close();
  await within(far.closed, 5_000, 'the end to see its peer close');
  far.close();
  ctrl.close();
  assert.equal(liveBlocks(), before, `${liveBlocks() - before} blocks left`);
});

it('a worker terminated after an end was handed to a message, before the message was published: the end closes, and its peer sees PEER_CLOSED', {
  timeout: 30_000,
}, async () => {
  const before = liveBlocks();
  const [mine, away] = Channel.pair();
  const ctrl = await sentBackBy('unpublished', away);
  assert.equal(await within(mine.closed, 5_000, 'the end that died in transit to close'), 'peer');
  await rejectsCode(mine.recv(), 'PEER_CLOSED');
  assert.equal(await state(ctrl.recv(), 100), 'rejected', 'nothing arrives on the control channel');
  mine.close();
  ctrl.close();
  assert.equal(liveBlocks(), before, `${liveBlocks() - before} blocks left`);
});

it('the same for a pipe end: the end closes, and the end that stayed sees it', {
  timeout: 30_000,
}, async () => {
  const before = liveBlocks();
  const [producer, consumer] = DataPipe.create({ capacityBytes: 4096 });
  const ctrl = await sentBackBy('unpublished', consumer);
  await within(producer.closed, 5_000, 'the producer to see its consumer gone');
  producer.close();
  ctrl.close();
  assert.equal(liveBlocks(), before, `${liveBlocks() - before} blocks left`);
});
