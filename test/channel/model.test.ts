/**
 * Model-based test: random sequences of sends (every strategy, with and without handles),
 * receives and closes on one pair, checked step by step against a small reference model.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { Channel, type IpcErrorCode, isIpcError, type OnFull } from '../../src/index.js';

interface Sent {
  id: number;
  size: number;
  /** The peer of a channel handle sent with the message, kept to check the handle still works. */
  peerOfHandle: Channel | undefined;
}

interface Model {
  capacity: number;
  capacityBytes: number;
  queues: [Sent[], Sent[]];
  closed: [boolean, boolean];
  nextId: number;
}

interface Real {
  ends: [Channel, Channel];
}

type Side = 0 | 1;
const other = (side: Side): Side => (side === 0 ? 1 : 0);
const queuedBytes = (q: Sent[]) => q.reduce((n, m) => n + m.size, 0);

function expectCode(fn: () => unknown, code: IpcErrorCode): void {
  assert.throws(fn, (err: unknown) => isIpcError(err) && err.code === code);
}

class Send implements fc.Command<Model, Real> {
  readonly side: Side;
  readonly size: number;
  readonly onFull: OnFull;
  readonly withHandle: boolean;
  constructor(side: Side, size: number, onFull: OnFull, withHandle: boolean) {
    this.side = side;
    this.size = size;
    this.onFull = onFull;
    this.withHandle = withHandle;
  }
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    const sender = real.ends[this.side];
    const queue = model.queues[other(this.side)];
    const id = model.nextId++;
    const [handle, peerOfHandle] = this.withHandle ? Channel.pair() : [undefined, undefined];
    const message = {
      type: id,
      data: new Uint8Array(this.size).fill(id & 0xff),
      ...(handle ? { handles: [handle] } : {}),
    };
    const send = () => sender.send(message, { onFull: this.onFull });
    const handleStillOurs = () => {
      if (handle === undefined || peerOfHandle === undefined) return;
      handle.send({ type: 1 });
      assert.equal(peerOfHandle.tryRecv()?.type, 1);
      handle.close();
    };
    if (model.closed[this.side]) {
      expectCode(send, 'CLOSED');
      handleStillOurs();
    } else if (model.closed[other(this.side)]) {
      expectCode(send, 'PEER_CLOSED');
      handleStillOurs();
    } else if (
      queue.length >= model.capacity ||
      queuedBytes(queue) + this.size > model.capacityBytes
    ) {
      if (this.onFull === 'throw') expectCode(send, 'BACKPRESSURE');
      else assert.equal(send(), false);
      if (this.onFull === 'close') model.closed[this.side] = true;
      handleStillOurs();
    } else {
      assert.equal(send(), true);
      queue.push({ id, size: this.size, peerOfHandle });
      if (handle) expectCode(() => handle.send({ type: 1 }), 'CLOSED');
    }
    assert.equal(
      real.ends[other(this.side)].stats.queuedMessages,
      model.closed[other(this.side)] ? 0 : queue.length,
    );
  }
  toString(): string {
    return `send(${this.side}, ${this.size}B, ${this.onFull}${this.withHandle ? ', handle' : ''})`;
  }
}

class TryRecv implements fc.Command<Model, Real> {
  readonly side: Side;
  constructor(side: Side) {
    this.side = side;
  }
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    const receiver = real.ends[this.side];
    const queue = model.queues[this.side];
    if (model.closed[this.side]) {
      expectCode(() => receiver.tryRecv(), 'CLOSED');
      return;
    }
    const expected = queue.shift();
    if (expected !== undefined) {
      const message = receiver.tryRecv();
      assert.ok(message);
      assert.equal(message.type, expected.id);
      assert.equal(message.data.byteLength, expected.size);
      assert.ok(message.data.every((b) => b === (expected.id & 0xff)));
      assert.equal(message.handles.length, expected.peerOfHandle ? 1 : 0);
      const [moved] = message.handles as Channel[];
      if (moved && expected.peerOfHandle) {
        moved.send({ type: 2 });
        assert.equal(expected.peerOfHandle.tryRecv()?.type, 2);
        moved.close();
      }
    } else if (model.closed[other(this.side)]) {
      expectCode(() => receiver.tryRecv(), 'PEER_CLOSED');
    } else {
      assert.equal(receiver.tryRecv(), undefined);
    }
  }
  toString(): string {
    return `tryRecv(${this.side})`;
  }
}

class Close implements fc.Command<Model, Real> {
  readonly side: Side;
  constructor(side: Side) {
    this.side = side;
  }
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    real.ends[this.side].close();
    if (!model.closed[this.side]) {
      // Unread messages die with the endpoint, and so do the handles they carry.
      for (const m of model.queues[this.side]) {
        if (m.peerOfHandle) expectCode(() => m.peerOfHandle?.send({ type: 3 }), 'PEER_CLOSED');
      }
      model.queues[this.side] = [];
    }
    model.closed[this.side] = true;
  }
  toString(): string {
    return `close(${this.side})`;
  }
}

const side = fc.constantFrom<Side>(0, 1);
const commands = fc.commands(
  [
    fc
      .tuple(
        side,
        fc.integer({ min: 0, max: 8 }),
        fc.constantFrom<OnFull>('throw', 'drop', 'close'),
        fc.boolean(),
      )
      .map(([s, size, onFull, withHandle]) => new Send(s, size, onFull, withHandle)),
    side.map((s) => new TryRecv(s)),
    side.map((s) => new TryRecv(s)),
    side.map((s) => new Close(s)),
  ],
  { maxCommands: 60 },
);

it('a channel pair behaves like the reference model', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 8, max: 24 }),
      commands,
      (capacity, capacityBytes, cmds) => {
        const ends = Channel.pair({ capacity, capacityBytes, maxMessageBytes: 8 });
        const model: Model = {
          capacity,
          capacityBytes,
          queues: [[], []],
          closed: [false, false],
          nextId: 1,
        };
        fc.modelRun(() => ({ model, real: { ends } }), cmds);
      },
    ),
    { numRuns: 3000 },
  );
});

it('waiting senders and receivers deliver everything in order under any interleaving', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.constantFrom('send', 'recv', 'yield'), { minLength: 1, maxLength: 60 }),
      async (capacity, schedule) => {
        const [a, b] = Channel.pair({ capacity });
        const sends: Promise<void>[] = [];
        const received: number[] = [];
        for (const step of schedule) {
          if (step === 'send') sends.push(a.sendWait({ type: sends.length }));
          else if (step === 'recv' && received.length < sends.length) {
            received.push((await b.recv()).type);
          } else await Promise.resolve();
        }
        while (received.length < sends.length) received.push((await b.recv()).type);
        await Promise.all(sends);
        assert.deepEqual(
          received,
          sends.map((_, i) => i),
        );
        assert.equal(a.stats.sent, sends.length);
      },
    ),
    { numRuns: 1000 },
  );
});

/**
 * The low-water mark: waiting senders (sendWait, writable) resume only once the peer's queue is
 * at most half full, while `send` still succeeds up to capacity exactly. Random sends, waits and
 * receives on one pair, checked after each step against a model; every step runs in microtasks
 * only, so the grace timer (a macrotask) never fires here.
 */
interface WaitModel {
  capacity: number;
  queue: number[];
  sendWaiting: number[];
  writableWaiting: number[];
  resolved: Set<number>;
  nextId: number;
}

interface WaitReal {
  a: Channel;
  b: Channel;
  resolved: Set<number>;
}

type WaitCommand = fc.AsyncCommand<WaitModel, WaitReal>;
/** Waits still pending when a run ends reject with CLOSED as its pair closes. */
const ignoreClosed = () => {};

/** Serves the model's waiters as the channel must after the receiver took a message. */
function serveModel(model: WaitModel): void {
  const free = model.capacity - model.queue.length;
  if (free < Math.ceil(model.capacity / 2)) return;
  while (model.sendWaiting.length > 0 && model.queue.length < model.capacity) {
    const id = model.sendWaiting.shift() as number;
    model.queue.push(id);
    model.resolved.add(id);
  }
  if (model.sendWaiting.length > 0 || model.queue.length >= model.capacity) return;
  for (const id of model.writableWaiting) model.resolved.add(id);
  model.writableWaiting = [];
}

async function checkWaits(model: WaitModel, real: WaitReal): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  assert.equal(real.b.stats.queuedMessages, model.queue.length);
  assert.ok(model.queue.length <= model.capacity, 'the bound holds');
  assert.deepEqual([...real.resolved].sort(), [...model.resolved].sort());
}

const waitStep = (
  name: string,
  step: (model: WaitModel, real: WaitReal) => void,
): fc.Arbitrary<WaitCommand> =>
  fc.constant({
    check: () => true,
    async run(model: WaitModel, real: WaitReal) {
      step(model, real);
      await checkWaits(model, real);
    },
    toString: () => name,
  });

const waitCommands = fc.commands(
  [
    waitStep('send', (model, real) => {
      const id = model.nextId++;
      const room = model.queue.length < model.capacity;
      assert.equal(real.a.send({ type: id }, { onFull: 'drop' }), room, 'send fails at capacity');
      if (room) model.queue.push(id);
    }),
    waitStep('sendWait', (model, real) => {
      const id = model.nextId++;
      real.a.sendWait({ type: id }).then(() => real.resolved.add(id), ignoreClosed);
      if (model.sendWaiting.length === 0 && model.queue.length < model.capacity) {
        model.queue.push(id);
        model.resolved.add(id);
      } else model.sendWaiting.push(id);
    }),
    waitStep('writable', (model, real) => {
      const id = model.nextId++;
      real.a.writable().then(() => real.resolved.add(id), ignoreClosed);
      if (model.sendWaiting.length === 0 && model.queue.length < model.capacity) {
        model.resolved.add(id);
      } else model.writableWaiting.push(id);
    }),
    waitStep('tryRecv', (model, real) => {
      assert.equal(real.b.tryRecv()?.type, model.queue.shift());
      serveModel(model);
    }),
    waitStep('tryRecv', (model, real) => {
      assert.equal(real.b.tryRecv()?.type, model.queue.shift());
      serveModel(model);
    }),
  ],
  { maxCommands: 80 },
);

it('waiting senders resume at the low-water mark; send still fails exactly at capacity', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 6 }), waitCommands, async (capacity, cmds) => {
      const [a, b] = Channel.pair({ capacity });
      const model: WaitModel = {
        capacity,
        queue: [],
        sendWaiting: [],
        writableWaiting: [],
        resolved: new Set(),
        nextId: 1,
      };
      await fc.asyncModelRun(() => ({ model, real: { a, b, resolved: new Set() } }), cmds);
      a.close();
      b.close();
    }),
    { numRuns: 1000 },
  );
});

it('a receiver that stops short of the low-water mark still lets a waiting sender go', async () => {
  const [a, b] = Channel.pair({ capacity: 8 });
  for (let i = 0; i < 8; i++) a.send({ type: i });
  let sent = false;
  const waiting = a.sendWait({ type: 8 }).then(() => {
    sent = true;
  });
  b.tryRecv();
  for (let i = 0; i < 10; i++) await Promise.resolve();
  assert.equal(sent, false, 'one free slot of eight is below the mark');
  await waiting; // after the grace period
  assert.equal(b.stats.queuedMessages, 8);
  a.close();
});
