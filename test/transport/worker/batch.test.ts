/** docs/worker.md: a recvBatch() takes at most `capacity` messages, even while the producer adds. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Channel, exportEndpoint } from '../../../src/index.js';
import { delivered } from '../../channel/helpers.js';
import { exitCode, startWorker } from './workers.js';

it('recvBatch takes at most capacity messages while a worker keeps sending', async () => {
  const capacity = 8;
  const count = 20_000;
  const [here, there] = Channel.pair({ capacity });
  const worker = startWorker('stream', exportEndpoint(there), { count });
  // A full queue first: the first batch is a whole queue, later ones race the producer.
  await delivered(here, capacity);
  const types: number[] = [];
  let largest = 0;
  for (;;) {
    const batch = await here.recvBatch().catch(() => undefined);
    if (batch === undefined) break;
    largest = Math.max(largest, batch.length);
    assert.ok(batch.length <= capacity, `a batch of ${batch.length} from a queue of ${capacity}`);
    for (const m of batch) types.push(m.type);
  }
  assert.equal(types.length, count);
  assert.ok(
    types.every((t, i) => t === i),
    'in order, none lost',
  );
  assert.equal(largest, capacity);
  assert.equal(await exitCode(worker), 0);
  here.close();
});
