import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import {
  type Channel,
  connect,
  DataPipe,
  type DataPipeConsumer,
  flushSockets,
  type Listener,
  listen,
  type NatsAddress,
} from '../../../src/index.js';
import { rejectsCode, throwsCode } from '../../channel/helpers.js';
import { failure } from '../spawn-helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

const MiB = 1024 * 1024;

describe('channels over NATS', natsSuite, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  before(async () => {
    server = await startNats();
    nc = await natsConnect({ servers: server.url });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  async function pair(
    service: string,
    serverOptions = {},
    clientOptions = {},
  ): Promise<{ a: Channel; b: Channel; listener: Listener<NatsAddress> }> {
    const listener = await listen({ nats: nc, service }, serverOptions);
    const [a, b] = await Promise.all([
      connect({ nats: server.url, service }, clientOptions),
      listener.accept(),
    ]);
    return { a, b: b as Channel, listener };
  }

  it('the bound is exact: capacity messages, then BACKPRESSURE until the receiver takes one', async () => {
    const { a, b, listener } = await pair('bound', { capacity: 4 });
    for (let i = 0; i < 4; i++) assert.equal(a.send({ type: i }), true);
    throwsCode(() => a.send({ type: 4 }), 'BACKPRESSURE');
    assert.equal((await b.recv()).type, 0);
    await a.writable();
    a.send({ type: 4 });
    throwsCode(() => a.send({ type: 5 }), 'BACKPRESSURE');
    for (let i = 1; i <= 4; i++) assert.equal((await b.recv()).type, i);
    a.close();
    await rejectsCode(b.recv(), 'PEER_CLOSED');
    b.close();
    await listener.close();
  });

  it('a message larger than the server max_payload is split and arrives intact', async () => {
    const big = { capacity: 4, capacityBytes: 8 * MiB, maxMessageBytes: 4 * MiB };
    const { a, b, listener } = await pair('big', big, big);
    const data = randomBytes(3 * MiB + 17);
    await a.sendWait({ type: 9, data });
    const got = await b.recv();
    assert.equal(Buffer.compare(Buffer.from(got.data), data), 0);
    a.close();
    b.close();
    await listener.close();
  });

  it('a data pipe end moves over NATS and streams several MiB', async () => {
    const { a, b, listener } = await pair('pipe');
    const [producer, consumer] = DataPipe.create({ capacityBytes: 256 * 1024 });
    await a.sendWait({ type: 1, handles: [consumer] });
    const far = (await b.recv()).handles[0] as DataPipeConsumer;
    const data = randomBytes(4 * MiB);
    const writing = producer.writeAll(data).then(() => producer.close());
    const hash = createHash('sha256');
    let n = 0;
    for await (const chunk of far) {
      hash.update(chunk);
      n += chunk.byteLength;
    }
    await writing;
    assert.equal(n, data.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
    a.close();
    b.close();
    await listener.close();
  });

  it('a shared secret is checked over NATS as over a socket', async () => {
    const ok = await pair('secret', { secret: 's3cret' }, { secret: 's3cret' });
    ok.a.send({ type: 1 });
    assert.equal((await ok.b.recv()).type, 1);
    ok.a.close();
    ok.b.close();
    await failure(connect(ok.listener.address, { secret: 'wrong' }), 'AUTH_FAILED');
    await ok.listener.close();
  });

  it('no listener of the service (or under another prefix) is CONNECTION_FAILED', async () => {
    const listener = await listen({ nats: nc, service: 'prefixed', prefix: 'tenant-a' });
    const error = await failure(connect({ nats: nc, service: 'prefixed' }), 'CONNECTION_FAILED');
    assert.match(
      error.message,
      /no listener of service prefixed answered on NATS subject ftl-ipc\.svc\.prefixed/,
    );
    const [a, b] = await Promise.all([
      connect({ nats: nc, service: 'prefixed', prefix: 'tenant-a' }),
      listener.accept(),
    ]);
    a.close();
    b?.close();
    await listener.close();
  });

  it('bad addresses and options are INVALID_ARGUMENT before anything is sent', async () => {
    await failure(connect({ nats: nc, service: 'a b' }), 'INVALID_ARGUMENT');
    await failure(connect({ nats: nc, service: 'x', prefix: 'p.*' }), 'INVALID_ARGUMENT');
    await failure(listen({ nats: nc, service: 'x' }, { tls: {} }), 'INVALID_ARGUMENT');
    await failure(connect({ nats: nc, service: 'x' }, { heartbeatMs: -1 }), 'INVALID_ARGUMENT');
    await failure(connect({ nats: 'nats://127.0.0.1:1', service: 'x' }), 'CONNECTION_FAILED');
  });

  it('flushSockets covers NATS connections: what was sent before close arrives', async () => {
    const { a, b, listener } = await pair('flush');
    for (let i = 0; i < 100; i++) a.send({ type: i });
    a.close();
    const flushed = flushSockets();
    for (let i = 0; i < 100; i++) assert.equal((await b.recv()).type, i);
    b.close();
    await flushed;
    await listener.close();
  });
});
