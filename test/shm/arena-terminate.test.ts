/**
 * Threads ended by `worker.terminate()` while they allocate (issue 26: a 10-minute soak stalled
 * after 6 minutes of worker deaths). terminate() can stop a thread between any two stores, so
 * one that held the allocator's lock left it held, and every thread of the process then blocked
 * at its next allocation. The lock word names its holder; the parent that sees it exit takes
 * the lock over and rebuilds the free lists.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { homeArena, KIND_RING, LOCK } from '../../src/shm/arena.js';
import { within } from '../channel/helpers.js';

const arenaModule = new URL('../../src/shm/arena.js', import.meta.url).href;

/** A worker that registers in the home arena, says so, then runs `body` (a script's text). */
function worker(body: string): Worker {
  return new Worker(
    `const { parentPort } = require('node:worker_threads');
     import(${JSON.stringify(arenaModule)}).then(({ homeArena }) => {
       const arena = homeArena();
       arena.thread;
       parentPort.postMessage('ready');
       ${body}
     });`,
    { eval: true },
  );
}

const ready = (w: Worker) =>
  within(new Promise((resolve) => w.once('message', resolve)), 10_000, 'the worker to start');

const exited = (w: Worker) =>
  within(new Promise((resolve) => w.once('exit', resolve)), 10_000, 'the worker to exit');

it('a thread that dies holding the allocator lock: its parent takes the lock over, and allocation goes on', async () => {
  const arena = homeArena();
  arena.thread;
  const recovered: unknown[] = [];
  const onEvent = (m: unknown) => {
    if ((m as { event: string }).event === 'recover') recovered.push(m);
  };
  diagnosticsChannel.subscribe('ftl-ipc:worker:arena', onEvent);
  try {
    // What a terminate() between taking the lock and letting go of it leaves behind.
    const w = worker(`Atomics.store(arena.i32, ${LOCK}, arena.entry);
      parentPort.postMessage('held');
      setInterval(() => {}, 1000);`);
    await ready(w);
    await within(new Promise((resolve) => w.once('message', resolve)), 10_000, 'the lock taken');
    assert.notEqual(Atomics.load(arena.i32, LOCK), 0);
    const gone = exited(w);
    await w.terminate();
    await gone;
    assert.equal(Atomics.load(arena.i32, LOCK), 0, 'the lock is free after the exit');
    assert.equal(recovered.length, 1, 'one recover event');
    // Blocks of a class no quick list holds go through the free lists, under the lock.
    const blocks = Array.from({ length: 64 }, () => arena.alloc(3 * 2 ** 20, KIND_RING));
    assert.ok(
      blocks.every((b) => b !== 0),
      'every allocation succeeds',
    );
    for (const b of blocks) arena.free(b);
  } finally {
    diagnosticsChannel.unsubscribe('ftl-ipc:worker:arena', onEvent);
  }
});

it('80 rounds of 3 workers terminated while they allocate and free: the lock is free after each, and blocks never overlap after', async () => {
  const arena = homeArena();
  arena.thread;
  for (let round = 0; round < 80; round++) {
    // Up to 10 blocks held at a time, of sizes that split, merge and go through quick lists.
    const ws = Array.from({ length: 3 }, () =>
      worker(`const held = [];
        const sizes = [16, 100, 1000, 5000, 9000];
        for (let i = 0; ; i++) {
          const p = arena.alloc(sizes[i % 5] * (1 + (i % 7)), ${KIND_RING});
          if (p) held.push(p);
          if (held.length > 10 || (i % 3 === 0 && held.length > 0))
            arena.free(held.splice((i * 7919) % held.length, 1)[0]);
        }`),
    );
    await Promise.all(ws.map(ready));
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
    const gone = Promise.all(ws.map(exited));
    await Promise.all(ws.map((w) => w.terminate()));
    await gone;
    assert.equal(Atomics.load(arena.i32, LOCK), 0, `the lock is free after round ${round}`);
  }
  // Each block filled with its own number: overlapping blocks would overwrite each other.
  const blocks: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const bytes = 16 + ((i * 7919) % 60_000);
    const b = arena.alloc(bytes, KIND_RING);
    assert.notEqual(b, 0, `allocation ${i} of ${bytes} bytes`);
    arena.i32.fill(i, b >> 2, (b + bytes) >> 2);
    blocks.push(b);
  }
  blocks.forEach((b, i) => {
    const bytes = 16 + ((i * 7919) % 60_000);
    const words = arena.i32.subarray(b >> 2, (b + bytes) >> 2);
    assert.ok(
      words.every((v) => v === i),
      `block ${i} at ${b} was overwritten`,
    );
  });
  for (const b of blocks) arena.free(b);
});
