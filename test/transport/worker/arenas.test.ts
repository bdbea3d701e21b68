/** The arenas of shared memory: threads with arenas of their own, and growth made visible. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Channel, exportEndpoint, importEndpoint, sharedMemoryStats } from '../../../src/index.js';
import { homeArena, KIND_RING } from '../../../src/shm/arena.js';
import { within } from '../../channel/helpers.js';

it('a worker started before its parent loaded the library: a channel from the parent reaches it inside a message', async () => {
  const script = new URL('./late-import.js', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
  assert.deepEqual(JSON.parse(stdout), { arenas: 2, reply: 8 });
});

it('an arena that grows says so on ftl-ipc:worker:arena, with the figures of sharedMemoryStats', () => {
  const events: { event: string; size: number; reserved: number }[] = [];
  const listener = (message: unknown) => events.push(message as (typeof events)[number]);
  diagnosticsChannel.subscribe('ftl-ipc:worker:arena', listener);
  const pairs: Channel[] = [];
  const start = (sharedMemoryStats()[0] as { size: number }).size;
  while ((sharedMemoryStats()[0] as { size: number }).size === start) {
    const [a, b] = Channel.pair();
    pairs.push(a, importEndpoint(exportEndpoint(b)));
  }
  diagnosticsChannel.unsubscribe('ftl-ipc:worker:arena', listener);
  for (const p of pairs) p.close();
  const grown = events.find((e) => e.event === 'grow');
  assert.ok(grown !== undefined, 'a grow event');
  assert.ok(grown.size > start && grown.reserved >= grown.size);
});

/** Grows the home arena past RETIRE_ABOVE, then lets it fall nearly idle: it retires. */
function retireHome(): ReturnType<typeof homeArena> {
  const arena = homeArena();
  const big = Array.from({ length: 5 }, () => arena.alloc(16 * 2 ** 20, KIND_RING));
  for (const b of big) arena.free(b);
  assert.ok(arena.retired, 'the arena retired');
  return arena;
}

it('a worker started after its parent moved on from a retired arena: an end of a pair still in that arena reaches it inside a message', {
  timeout: 30_000,
}, async () => {
  // A pair made before the home arena retires, both sides shared, that stays in it.
  const [mine, away] = Channel.pair();
  const far = importEndpoint(exportEndpoint(away));
  const arena = retireHome();
  // The worker's control channel is made in the successor, the worker's home.
  const [ctrl, theirs] = Channel.pair();
  const token = exportEndpoint(theirs);
  assert.notEqual(token.arena, arena.id, 'the control channel is in the new arena');
  const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
    workerData: { scenario: 'echoHandles', token },
    transferList: token.transfer,
  });
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  try {
    await ctrl.sendWait({ type: 1, handles: [far] });
    await within(Promise.race([ctrl.recv(), failed]), 10_000, 'the worker to take the end');
    mine.send({ type: 5 });
    const echo = await within(Promise.race([mine.recv(), failed]), 10_000, 'the echo');
    assert.equal(echo.type, 6);
  } finally {
    mine.close();
    ctrl.close();
    await worker.terminate();
  }
});

it('an arena its parent made after starting a worker, before the worker listened for announcements: an end in it reaches the worker inside a message', {
  timeout: 30_000,
}, async () => {
  const [ctrl, theirs] = Channel.pair();
  const token = exportEndpoint(theirs);
  const old = retireHome();
  const worker = new Worker(new URL('./arena-worker.js', import.meta.url), {
    workerData: { scenario: 'echoHandles', token },
    transferList: token.transfer,
  });
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  // Made now, while the worker is still loading: its environment data did not have it, and
  // the announcement went out before it listened.
  const [mine, away] = Channel.pair();
  try {
    await ctrl.sendWait({ type: 1, handles: [away] });
    const [a] = sharedMemoryStats().slice(-1);
    assert.notEqual(a?.id, old.id, 'the end is in a new arena');
    await within(Promise.race([ctrl.recv(), failed]), 10_000, 'the worker to take the end');
    mine.send({ type: 5 });
    const echo = await within(Promise.race([mine.recv(), failed]), 10_000, 'the echo');
    assert.equal(echo.type, 6);
  } finally {
    mine.close();
    ctrl.close();
    await worker.terminate();
  }
});
