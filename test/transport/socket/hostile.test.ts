/*
 * The standing hostile-peer suite: raw `net` peers speaking the documented frames try to make
 * this side hold more than the budget of docs/socket-transport.md ("Limits and budgets"), and the
 * memory this process retains is measured against it (after a full GC).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type net from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { type Channel, type Listener, listen, privateSocketPath } from '../../../src/index.js';
import {
  DESCRIPTOR_BYTES,
  FRAME_CREDIT,
  FRAME_MSG,
  HEADER_BYTES,
  KIND_CHANNEL,
  writeDescriptor,
  writeHeader,
} from '../../../src/transport/socket/frame.js';
import { frame, NO_STATS, rawHello, rawPeer, socketErrors, until } from './helpers.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes this process retains on the heap and in ArrayBuffers, after a full collection. */
function retained(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

/** A root MSG opening channel `id` with `capacityBytes` of room, which this side grants in full. */
function openChannel(id: number, capacityBytes: number): Buffer {
  const d = Buffer.alloc(DESCRIPTOR_BYTES);
  const limits = { capacity: 64, capacityBytes, maxMessageBytes: 64 * KiB, maxHandles: 0 };
  writeDescriptor(d, 0, {
    id,
    kind: KIND_CHANNEL,
    limits,
    creditMessages: 0,
    creditBytes: 0,
    ...NO_STATS,
  });
  return frame(FRAME_MSG, 0, 0, d, 1);
}

/** What one channel of `openChannel(id, MiB)` counts against the budget: bytes and 64 slots. */
const CHANNEL_COST = MiB + 64 * 64;

const ROOT = { capacity: 64, capacityBytes: MiB, maxMessageBytes: 64 * KiB, maxHandles: 4 };

describe('hostile peers: what one can make this side hold', () => {
  let path: string;
  let listener: Listener;
  const peers: net.Socket[] = [];
  const roots: Channel[] = [];

  before(async () => {
    path = await privateSocketPath();
    listener = await listen({ path }, { ...ROOT, heartbeatMs: 0, maxPeerBytes: 4 * CHANNEL_COST });
  });
  after(async () => {
    for (const p of peers) p.destroy();
    for (const r of roots) r.close();
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });

  async function accepted(limits = ROOT): Promise<{ raw: net.Socket; root: Channel }> {
    const raw = await rawPeer(path);
    peers.push(raw);
    raw.write(rawHello(limits));
    const root = (await listener.accept()) as Channel;
    roots.push(root);
    return { raw, root };
  }

  it('forged credits: a peer that does not read holds our sends at the output budget (1 MiB)', async (t) => {
    const { raw, root } = await accepted();
    const base = retained();
    const data = new Uint8Array(64 * KiB);
    let sent = 0;
    let blocked = false;
    // The perfect forger: after every send it returns exactly the credit just spent.
    for (let i = 0; i < 1000 && !blocked; i++) {
      try {
        root.send({ type: 1, data });
        sent++;
        raw.write(frame(FRAME_CREDIT, 0, 1, u32(data.byteLength)));
        await tick();
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'BACKPRESSURE');
        // Credits are there; the socket is what does not drain.
        await assert.rejects(root.writable(data.byteLength, { timeoutMs: 300 }), {
          code: 'TIMEOUT',
        });
        blocked = true;
      }
    }
    const held = retained() - base;
    t.diagnostic(`forged credits: ${sent} sends of 64 KiB accepted, ${held} bytes retained`);
    assert.ok(blocked, `${sent} sends of 64 KiB all succeeded against a peer that reads nothing`);
    // 1 MiB of output budget, the 256 KiB batch buffer, one message, and what the kernel took.
    assert.ok(sent * data.byteLength < 8 * MiB, `${sent} messages of 64 KiB were accepted`);
    assert.ok(held < 3 * MiB, `retained ${held} bytes`);
    raw.destroy();
    assert.equal(await root.closed, 'peer');
  });

  it('slow drip: 16 partial frames of 64 KiB, sent a byte at a time, hold one buffer each', async (t) => {
    const drips = await Promise.all(Array.from({ length: 16 }, () => accepted()));
    const base = retained();
    const head = Buffer.alloc(HEADER_BYTES);
    writeHeader(head, 0, 64 * KiB, FRAME_MSG, 0, 0, 7);
    for (const { raw } of drips) raw.write(head);
    const one = Buffer.alloc(1);
    for (let i = 0; i < 2048; i++) {
      for (const { raw } of drips) raw.write(one);
      await tick();
    }
    await sleep(50);
    const held = retained() - base;
    t.diagnostic(`slow drip: ${held} bytes retained for 16 partial frames of 64 KiB`);
    // Each frame is reassembled in one buffer sized from its checked header: 16 x 64 KiB.
    assert.ok(held < 16 * 64 * KiB + MiB, `retained ${held} bytes for 16 partial frames`);
    // The frames still complete and arrive whole.
    const rest = Buffer.alloc(64 * KiB - 2048, 1);
    for (const { raw } of drips) raw.write(rest);
    for (const { root } of drips) {
      const m = await root.recv();
      assert.equal(m.type, 7);
      assert.equal(m.data.byteLength, 64 * KiB);
    }
    for (const { raw } of drips) raw.destroy();
  });

  it('many channels: the peer may announce maxPeerBytes in all (4 MiB + slots here), and fill them', async (t) => {
    const seen = socketErrors();
    try {
      const { raw, root } = await accepted();
      const base = retained();
      const ids = [1, 3, 5, 7];
      for (const id of ids) raw.write(openChannel(id, MiB));
      const chunk = Buffer.alloc(64 * KiB, 2);
      for (const id of ids) for (let i = 0; i < 16; i++) raw.write(frame(FRAME_MSG, id, 1, chunk));
      await until('the channels filled', () => root.stats.queuedMessages === ids.length);
      const ends = ids.map(() => root.tryRecv()?.handles[0] as Channel);
      await until('1 MiB in each', () => ends.every((e) => e.stats.queuedBytes === MiB));
      const held = retained() - base;
      t.diagnostic(`many channels: ${held} bytes retained for 4 MiB granted`);
      assert.ok(held < 4 * MiB + 2 * MiB, `retained ${held} bytes for 4 MiB granted`);
      const closed = new Promise((resolve) => raw.on('close', resolve));
      raw.resume();
      raw.write(openChannel(9, 1));
      await closed;
      assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
      assert.match(
        seen.errors[0]?.message ?? '',
        /channel 9 may hold 4097 bytes \(capacityBytes 1 \+ 64 messages x 64\); with the 4210688 bytes of the peer's open channels, that exceeds the 4210688 bytes allowed/,
      );
      for (const e of ends) e.close();
    } finally {
      seen.stop();
    }
  });

  it('an unaccepted connection may open channels of maxUnacceptedBytes (4 MiB) at most', async () => {
    const seen = socketErrors();
    try {
      const raw = await rawPeer(path);
      peers.push(raw);
      raw.resume();
      const closed = new Promise((resolve) => raw.on('close', resolve));
      raw.write(rawHello(ROOT));
      raw.write(openChannel(1, 4 * MiB - 64 * 64));
      raw.write(openChannel(3, 1));
      await closed;
      assert.match(
        seen.errors[0]?.message ?? '',
        /channel 3 may hold 4097 bytes .* exceeds the 4194304 bytes allowed before the connection is accepted/,
      );
    } finally {
      seen.stop();
    }
    // It reached the backlog before it died: take it, so the next tests find theirs.
    const dead = (await listener.accept()) as Channel;
    assert.equal(await dead.closed, 'peer');
    dead.close();
  });
});

describe('hostile peers: connections beyond the backlog', () => {
  it('are closed, and those waiting hold a few KiB each (no output buffer)', async (t) => {
    const path = await privateSocketPath();
    const listener = await listen({ path }, { backlog: 8, heartbeatMs: 0 });
    const base = retained();
    const raws = await Promise.all(Array.from({ length: 40 }, () => rawPeer(path)));
    let closed = 0;
    for (const raw of raws) {
      raw.on('close', () => closed++);
      raw.resume();
      raw.write(rawHello(ROOT));
    }
    await until('32 connections closed', () => closed === 32, 5000);
    await sleep(100);
    assert.equal(closed, 32);
    const held = retained() - base;
    t.diagnostic(`backlog: ${held} bytes retained for 8 waiting connections (and their raw peers)`);
    assert.ok(held < 8 * 64 * KiB, `retained ${held} bytes for 8 waiting connections`);
    for (const raw of raws) raw.destroy();
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });
});
