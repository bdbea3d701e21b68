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
const secret = 'the tests share this secret';

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
    const listener = await listen({ nats: nc, service }, { secret, ...serverOptions });
    const [a, b] = await Promise.all([
      connect({ nats: server.url, service }, { secret, ...clientOptions }),
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
    // An insecure client is refused by the listener's answer, before any handshake.
    const refused = await failure(connect(ok.listener.address, { insecure: true }), 'AUTH_FAILED');
    assert.match(refused.message, /refused: suite none is not taken here/);
    await ok.listener.close();
  });

  it('no secret needs insecure: true, on both sides; the two cannot be combined', async () => {
    const error = await failure(listen({ nats: nc, service: 'x' }), 'INVALID_ARGUMENT');
    assert.match(
      error.message,
      /a NATS listener needs a secret: .* pass secret, or insecure: true/,
    );
    await failure(connect({ nats: nc, service: 'x' }), 'INVALID_ARGUMENT');
    await failure(
      connect({ nats: nc, service: 'x' }, { secret, insecure: true }),
      'INVALID_ARGUMENT',
    );
    await failure(
      connect({ nats: nc, service: 'x' }, { insecure: true, suite: 'hmac-sha256' }),
      'INVALID_ARGUMENT',
    );
    await failure(
      connect({ nats: nc, service: 'x' }, { secret, suite: 'rot13' as never }),
      'INVALID_ARGUMENT',
    );
    const { a, b, listener } = await pair(
      'insecure',
      { secret: undefined, insecure: true },
      { secret: undefined, insecure: true },
    );
    a.send({ type: 7 });
    assert.equal((await b.recv()).type, 7);
    a.close();
    b.close();
    await listener.close();
  });

  it('the integrity-only suite, when the listener takes it', async () => {
    const { a, b, listener } = await pair(
      'hmac',
      { suites: ['aes-256-gcm', 'hmac-sha256'] },
      { suite: 'hmac-sha256' },
    );
    a.send({ type: 3, data: Buffer.from('in clear, but authenticated') });
    assert.equal(Buffer.from((await b.recv()).data).toString(), 'in clear, but authenticated');
    a.close();
    b.close();
    const strict = await listen({ nats: nc, service: 'gcm-only' }, { secret });
    const refused = await failure(
      connect(strict.address, { secret, suite: 'hmac-sha256' }),
      'AUTH_FAILED',
    );
    assert.match(refused.message, /suite hmac-sha256 is not taken here \(aes-256-gcm\)/);
    await strict.close();
    await listener.close();
  });

  it('no listener of the service (or under another prefix) is CONNECTION_FAILED', async () => {
    const listener = await listen(
      { nats: nc, service: 'prefixed', prefix: 'tenant-a' },
      { secret },
    );
    const error = await failure(
      connect({ nats: nc, service: 'prefixed' }, { secret }),
      'CONNECTION_FAILED',
    );
    assert.match(
      error.message,
      /no listener of service prefixed answered on NATS subject ftl-ipc\.svc\.prefixed/,
    );
    const [a, b] = await Promise.all([
      connect({ nats: nc, service: 'prefixed', prefix: 'tenant-a' }, { secret }),
      listener.accept(),
    ]);
    a.close();
    b?.close();
    await listener.close();
  });

  it('bad addresses and options are INVALID_ARGUMENT before anything is sent', async () => {
    await failure(connect({ nats: nc, service: 'a b' }, { secret }), 'INVALID_ARGUMENT');
    await failure(
      connect({ nats: nc, service: 'x', prefix: 'p.*' }, { secret }),
      'INVALID_ARGUMENT',
    );
    await failure(listen({ nats: nc, service: 'x' }, { secret, tls: {} }), 'INVALID_ARGUMENT');
    await failure(
      connect({ nats: nc, service: 'x' }, { secret, heartbeatMs: -1 }),
      'INVALID_ARGUMENT',
    );
    await failure(
      listen({ nats: nc, service: 'x' }, { secret, maxHandshakes: 0 }),
      'INVALID_ARGUMENT',
    );
    await failure(
      connect({ nats: 'nats://127.0.0.1:1', service: 'x' }, { secret }),
      'CONNECTION_FAILED',
    );
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
