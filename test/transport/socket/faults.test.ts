/*
 * Faults of issue 15 that are not about memory: message loops through a socket, timers a peer
 * must not set, a stream cut mid-frame, the stats invariant, stats that travel, and clean exits
 * that lose nothing.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type net from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Channel,
  connect,
  type Listener,
  listen,
  privateSocketPath,
  spawnProcess,
} from '../../../src/index.js';
import { FRAME_MSG, FRAME_PING, HEADER_BYTES } from '../../../src/transport/socket/frame.js';
import { throwsCode } from '../../channel/helpers.js';
import { child, frame, rawHello, rawPeer, socketErrors, until } from './helpers.js';

const LIMITS = { capacity: 256, capacityBytes: 1 << 20, maxMessageBytes: 1024, maxHandles: 4 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('socket faults', () => {
  let path: string;
  let listener: Listener;
  before(async () => {
    path = await privateSocketPath();
    listener = await listen({ path }, { ...LIMITS, heartbeatMs: 1000 });
  });
  after(async () => {
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });

  async function pair(): Promise<[Channel, Channel]> {
    const [a, b] = await Promise.all([connect(listener.address, LIMITS), listener.accept()]);
    return [a, b as Channel];
  }

  /** Counts the PINGs a raw peer receives after announcing `heartbeatMs`. */
  function countPings(raw: net.Socket): { pings: number } {
    const seen = { pings: 0 };
    let pending = Buffer.alloc(0);
    raw.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER_BYTES) {
        const length = pending.readUInt32LE(0);
        if (pending.length < HEADER_BYTES + length) break;
        if (pending[4] === FRAME_PING) seen.pings++;
        pending = pending.subarray(HEADER_BYTES + length);
      }
    });
    return seen;
  }

  it('an end sent toward its own peer, back from the far side, is HANDLE_NOT_MOVABLE, not a loop', async () => {
    const [client, server] = await pair();
    const [a, b] = Channel.pair();
    client.send({ type: 1, handles: [a] });
    const a1 = (await server.recv()).handles[0] as Channel;
    server.send({ type: 2, handles: [a1] });
    const a2 = (await client.recv()).handles[0] as Channel;
    throwsCode(() => a2.send({ type: 99, handles: [b] }), 'HANDLE_NOT_MOVABLE');
    // The mirror image: b sent through itself toward a2.
    throwsCode(() => b.send({ type: 99, handles: [a2] }), 'HANDLE_NOT_MOVABLE');
    // Still a working end of the pair, through both bridges; b is still ours.
    a2.send({ type: 5 });
    assert.equal((await b.recv()).type, 5);
    b.send({ type: 6 });
    assert.equal((await a2.recv()).type, 6);
    for (const ch of [a2, b, client, server]) ch.close();
  });

  it('the same through an echo child (another process)', async () => {
    const [relay, there] = Channel.pair();
    const echo = await spawnProcess(child('echo'), { channels: { relay: there } });
    const [a, b] = Channel.pair();
    await relay.sendWait({ type: 1, handles: [a] });
    const a2 = (await relay.recv()).handles[0] as Channel;
    throwsCode(() => a2.send({ type: 99, handles: [b] }), 'HANDLE_NOT_MOVABLE');
    throwsCode(() => b.send({ type: 99, handles: [a2] }), 'HANDLE_NOT_MOVABLE');
    a2.send({ type: 5 });
    assert.equal((await b.recv()).type, 5);
    for (const ch of [a2, b, relay]) ch.close();
    await echo.exited;
  });

  it('our PINGs follow our interval (1 s), not the 4 ms the peer announced', async () => {
    const raw = await rawPeer(path);
    const seen = countPings(raw);
    raw.write(rawHello(LIMITS, 4));
    const root = (await listener.accept()) as Channel;
    // The peer's own PINGs keep it alive (its timeout is clamped to 3 x 100 ms).
    const keepAlive = setInterval(() => raw.write(frame(FRAME_PING, 0, 0)), 50);
    await sleep(1300);
    clearInterval(keepAlive);
    assert.ok(seen.pings <= 2, `${seen.pings} PINGs in 1.3 s`);
    assert.equal(root.stats.sent, 0);
    raw.destroy();
    assert.equal(await root.closed, 'peer');
  });

  it('a peer announcing a tiny interval is given up on after 3 x 100 ms (the clamp), not 3 x 1', async () => {
    const seen = socketErrors();
    try {
      const raw = await rawPeer(path);
      raw.resume();
      raw.write(rawHello(LIMITS, 1));
      const root = (await listener.accept()) as Channel;
      const started = Date.now();
      assert.equal(await root.closed, 'peer');
      assert.ok(Date.now() - started >= 250, `gave up after ${Date.now() - started} ms`);
      assert.match(seen.errors[0]?.message ?? '', /no heartbeat from unix socket for 300 ms/);
      raw.destroy();
    } finally {
      seen.stop();
    }
  });

  it('a peer announcing 0xffffffff ms overflows no timer', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const quiet = await listen({ path: await privateSocketPath() }, { heartbeatMs: 0 });
    try {
      const raw = await rawPeer((quiet.address as { path: string }).path);
      raw.resume();
      raw.write(rawHello(LIMITS, 0xffff_ffff));
      const root = (await quiet.accept()) as Channel;
      await sleep(200);
      assert.deepEqual(warnings, []);
      raw.destroy();
      assert.equal(await root.closed, 'peer');
    } finally {
      process.off('warning', onWarning);
      await quiet.close();
    }
  });

  it('no heartbeat timeout applies when the peer announced 0, even with heartbeatTimeoutMs', async () => {
    const seen = socketErrors();
    const strict = await listen(
      { path: await privateSocketPath() },
      { heartbeatMs: 20, heartbeatTimeoutMs: 60 },
    );
    try {
      const raw = await rawPeer((strict.address as { path: string }).path);
      raw.resume();
      raw.write(rawHello(LIMITS, 0));
      const root = (await strict.accept()) as Channel;
      let closed = false;
      void root.closed.then(() => {
        closed = true;
      });
      // Silent for many times the timeout: the connection stays up.
      await sleep(500);
      assert.equal(closed, false);
      assert.deepEqual(seen.errors, []);
      raw.destroy();
      assert.equal(await root.closed, 'peer');
    } finally {
      seen.stop();
      await strict.close();
    }
  });

  it('a stream cut in the middle of a frame publishes a PROTOCOL_ERROR', async () => {
    const seen = socketErrors();
    try {
      const raw = await rawPeer(path);
      raw.resume();
      raw.write(rawHello(LIMITS));
      const root = (await listener.accept()) as Channel;
      const msg = frame(FRAME_MSG, 0, 1, Buffer.alloc(100));
      raw.end(msg.subarray(0, HEADER_BYTES + 10));
      assert.equal(await root.closed, 'peer');
      await until('the error', () => seen.errors.length > 0);
      assert.equal(seen.errors[0]?.code, 'PROTOCOL_ERROR');
      assert.match(seen.errors[0]?.message ?? '', /ended 26 bytes into a frame of 116/);
    } finally {
      seen.stop();
    }
  });

  it('sends that race a remote close are counted as dropped: the stats invariant holds', async () => {
    const [a, b] = await pair();
    b.close();
    // b's CLOSE is on its way: these still find credits and return true.
    for (let i = 0; i < 100; i++) assert.equal(a.send({ type: i }), true);
    assert.equal(await a.closed, 'peer');
    await until('the CLOSE', () => a.stats.dropped === 100);
    const received = b.stats.received + b.stats.queuedMessages + b.stats.discarded;
    assert.equal(a.stats.sent, received);
    assert.equal(a.stats.sent + a.stats.dropped, 100);
    a.close();
  });

  it('the counters of an end travel with it over a socket', async () => {
    const [client, server] = await pair();
    const [x, y] = Channel.pair();
    x.send({ type: 1 });
    x.send({ type: 2 });
    await y.recv();
    y.send({ type: 3 });
    await x.recv();
    const before = x.stats;
    client.send({ type: 0, handles: [x] });
    const moved = (await server.recv()).handles[0] as Channel;
    assert.equal(moved.stats.sent, 2);
    assert.equal(moved.stats.received, 1);
    assert.equal(moved.stats.highWaterMark, before.highWaterMark);
    moved.send({ type: 4 });
    assert.equal(moved.stats.sent, 3);
    assert.equal((await y.recv()).type, 2);
    assert.equal((await y.recv()).type, 4);
    for (const ch of [moved, y, client, server]) ch.close();
  });

  it('bad connection options are INVALID_ARGUMENT before any socket is opened', async () => {
    await assert.rejects(listen({ path }, { maxOutputBytes: -1 }), {
      code: 'INVALID_ARGUMENT',
      message: /maxOutputBytes must be an integer from 1 to 2147483648, got -1/,
    });
    await assert.rejects(connect(listener.address, { heartbeatMs: 0xffff_ffff }), {
      code: 'INVALID_ARGUMENT',
      message: /heartbeatMs must be an integer from 0 to 2147483647/,
    });
    await assert.rejects(connect(listener.address, { maxPeerBytes: Number.NaN }), {
      code: 'INVALID_ARGUMENT',
    });
  });

  it('returns byte credits: 8 x capacityBytes pass through sendWait, each within 2 s', async () => {
    // The client's root holds 4 KiB: the server can send 32 KiB only as byte credits come back.
    const small = { capacity: 64, capacityBytes: 4096, maxMessageBytes: 1024 };
    const [a, b] = await Promise.all([connect(listener.address, small), listener.accept()]);
    const reading = (async () => {
      let bytes = 0;
      for await (const m of a) bytes += m.data.byteLength;
      return bytes;
    })();
    const server = b as Channel;
    try {
      for (let i = 0; i < 32; i++) {
        await server.sendWait({ type: i, data: new Uint8Array(1024) }, { timeoutMs: 2000 });
      }
    } catch (err) {
      // Both ends closed, so that a failure here ends the run instead of holding it open.
      a.close();
      server.close();
      throw err;
    }
    server.close();
    assert.equal(await reading, 32 * 1024);
    a.close();
  });
});

describe('a clean exit loses nothing', () => {
  async function receiveAll(mode: string, count: number, options = {}): Promise<number> {
    const [here, there] = Channel.pair(options);
    const proc = await spawnProcess(child('exiter'), {
      channels: { out: there },
      args: [String(count), mode],
    });
    let n = 0;
    const seen = socketErrors();
    for await (const m of here) {
      assert.equal(m.type, n);
      n++;
    }
    seen.stop();
    const { code } = await proc.exited;
    assert.equal(code, 0);
    assert.deepEqual(seen.errors, []);
    here.close();
    return n;
  }

  it('close(), await flushSockets(), process.exit(): all 2,000 messages arrive', async () => {
    assert.equal(await receiveAll('flush', 2000), 2000);
  });

  it('a burst larger than the kernel takes: await flushSockets() before process.exit()', async () => {
    const big = { capacity: 20_000, capacityBytes: 4 << 20 };
    assert.equal(await receiveAll('flush', 20_000, big), 20_000);
  });

  it('a child that returns right after sending loses nothing, though this side writes to it first', async () => {
    const [here, there] = Channel.pair({ capacity: 1000, capacityBytes: 1 << 20 });
    const [poke, pokeFar] = Channel.pair({ capacityBytes: 64 * 1024 });
    const proc = await spawnProcess(child('burst'), {
      channels: { out: there, poke: pokeFar },
      args: ['100'],
    });
    // While this thread sleeps the child sends all, closes all and returns; then this side
    // writes to it before it reads. Had the child exited, that write would meet EPIPE, and Node
    // would drop what this side had not read yet.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
    const seen = socketErrors();
    for (let i = 0; i < 2; i++) poke.send({ type: i, data: new Uint8Array(16 * 1024) });
    let n = 0;
    for await (const m of here) assert.equal(m.type, n++);
    seen.stop();
    assert.equal(n, 100);
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    here.close();
    poke.close();
  });

  it('a child whose channels are all closed exits by itself, while this side stays open', async () => {
    const [here, there] = Channel.pair();
    const proc = await spawnProcess(child('exiter'), {
      channels: { out: there },
      args: ['10', 'return'],
    });
    const exited = await Promise.race([proc.exited, sleep(5000).then(() => 'still running')]);
    assert.deepEqual(exited, { code: 0, signal: null });
    let n = 0;
    for await (const _ of here) n++;
    assert.equal(n, 10);
    here.close();
  });
});
