import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import {
  Channel,
  connect,
  type ListenOptions,
  listen,
  privateSocketPath,
  type SocketAddress,
} from '../../../src/index.js';
import { delivered, rejectsCode, throwsCode } from '../../channel/helpers.js';
import { socketErrors } from './helpers.js';

/** Listens, connects once, and returns both root channels and a cleanup. */
async function connected(
  address: SocketAddress | 'unix' | 'tcp',
  server: ListenOptions = {},
  client: Parameters<typeof connect>[1] = {},
): Promise<{ a: Channel; b: Channel; close(): Promise<void> }> {
  const where: SocketAddress =
    address === 'unix'
      ? { path: await privateSocketPath() }
      : address === 'tcp'
        ? { host: '127.0.0.1', port: 0 }
        : address;
  const listener = await listen(where, server);
  // listener.address is what connect takes, whether the listener is on a path or on port 0.
  const [a, b] = await Promise.all([connect(listener.address, client), listener.accept()]);
  return {
    a,
    b: b as Channel,
    close: async () => {
      a.close();
      b?.close();
      await listener.close();
      if ('path' in where) await rm(dirname(where.path), { recursive: true, force: true });
    },
  };
}

describe('socket transport', () => {
  for (const kind of ['unix', 'tcp'] as const) {
    it(`connects over ${kind}, both ways, and closes`, async () => {
      const { a, b, close } = await connected(kind);
      a.send({ type: 1, data: Buffer.from('ping') });
      const m = await b.recv();
      assert.equal(Buffer.from(m.data).toString(), 'ping');
      b.send({ type: 2 });
      assert.equal((await a.recv()).type, 2);
      a.close();
      assert.equal(await b.closed, 'peer');
      await close();
    });
  }

  it('spends credits: BACKPRESSURE at the receiver capacity, room again once it reads', async () => {
    const { a, b, close } = await connected('unix', { capacity: 4, capacityBytes: 100 });
    assert.equal(a.limits.capacity, 4);
    for (let i = 0; i < 4; i++) a.send({ type: i });
    throwsCode(() => a.send({ type: 9 }), 'BACKPRESSURE');
    await delivered(b, 4);
    assert.equal(b.stats.queuedMessages, 4);
    await b.recv();
    await a.writable(0, { timeoutMs: 2000 });
    a.send({ type: 4 });
    // Bytes count too: 100 bytes of capacity, 4 queued messages of 0 bytes.
    await b.recvBatch();
    await a.writable(100, { timeoutMs: 2000 });
    a.send({ type: 5, data: new Uint8Array(100) });
    throwsCode(() => a.send({ type: 6, data: new Uint8Array(1) }), 'BACKPRESSURE');
    throwsCode(() => a.send({ type: 6, data: new Uint8Array(101) }), 'TOO_LARGE');
    await close();
  });

  it('multiplexes many channels over one connection, in both directions', async () => {
    const { a, b, close } = await connected('tcp');
    const here: Channel[] = [];
    const there: Channel[] = [];
    for (let i = 0; i < 20; i++) {
      const [x, y] = Channel.pair({ capacity: 10 });
      here.push(x);
      await a.sendWait({ type: i, handles: [y] });
    }
    for (let i = 0; i < 20; i++) there.push((await b.recv()).handles[0] as Channel);
    await Promise.all(
      here.map(async (x, i) => {
        for (let k = 0; k < 10; k++) await x.sendWait({ type: i * 100 + k });
      }),
    );
    for (let i = 0; i < 20; i++) {
      const ch = there[i] as Channel;
      for (let k = 0; k < 10; k++) assert.equal((await ch.recv()).type, i * 100 + k);
      ch.send({ type: i });
      assert.equal((await (here[i] as Channel).recv()).type, i);
    }
    // An end that crossed one way goes back: its peer is now in the same process again.
    const [p, q] = Channel.pair();
    a.send({ type: 0, handles: [p] });
    const p2 = (await b.recv()).handles[0] as Channel;
    b.send({ type: 0, handles: [p2] });
    const p3 = (await a.recv()).handles[0] as Channel;
    p3.send({ type: 77 });
    assert.equal((await q.recv()).type, 77);
    for (const x of [...here, ...there, p3, q]) x.close();
    await close();
  });

  it('creates the Unix socket with mode 0600 in a directory only this user may enter', async () => {
    const path = await privateSocketPath();
    const listener = await listen({ path });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(path))).mode & 0o777, 0o700);
    await listener.close();
    const open = await mkdtemp(join(tmpdir(), 'ftl-ipc-open-'));
    execFileSync('chmod', ['755', open]);
    await assert.rejects(listen({ path: join(open, 's.sock') }), (err: Error) => {
      assert.match(err.message, /mode 755/);
      return (err as { code?: string }).code === 'INVALID_ARGUMENT';
    });
    await rm(open, { recursive: true });
    await rm(dirname(path), { recursive: true, force: true });
  });

  it('requires the shared secret before any channel opens', async () => {
    const ok = await connected('tcp', { secret: 'sesame' }, { secret: 'sesame' });
    ok.a.send({ type: 1 });
    assert.equal((await ok.b.recv()).type, 1);
    await ok.close();

    const listener = await listen({ host: '127.0.0.1', port: 0 }, { secret: 'sesame' });
    const port = (listener.address as { port: number }).port;
    const seen = socketErrors();
    try {
      await rejectsCode(connect({ host: '127.0.0.1', port }, { secret: 'wrong' }), 'AUTH_FAILED');
      await rejectsCode(connect({ host: '127.0.0.1', port }), 'AUTH_FAILED');
    } finally {
      seen.stop();
    }
    assert.ok(seen.errors.some((e) => e.code === 'AUTH_FAILED'));
    await listener.close();
  });

  it('speaks TLS when asked', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-ipc-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
    } catch {
      t.skip('openssl is not available to make a test certificate');
      return;
    }
    const key = await readFile(join(dir, 'key.pem'));
    const cert = await readFile(join(dir, 'cert.pem'));
    const { a, b, close } = await connected('tcp', { tls: { key, cert } }, { tls: { ca: cert } });
    a.send({ type: 5, data: new Uint8Array(1000).fill(7) });
    const m = await b.recv();
    assert.equal(m.data.byteLength, 1000);
    await close();
    await rm(dir, { recursive: true });
  });

  it('drops a connection that does not finish the handshake in time', async () => {
    const path = await privateSocketPath();
    const listener = await listen({ path }, { handshakeTimeoutMs: 100 });
    const seen = socketErrors();
    const raw = net.connect(path);
    raw.resume();
    try {
      await new Promise((resolve) => raw.on('close', resolve));
    } finally {
      seen.stop();
    }
    assert.equal(seen.errors[0]?.code, 'TIMEOUT');
    assert.match(seen.errors[0]?.message ?? '', /no handshake within 100 ms/);
    await listener.close();
    await rm(dirname(path), { recursive: true });
  });

  it('rejects bad addresses and refused connections with clear codes', async () => {
    await rejectsCode(connect({ host: '127.0.0.1', port: 70000 }), 'INVALID_ARGUMENT');
    const path = await privateSocketPath();
    await rejectsCode(connect({ path }), 'CONNECTION_FAILED');
    await rm(dirname(path), { recursive: true });
  });
});

describe('reading into buffers the connection chooses', () => {
  it('keeps every message intact, large ones read in place and small ones from a reused buffer', async () => {
    const path = await privateSocketPath();
    const listener = await listen({ path }, { capacity: 4096, capacityBytes: 64 << 20 });
    // The connecting side reads with `onread`: in place for the rest of a large frame, else
    // into one buffer it reuses while no message holds a view of it.
    const [reader, writer] = await Promise.all([
      connect({ path }, { capacity: 4096, capacityBytes: 64 << 20, maxMessageBytes: 1 << 20 }),
      listener.accept() as Promise<Channel>,
    ]);
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const sizes: number[] = [];
    for (let i = 0; i < 600; i++) {
      const r = next() % 4;
      sizes.push(
        r === 0
          ? next() % 200
          : r === 1
            ? 65536
            : r === 2
              ? 60_000 + (next() % 8000)
              : next() % 300_000,
      );
    }
    const fill = (i: number, size: number) => {
      const d = new Uint8Array(size);
      for (let k = 0; k < size; k++) d[k] = (i * 7 + k) & 255;
      return d;
    };
    const sending = (async () => {
      for (const [i, size] of sizes.entries())
        await writer.sendWait({ type: i, data: fill(i, size) });
    })();
    // Every message is held until all arrived: a buffer reused under a view would show here.
    const held = [];
    while (held.length < sizes.length) held.push(...(await reader.recvBatch()));
    await sending;
    for (const [i, m] of held.entries()) {
      assert.equal(m.type, i);
      assert.ok(
        Buffer.from(m.data).equals(fill(i, sizes[i] as number)),
        `message ${i} of ${sizes[i]} bytes`,
      );
    }
    reader.close();
    writer.close();
    await listener.close();
    await rm(dirname(path), { recursive: true, force: true });
  });
});
