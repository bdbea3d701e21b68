import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Channel,
  DataPipe,
  type DataPipeConsumer,
  type DataPipeProducer,
  exportEndpoint,
  type Handle,
  type Listener,
  listen,
  privateSocketPath,
  spawnProcess,
} from '../../../src/index.js';
import {
  DESCRIPTOR_BYTES,
  FRAME_CREDIT,
  FRAME_MSG,
  KIND_CHANNEL,
  KIND_PIPE_CONSUMER,
  KIND_PIPE_PRODUCER,
  writeDescriptor,
} from '../../../src/transport/socket/frame.js';
import { rejectsCode, throwsCode } from '../../channel/helpers.js';
import { exitCode, startWorker } from '../worker/workers.js';
import { child, frame, NO_STATS, rawHello, socketErrors, until } from './helpers.js';

// Requests understood by children/piper.ts.
const COPY = 1;
const HOLD = 2;
const DRAIN = 3;
const CLOSE = 4;
const WRITE = 5;

async function piper() {
  const [ctl, theirs] = Channel.pair();
  const proc = await spawnProcess(child('piper'), { channels: { ctl: theirs } });
  const ask = async (type: number, handles: Handle[] = [], data = '') => {
    await ctl.sendWait({ type, data: new TextEncoder().encode(data), handles });
    const answer = await ctl.recv();
    assert.equal(answer.type, type);
    return new TextDecoder().decode(answer.data);
  };
  /** Closes the control channel; the child then exits cleanly. */
  const finish = async () => {
    ctl.close();
    assert.equal((await proc.exited).code, 0);
  };
  return { proc, ask, finish };
}

describe('data pipes over a socket', () => {
  it('several MiB both ways, random chunk sizes across the wrap-around, arrive intact', async () => {
    const { ask, finish } = await piper();
    // Out through a consumer sent to the child, back through a producer sent to it.
    const [outP, outC] = DataPipe.create({ capacityBytes: 100_003 });
    const [backP, backC] = DataPipe.create({ capacityBytes: 77_777 });
    await ask(COPY, [outC, backP]);
    const total = 6 * 1024 * 1024;
    const source = randomBytes(total);
    const writing = (async () => {
      for (let at = 0; at < total; ) {
        const n = Math.min(total - at, 1 + Math.floor(Math.random() * 150_000));
        await writeAllTwoPhase(outP, source.subarray(at, at + n));
        at += n;
      }
      outP.close();
    })();
    const hash = createHash('sha256');
    let received = 0;
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await backC.read(1 + Math.floor(Math.random() * 90_000));
      } catch (err) {
        assert.equal((err as { code: string }).code, 'PEER_CLOSED');
        break;
      }
      hash.update(chunk);
      received += chunk.byteLength;
    }
    await writing;
    assert.equal(received, total);
    assert.equal(hash.digest('hex'), createHash('sha256').update(source).digest('hex'));
    await finish();
  });

  it('holds the bound end to end: capacityBytes in all while the far consumer does not read', async () => {
    const { ask, finish } = await piper();
    const capacity = 10_000;
    const [p, c] = DataPipe.create({ capacityBytes: capacity });
    await ask(HOLD, [c]);
    const chunk = new Uint8Array(1000);
    let written = 0;
    // Keep writing as room appears; the far side's credits must never give more than capacity.
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      written += p.write(chunk, { partial: true });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(written, capacity);
    throwsCode(() => p.write(new Uint8Array(1)), 'BACKPRESSURE');
    assert.equal(p.stats.free, 0);
    // Once the far consumer reads, room comes back.
    const draining = ask(DRAIN);
    await p.writable(capacity, { timeoutMs: 5000 });
    p.write(new Uint8Array(capacity));
    p.close();
    assert.equal(await draining, String(2 * capacity));
    await finish();
  });

  it('producer close: the far consumer drains, then PEER_CLOSED; both ways', async () => {
    const { ask, finish } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [c]);
    p.write(new Uint8Array(3000));
    p.close();
    assert.equal(await ask(DRAIN), '3000');
    await ask(CLOSE);
    // The producer in the child, the consumer here.
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2]);
    await ask(WRITE, [], '2500');
    await ask(CLOSE);
    let n = 0;
    for await (const chunk of c2) n += chunk.byteLength;
    assert.equal(n, 2500);
    await rejectsCode(c2.read(), 'PEER_CLOSED');
    await finish();
  });

  it('an end whose other end is in a worker thread streams on over the socket', async () => {
    // The link that reads the consumer here must be woken from the worker's thread (issue 26:
    // it waited for ever once the consumer's object had been sent away).
    const { ask, finish } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    const [toWorker, forWorker] = Channel.pair();
    const worker = startWorker('pipeWrite', exportEndpoint(forWorker), { count: 64 * 1024 });
    toWorker.send({ type: 0, handles: [p] });
    await ask(HOLD, [c]);
    assert.equal(await ask(DRAIN), String(64 * 1024));
    assert.equal(await exitCode(worker), 0);
    toWorker.close();
    await finish();
  });

  it('consumer close: the far producer fails with PEER_CLOSED; both ways', async () => {
    const { ask, finish } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [c]);
    p.write(new Uint8Array(100));
    await ask(CLOSE);
    await p.closed;
    throwsCode(() => p.write(new Uint8Array(1)), 'PEER_CLOSED');
    // The consumer here, the producer in the child: its writes fail there.
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2]);
    c2.close();
    // The CLOSE goes out within this turn; the request behind it on the same stream.
    await new Promise(setImmediate);
    assert.equal(await ask(WRITE, [], '10'), 'PEER_CLOSED');
    await finish();
  });

  it('kill -9 of the child holding an end: the local end sees its peer closed', async () => {
    const { proc, ask } = await piper();
    const [p, c] = DataPipe.create({ capacityBytes: 4096 });
    const [p2, c2] = DataPipe.create({ capacityBytes: 4096 });
    await ask(HOLD, [p2, c]);
    await ask(WRITE, [], '1234');
    p.write(new Uint8Array(10));
    proc.child.kill('SIGKILL');
    await p.closed;
    throwsCode(() => p.write(new Uint8Array(1)), 'PEER_CLOSED');
    let n = 0;
    for await (const chunk of c2) n += chunk.byteLength;
    assert.equal(n, 1234);
    assert.equal((await proc.exited).signal, 'SIGKILL');
  });
});

/** writeAll through two-phase writes, so that the ring skips tails as well. */
async function writeAllTwoPhase(p: DataPipeProducer, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.byteLength; ) {
    const want = Math.min(bytes.byteLength - at, 1 + Math.floor(Math.random() * 30_000));
    const view = p.beginWrite(Math.min(want, 20_000));
    if (view === undefined) {
      await p.writable(Math.min(want, 20_000));
      continue;
    }
    const n = Math.min(view.byteLength, want);
    view.set(bytes.subarray(at, at + n));
    p.endWrite(n);
    at += n;
  }
}

describe('a peer that breaks the pipe protocol', () => {
  let path: string;
  let listener: Listener;
  before(async () => {
    path = await privateSocketPath();
    listener = await listen({ path });
  });
  after(async () => {
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });

  /** A root MSG opening id 1 as a pipe end of `kind` (1000 bytes), granting `credit` bytes. */
  function openPipe(kind: number, credit = 0): Buffer {
    const d = Buffer.alloc(DESCRIPTOR_BYTES);
    const limits = { capacity: 0, capacityBytes: 1000, maxMessageBytes: 1000, maxHandles: 0 };
    writeDescriptor(d, 0, {
      id: 1,
      kind,
      limits,
      creditMessages: 0,
      creditBytes: credit,
      ...NO_STATS,
    });
    return frame(FRAME_MSG, 0, 0, d, 1);
  }

  /** Sends `frames` raw after the handshake; expects that connection alone closed with `reason`. */
  async function expectRejected(frames: Buffer[], reason: RegExp): Promise<Handle | undefined> {
    const seen = socketErrors();
    const raw = net.connect(path);
    raw.on('error', () => {});
    raw.resume();
    const closed = new Promise((resolve) => raw.on('close', resolve));
    const limits = { capacity: 4, capacityBytes: 4096, maxMessageBytes: 4096, maxHandles: 4 };
    raw.write(rawHello(limits));
    const root = (await listener.accept()) as Channel;
    try {
      for (const f of frames) raw.write(f);
      await closed;
      await until('the error', () => seen.errors.length > 0);
    } finally {
      seen.stop();
    }
    assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
    assert.match(seen.errors[0]?.message ?? '', reason);
    const end = root.stats.queuedMessages > 0 ? root.tryRecv()?.handles[0] : undefined;
    root.close();
    return end;
  }

  it('sends more bytes than credited; what arrived before is still read, then PEER_CLOSED', async () => {
    const end = (await expectRejected(
      [
        openPipe(KIND_PIPE_CONSUMER),
        frame(FRAME_MSG, 1, 0, Buffer.alloc(600, 1)),
        frame(FRAME_MSG, 1, 0, Buffer.alloc(401)),
      ],
      /401 bytes on pipe channel 1 exceed the 400 bytes of credit granted/,
    )) as DataPipeConsumer;
    let n = 0;
    for await (const chunk of end) n += chunk.byteLength;
    assert.equal(n, 600);
  });

  it('sends handles or a message type on a pipe id', async () => {
    const d = Buffer.alloc(DESCRIPTOR_BYTES);
    writeDescriptor(d, 0, {
      id: 3,
      kind: KIND_CHANNEL,
      limits: { capacity: 1, capacityBytes: 1, maxMessageBytes: 1, maxHandles: 0 },
      creditMessages: 0,
      creditBytes: 0,
      ...NO_STATS,
    });
    await expectRejected(
      [openPipe(KIND_PIPE_CONSUMER), frame(FRAME_MSG, 1, 0, d, 1)],
      /MSG of type 0 with 1 handles on pipe channel 1 \(pipes carry bytes only\)/,
    );
    await expectRejected(
      [openPipe(KIND_PIPE_CONSUMER), frame(FRAME_MSG, 1, 9, Buffer.alloc(1))],
      /MSG of type 9 with 0 handles on pipe channel 1/,
    );
  });

  it('sends bytes or credits the wrong way', async () => {
    const end = (await expectRejected(
      [openPipe(KIND_PIPE_PRODUCER, 1000), frame(FRAME_MSG, 1, 0, Buffer.alloc(1))],
      /MSG on pipe channel 1, whose bytes flow the other way/,
    )) as DataPipeProducer;
    await end.closed;
    throwsCode(() => end.write(new Uint8Array(1)), 'PEER_CLOSED');
    await expectRejected(
      [openPipe(KIND_PIPE_CONSUMER), frame(FRAME_CREDIT, 1, 0, Buffer.alloc(4))],
      /CREDIT on pipe channel 1, which only receives bytes/,
    );
    const five = Buffer.alloc(4);
    five.writeUInt32LE(5);
    await expectRejected(
      [openPipe(KIND_PIPE_PRODUCER), frame(FRAME_CREDIT, 1, 0, five)],
      /credit of 0 messages and 5 bytes on pipe channel 1, which has 0 bytes in flight/,
    );
  });

  it('sends a descriptor of unknown kind or with bad pipe fields', async () => {
    await expectRejected([openPipe(7)], /handle descriptor for channel 1 has unknown kind 7/);
    await expectRejected(
      [openPipe(KIND_PIPE_CONSUMER, 10)],
      /pipe descriptor for channel 1 grants 10 bytes of credit \(at most 0\)/,
    );
    await expectRejected(
      [openPipe(KIND_PIPE_PRODUCER, 1001)],
      /pipe descriptor for channel 1 grants 1001 bytes of credit \(at most 1000\)/,
    );
  });
});
