/**
 * The bound through bridges: an end moved to another process, whose peer stays here, may fill
 * the peer's queue exactly to capacity (counting what was queued before the move), again after
 * credits come back, and never further; nothing is lost on the way.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Channel,
  connect,
  exportEndpoint,
  importEndpoint,
  isIpcError,
  listen,
  privateSocketPath,
  type SpawnedProcess,
  spawnProcess,
} from '../../../src/index.js';
import { delivered, throwsCode } from '../../channel/helpers.js';
import { Relay } from '../worker/workers.js';
import { child } from './helpers.js';

const CAPACITY = 4;
const PREFILLED = 2;

/** Sends k messages waiting for room, then one more without: true if that one met BACKPRESSURE. */
type Fill = (k: number) => Promise<boolean>;

/**
 * `x` has already sent PREFILLED messages (types from 0) to `y` and was then moved away; `fill`
 * sends on the moved end, with types counting on.
 */
async function boundHolds(y: Channel, fill: Fill, closeSender: () => void): Promise<void> {
  assert.equal(await fill(CAPACITY - PREFILLED), true, 'BACKPRESSURE once the queue is full');
  await delivered(y, CAPACITY);
  const taken: number[] = [];
  for (let i = 0; i < 3; i++) taken.push((await y.recv()).type);
  // Credits for the three come back; exactly three more fit, then BACKPRESSURE again.
  assert.equal(await fill(3), true, 'BACKPRESSURE once the returned room is used up');
  await delivered(y, CAPACITY);
  assert.equal(y.stats.highWaterMark, CAPACITY);
  closeSender();
  for await (const m of y) taken.push(m.type);
  const sent = PREFILLED + (CAPACITY - PREFILLED) + 3;
  assert.deepEqual(
    taken,
    Array.from({ length: sent }, (_, i) => i),
    'every message arrives once, in order',
  );
  assert.equal(y.stats.received, sent);
  assert.equal(y.stats.dropped + y.stats.discarded, 0);
}

function prefilledPair(): [Channel, Channel] {
  const [x, y] = Channel.pair({ capacity: CAPACITY });
  for (let i = 0; i < PREFILLED; i++) x.send({ type: i });
  return [x, y];
}

describe('the bound through bridges', () => {
  it('one process hop: a child sending on the moved end fills the queue here exactly', async () => {
    const [x, y] = prefilledPair();
    const [control, controlThere] = Channel.pair();
    const proc = await spawnProcess(child('filler'), {
      channels: { end: x, control: controlThere },
      args: [String(PREFILLED)],
    });
    const fill: Fill = async (k) => {
      await control.sendWait({ type: k });
      return (await control.recv()).type === 1;
    };
    try {
      await boundHolds(y, fill, () => control.close());
    } finally {
      // Also when the bound broke: the child may be stuck in a sendWait then.
      control.close();
      proc.child.kill();
      await proc.exited;
    }
  });

  describe('two process hops', () => {
    let relay: Channel;
    let echo: SpawnedProcess;
    before(async () => {
      const [here, there] = Channel.pair();
      relay = here;
      echo = await spawnProcess(child('echo'), { channels: { relay: there } });
    });
    after(async () => {
      relay.close();
      echo.child.kill();
      await echo.exited;
    });

    it('an end sent to a child and back fills the queue of its peer exactly', async () => {
      const [x, y] = prefilledPair();
      await relay.sendWait({ type: 0, handles: [x] });
      const [back] = (await relay.recv()).handles as [Channel];
      let next = PREFILLED;
      const fill: Fill = async (k) => {
        for (let i = 0; i < k; i++) await back.sendWait({ type: next++ });
        try {
          back.send({ type: next });
          next++;
          return false;
        } catch (err) {
          if (isIpcError(err, 'BACKPRESSURE')) return true;
          throw err;
        }
      };
      try {
        await boundHolds(y, fill, () => back.close());
      } finally {
        back.close();
        y.close();
      }
    });
  });

  /*
   * The other way: the peer here sends to the moved end, which reads only when told. What the
   * bridge passed on stays counted here until the far side returns its credit, so the sender
   * here meets BACKPRESSURE at capacity however far the messages have travelled.
   */
  const relay = new Relay();
  after(() => relay.stop());
  const pairs: [string, () => Promise<[Channel, Channel]>][] = [
    ['a pair in this thread', async () => Channel.pair({ capacity: CAPACITY })],
    [
      'a pair over shared memory',
      async () => {
        const [x, y] = Channel.pair({ capacity: CAPACITY });
        return [importEndpoint(await relay.bounce(exportEndpoint(x))), y];
      },
    ],
  ];
  for (const [name, makePair] of pairs) {
    // Its own timeout, below the file's: a broken count can leave sendWait waiting forever.
    it(`sending to a moved end that does not read holds the bound here (${name})`, {
      timeout: 20_000,
    }, async () => {
      const [x, y] = await makePair();
      const [control, controlThere] = Channel.pair();
      const proc = await spawnProcess(child('taker'), {
        channels: { end: x, control: controlThere },
      });
      const take = async (k: number) => {
        await control.sendWait({ type: k });
        return (await control.recv()).type;
      };
      try {
        for (let i = 0; i < CAPACITY; i++) y.send({ type: i });
        throwsCode(() => y.send({ type: CAPACITY }), 'BACKPRESSURE');
        // Time for the bridge to pass them all on: the room must not come back by that.
        await new Promise((resolve) => setTimeout(resolve, 200));
        throwsCode(() => y.send({ type: CAPACITY }), 'BACKPRESSURE');
        assert.equal(await take(3), 2);
        for (let i = CAPACITY; i < CAPACITY + 3; i++) await y.sendWait({ type: i });
        throwsCode(() => y.send({ type: CAPACITY + 3 }), 'BACKPRESSURE');
        assert.equal(await take(CAPACITY), CAPACITY + 2, 'all arrived, in order');
      } finally {
        control.close();
        y.close();
        proc.child.kill();
        await proc.exited;
      }
    });
  }
});

describe('an end passed on from one connection to another', () => {
  it('delivers all its peer sends, however full the output of the connection it came over', async () => {
    // Here: a relay, with an end that came over `first` (whose output budget is one byte)
    // passed on over `second`. What arrives from `second` goes out on `first`.
    const paths = [await privateSocketPath(), await privateSocketPath()];
    const [firstListener, secondListener] = await Promise.all([
      listen({ path: paths[0] as string }, { maxOutputBytes: 1 }),
      listen({ path: paths[1] as string }),
    ]);
    const [origin, first] = await Promise.all([
      connect({ path: paths[0] as string }),
      firstListener.accept() as Promise<Channel>,
    ]);
    const [far, second] = await Promise.all([
      connect({ path: paths[1] as string }),
      secondListener.accept() as Promise<Channel>,
    ]);
    const [mine, moved] = Channel.pair({ capacity: 64 });
    origin.send({ type: 0, handles: [moved] });
    const arrived = (await first.recv()).handles[0] as Channel;
    second.send({ type: 0, handles: [arrived] });
    const end = (await far.recv()).handles[0] as Channel;
    let sent = 0;
    while (end.send({ type: sent, data: new Uint8Array(100) }, { onFull: 'drop' })) sent++;
    assert.equal(sent, 64);
    end.close();
    const types: number[] = [];
    for await (const m of mine) types.push(m.type);
    assert.deepEqual(
      types,
      Array.from({ length: 64 }, (_, i) => i),
    );
    for (const ch of [mine, origin, first, far, second]) ch.close();
    await Promise.all([firstListener.close(), secondListener.close()]);
    for (const path of paths) await rm(dirname(path), { recursive: true, force: true });
  });
});
