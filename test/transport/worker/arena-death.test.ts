/**
 * Workers that die holding ends leave no shared memory behind (issue 26: one block leaked per
 * worker death, the dead thread's own entry).
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
import { within } from '../../channel/helpers.js';

function liveBlocks(): number {
  return sharedMemoryStats().reduce((sum, a) => sum + a.liveBlocks, 0);
}

it('9 cycles of a worker that takes 1,000 channels and 10 pipe ends and dies: every block comes back', {
  timeout: 120_000,
}, async () => {
  // This thread's own entry in the arena is made on first use: it stays.
  const [warm, other] = Channel.pair();
  importEndpoint(exportEndpoint(other)).close();
  warm.close();
  const before = liveBlocks();
  for (let cycle = 0; cycle < 9; cycle++) {
    const [ctrl, theirs] = Channel.pair();
    const token = exportEndpoint(theirs);
    const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
      workerData: { scenario: 'holdHandles', token },
      transferList: token.transfer,
    });
    const kept: { closed: Promise<unknown>; close(): void }[] = [];
    for (let i = 0; i < 1000; i += 10) {
      const handles: Handle[] = [];
      for (let j = 0; j < 10; j++) {
        const [mine, away] = Channel.pair();
        // A message waits in each direction: the dead worker's rings must go too.
        mine.send({ type: j, data: new Uint8Array(100) });
        kept.push(mine);
        handles.push(away);
      }
      if (i % 100 === 0) {
        const [producer, consumer] = DataPipe.create({ capacityBytes: 4096 });
        producer.write(new Uint8Array(10));
        kept.push(producer);
        handles.push(consumer);
      }
      await ctrl.sendWait({ type: i, handles });
      await ctrl.recv();
    }
    await worker.terminate();
    await Promise.all(kept.map((k) => k.closed.catch(() => undefined)));
    for (const k of kept) k.close();
    ctrl.close();
    assert.equal(liveBlocks(), before, `cycle ${cycle}: ${liveBlocks() - before} blocks left`);
  }
});

it('a worker that dies after a newer one died and its entry went to a third: its ends still close (the soak of issue 26 hung on them)', {
  timeout: 60_000,
}, async () => {
  /** A worker that imports one end and holds it; resolves when it has. */
  const start = async (): Promise<{ worker: Worker; mine: Channel }> => {
    const [mine, theirs] = Channel.pair();
    const token = exportEndpoint(theirs);
    const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
      workerData: { scenario: 'importOnly', token },
      transferList: token.transfer,
    });
    await within(
      new Promise((resolve) => worker.once('message', resolve)),
      10_000,
      'the worker to import its end',
    );
    return { worker, mine };
  };
  const oldest = await start();
  const newer = await start();
  await newer.worker.terminate();
  await within(newer.mine.closed, 5_000, 'the newer worker end to close');
  // Takes the newer worker's vacant entry, which stands before the oldest one's in the list.
  const third = await start();
  await oldest.worker.terminate();
  await within(oldest.mine.closed, 5_000, "the oldest worker's end to close");
  await third.worker.terminate();
  await within(third.mine.closed, 5_000, "the third worker's end to close");
  for (const w of [oldest, newer, third]) w.mine.close();
});
