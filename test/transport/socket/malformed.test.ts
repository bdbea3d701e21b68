import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type Channel,
  connect,
  type Listener,
  listen,
  privateSocketPath,
} from '../../../src/index.js';
import {
  DESCRIPTOR_BYTES,
  FRAME_CLOSE,
  FRAME_CREDIT,
  FRAME_MSG,
  HEADER_BYTES,
  writeHeader,
} from '../../../src/transport/socket/frame.js';
import { frame, rawHello, socketErrors, until } from './helpers.js';

const LIMITS = { capacity: 2, capacityBytes: 1024, maxMessageBytes: 512, maxHandles: 4 };

function hello(): Buffer {
  return rawHello(LIMITS);
}

function header(type: number, id: number, length: number): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  writeHeader(buf, 0, length, type, 0, id, 0);
  return buf;
}

describe('a peer that breaks the protocol', () => {
  let path: string;
  let listener: Listener;
  before(async () => {
    path = await privateSocketPath();
    listener = await listen({ path }, { capacity: 2, capacityBytes: 1024, maxMessageBytes: 512 });
  });
  after(async () => {
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });

  /** Sends `bytes` raw, expects the connection closed and a PROTOCOL_ERROR matching `reason`. */
  async function expectRejected(bytes: Buffer[], reason: RegExp, handshake: boolean) {
    const seen = socketErrors();
    const raw = net.connect(path);
    const closed = new Promise((resolve) => raw.on('close', resolve));
    raw.on('error', () => {});
    raw.resume();
    let root: Channel | undefined;
    try {
      await new Promise((resolve) => raw.once('connect', resolve));
      if (handshake) {
        raw.write(hello());
        root = await listener.accept();
      }
      for (const b of bytes) raw.write(b);
      await closed;
      await until('the error', () => seen.errors.length > 0);
    } finally {
      seen.stop();
    }
    const error = seen.errors[0];
    assert.equal(error?.code, 'PROTOCOL_ERROR');
    assert.match(error?.message ?? '', reason);
    if (root !== undefined) assert.equal(await root.closed, 'peer');
    return root;
  }

  async function stillServes(): Promise<void> {
    const [a, b] = await Promise.all([connect({ path }), listener.accept()]);
    a.send({ type: 42 });
    assert.equal((await (b as Channel).recv()).type, 42);
    a.close();
    b?.close();
  }

  it('is not ftl-ipc at all', async () => {
    const junk = Buffer.alloc(HEADER_BYTES + 60, 0);
    writeHeader(junk, 0, 60, 1, 0, 0, 0);
    await expectRejected([junk], /does not speak the ftl-ipc socket protocol/, false);
    await stillServes();
  });

  it('sends a frame before HELLO', async () => {
    await expectRejected([frame(FRAME_MSG, 0, 1)], /frame type 3 before HELLO/, false);
  });

  it('announces an oversized length (refused from the header, nothing allocated)', async () => {
    await expectRejected(
      [header(FRAME_MSG, 0, 0xffff_fff0)],
      /message of 4294967280 bytes on channel 0 exceeds its maxMessageBytes 512/,
      true,
    );
    await stillServes();
  });

  it('names an unknown channel id', async () => {
    await expectRejected([frame(FRAME_MSG, 12345, 1)], /unknown channel id 12345/, true);
  });

  it('sends more than its credits; what arrived before is still delivered', async () => {
    const root = await expectRejected(
      [frame(FRAME_MSG, 0, 1), frame(FRAME_MSG, 0, 2), frame(FRAME_MSG, 0, 3)],
      /exceeds the credits granted \(0 messages/,
      true,
    );
    assert.equal((await root?.recv())?.type, 1);
    assert.equal((await root?.recv())?.type, 2);
    await stillServes();
  });

  it('returns more credits than this side could have spent', async () => {
    const credit = Buffer.alloc(4);
    await expectRejected(
      [frame(FRAME_CREDIT, 0, 1, credit)],
      /credit of 1 messages and 0 bytes on channel 0 would exceed the queue it stands for \(2 messages/,
      true,
    );
  });

  it('sends an unknown frame type, or a descriptor with an id it may not open', async () => {
    await expectRejected([frame(99, 0, 0)], /unknown frame type 99/, true);
    const descriptor = Buffer.alloc(DESCRIPTOR_BYTES);
    descriptor.writeUInt32LE(2, 0); // even ids belong to the listening side
    await expectRejected(
      [frame(FRAME_MSG, 0, 1, descriptor, 1)],
      /names channel id 2, which the peer may not open/,
      true,
    );
    await stillServes();
  });

  // Below the file's timeout: a frame wrongly accepted leaves expectRejected waiting.
  it('sends a CREDIT not of 4 bytes, or a CLOSE with a payload', { timeout: 10_000 }, async () => {
    await expectRejected([frame(FRAME_CREDIT, 0, 0, Buffer.alloc(3))], /CREDIT of 3 bytes/, true);
    await expectRejected([frame(FRAME_CLOSE, 0, 0, Buffer.alloc(2))], /CLOSE of 2 bytes/, true);
    await stillServes();
  });

  it('sends a MSG too short for the handle descriptors it announces', {
    timeout: 10_000,
  }, async () => {
    await expectRejected(
      [frame(FRAME_MSG, 0, 1, Buffer.alloc(10), 1)],
      /MSG of 10 bytes cannot hold 1 handle descriptors/,
      true,
    );
  });

  it('sends on a channel after its own CLOSE of it', { timeout: 10_000 }, async () => {
    await expectRejected(
      [frame(FRAME_CLOSE, 0, 0), frame(FRAME_MSG, 0, 1)],
      /frame type 3 on channel 0 after its CLOSE/,
      true,
    );
    await stillServes();
  });
});
