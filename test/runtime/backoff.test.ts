import assert from 'node:assert/strict';
import { availableParallelism, loadavg } from 'node:os';
import { it } from 'node:test';
import { fixture, Run } from './helpers.js';

it('restart backoff doubles for each failure in a row, up to maxBackoffMs', async () => {
  const run = new Run(`
services:
  - name: flaky
    module: ${fixture('fail')}
    restart: { policy: on-failure, limit: 4, backoffMs: 100, maxBackoffMs: 250 }
`);
  await run.system.done;
  // From each failure to the next start: the backoff really waited, not just announced.
  const gaps: number[] = [];
  let failedAt: number | undefined;
  for (const [i, event] of run.events.entries()) {
    const at = run.eventTimes[i] as number;
    if (event.kind === 'exit') failedAt = at;
    if (event.kind === 'start' && failedAt !== undefined) gaps.push(at - failedAt);
  }
  assert.deepEqual(
    run.events.filter((e) => e.kind === 'restart').map((e) => e.delayMs),
    [100, 200, 250, 250],
  );
  assert.equal(gaps.length, 4, `gaps: ${gaps}`);
  const expected = [100, 200, 250, 250];
  for (const [i, gap] of gaps.entries()) {
    // Timers never fire early; 1 ms for the clocks' rounding.
    assert.ok(gap >= (expected[i] as number) - 1, `restart ${i + 1} after ${gap} ms: ${gaps}`);
  }
  // Capped: without the cap the last wait would be 800 ms. On a machine busier than its cores
  // a start takes hundreds of ms longer (655 ms after a 100 ms backoff, under load 15): the
  // clock measures the other work there, and the delays announced above show the cap.
  if ((loadavg()[0] as number) < availableParallelism()) {
    assert.ok((gaps[3] as number) < 700, `the last restart waited ${gaps[3]} ms: ${gaps}`);
  }
});
