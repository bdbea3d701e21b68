/*
 * The attacks of issue 22, each by a third client of the same NATS server and account, against
 * channels with a secret: it reads, forges, replays, resets, relays through the listener's queue
 * group and impersonates the listener. Each fails the attacker; a forgery is published on
 * ftl-ipc:socket:error with what was seen.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  type Msg,
  type NatsConnection,
  connect as natsConnect,
  nuid,
} from '@nats-io/transport-node';
import {
  type Channel,
  connect,
  type IpcError,
  type Listener,
  listen,
  type NatsAddress,
} from '../../../src/index.js';
import {
  AUTH_BYTES,
  encodeHello,
  FRAME_AUTH,
  FRAME_MSG,
  HELLO_FLAG_AUTH,
} from '../../../src/transport/socket/frame.js';
import { frame, socketErrors, until } from '../socket/helpers.js';
import { NATS_HEADER, natsHeader } from './helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

const secret = 'only the two ends know this';
const SECRET_TEXT = 'transfer 9999 to mallory';

interface Seen {
  subject: string;
  reply: string | undefined;
  data: Buffer;
}

/** A third client that subscribes to everything under the prefix. */
async function snoop(url: string): Promise<{ nc: NatsConnection; seen: Seen[] }> {
  const nc = await natsConnect({ servers: url });
  const seen: Seen[] = [];
  nc.subscribe('ftl-ipc.>', {
    callback: (_err, msg) =>
      void seen.push({ subject: msg.subject, reply: msg.reply, data: Buffer.from(msg.data) }),
  });
  await nc.flush();
  return { nc, seen };
}

/** The next stream number on `subject`, from what the snoop saw of it. */
function nextNumber(seen: Seen[], subject: string): number {
  let next = 0;
  for (const m of seen) {
    if (m.subject === subject && m.data.length >= NATS_HEADER && (m.data[8] as number) <= 2) {
      next = Math.max(next, m.data.readUInt32LE(0) + 1);
    }
  }
  return next;
}

describe('attacks by a third NATS client on channels with a secret', natsSuite, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let listener: Listener<NatsAddress>;
  let spy: Awaited<ReturnType<typeof snoop>>;
  before(async () => {
    server = await startNats();
    nc = await natsConnect({ servers: server.url });
    listener = await listen({ nats: nc, service: 'bank' }, { secret, heartbeatMs: 0 });
    spy = await snoop(server.url);
  });
  after(async () => {
    await listener.close();
    await spy.nc.close();
    await nc.close();
    await server.stop();
  });

  async function pair(): Promise<{ client: Channel; server: Channel; c: string; s: string }> {
    const from = spy.seen.length;
    const [client, accepted] = await Promise.all([
      connect(listener.address, { secret, heartbeatMs: 0 }),
      listener.accept(),
    ]);
    await spy.nc.flush();
    // The client's subject is the reply of its first message, the listener's where it went.
    const first = spy.seen
      .slice(from)
      .find((m) => m.subject.startsWith('ftl-ipc.s.') && m.reply?.startsWith('ftl-ipc.c.'));
    assert.ok(first !== undefined, 'the snoop saw the handshake');
    return { client, server: accepted as Channel, c: first.reply as string, s: first.subject };
  }

  /**
   * `n` clients connect in turn: each either fails with AUTH_FAILED (an attacker got in the
   * way) or reaches the listener and gets a message across.
   */
  async function clients(n: number): Promise<{ made: number; failed: number }> {
    let made = 0;
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const result = await connect(listener.address, {
        secret,
        heartbeatMs: 0,
        handshakeTimeoutMs: 3000,
      }).then(
        (ch) => ch,
        (err: IpcError) => err,
      );
      if ('code' in result) {
        assert.equal(result.code, 'AUTH_FAILED', result.message);
        failed++;
        continue;
      }
      made++;
      // Its root waits in the backlog: no waiter is left behind for the next test.
      const far = (await listener.accept()) as Channel;
      result.send({ type: 1, data: Buffer.from(SECRET_TEXT) });
      assert.equal(Buffer.from((await far.recv()).data).toString(), SECRET_TEXT);
      result.close();
      far.close();
    }
    return { made, failed };
  }

  it('reading: no plaintext of a channel with a secret on the wire, either way', async () => {
    const from = spy.seen.length;
    const { client, server: far } = await pair();
    client.send({ type: 1, data: Buffer.from(SECRET_TEXT) });
    assert.equal(Buffer.from((await far.recv()).data).toString(), SECRET_TEXT);
    far.send({ type: 2, data: Buffer.from(`${SECRET_TEXT} (reply)`) });
    assert.equal(Buffer.from((await client.recv()).data).toString(), `${SECRET_TEXT} (reply)`);
    await spy.nc.flush();
    const wire = spy.seen.slice(from);
    assert.ok(wire.length >= 6, `the snoop saw ${wire.length} messages`);
    for (const m of wire) assert.equal(m.data.includes(SECRET_TEXT), false, m.subject);
    client.close();
    far.close();
  });

  for (const direction of ['to the listener', 'to the client'] as const) {
    it(`forging: a message with the next number ${direction} fails the connection with AUTH_FAILED`, async () => {
      const errors = socketErrors();
      try {
        const { client, server: far, c, s } = await pair();
        const [victim, subject] = direction === 'to the listener' ? [far, s] : [client, c];
        const forged = Buffer.concat([
          natsHeader(nextNumber(spy.seen, subject)),
          frame(FRAME_MSG, 0, 1, Buffer.from(SECRET_TEXT)),
          randomBytes(16),
        ]);
        spy.nc.publish(subject, forged);
        await assert.rejects(victim.recv(), { code: 'PEER_CLOSED' });
        await until('the error', () => errors.errors.some((e) => e.code === 'AUTH_FAILED'));
        const error = errors.errors.find((e) => e.code === 'AUTH_FAILED') as IpcError;
        assert.match(error.message, /NATS message \d+ \(data, \d+ bytes\) failed authentication/);
        // The other side learns it too (the reset is sealed and sent reliably).
        await assert.rejects((victim === far ? client : far).recv(), { code: 'PEER_CLOSED' });
        client.close();
        far.close();
      } finally {
        errors.stop();
      }
    });
  }

  it('replay: a captured message sent again is dropped; one with a new number fails', async () => {
    const errors = socketErrors();
    try {
      const { client, server: far, s } = await pair();
      const from = spy.seen.length;
      client.send({ type: 1, data: Buffer.from('pay 10') });
      assert.equal(Buffer.from((await far.recv()).data).toString(), 'pay 10');
      await spy.nc.flush();
      const captured = spy.seen.slice(from).find((m) => m.subject === s && m.data[8] === 0) as Seen;
      for (let i = 0; i < 3; i++) spy.nc.publish(s, captured.data);
      await spy.nc.flush();
      client.send({ type: 2, data: Buffer.from('pay 20') });
      const next = await far.recv();
      assert.equal(next.type, 2, 'the replayed message was not delivered again');
      assert.deepEqual(errors.errors, []);
      // The same bytes under the next number: the number is authenticated.
      const renumbered = Buffer.from(captured.data);
      renumbered.writeUInt32LE(nextNumber(spy.seen, s) + 5, 0);
      spy.nc.publish(s, renumbered);
      await assert.rejects(far.recv(), { code: 'PEER_CLOSED' });
      await until('the error', () => errors.errors.some((e) => e.code === 'AUTH_FAILED'));
      client.close();
      far.close();
    } finally {
      errors.stop();
    }
  });

  it('forged reset or end: refused as a forgery, published, not a quiet close', async () => {
    for (const kind of [2, 1]) {
      const errors = socketErrors();
      try {
        const { client, server: far, s } = await pair();
        spy.nc.publish(s, natsHeader(nextNumber(spy.seen, s), kind));
        await assert.rejects(far.recv(), { code: 'PEER_CLOSED' });
        await until('the error', () => errors.errors.some((e) => e.code === 'AUTH_FAILED'));
        assert.match(
          (errors.errors[0] as IpcError).message,
          kind === 2 ? /\(reset, 9 bytes\) failed authentication/ : /\(end, 9 bytes\)/,
        );
        client.close();
        far.close();
      } finally {
        errors.stop();
      }
    }
  });

  it('queue-group relay: it joins the handshakes of two connections, and both fail', async (t) => {
    const relay = await natsConnect({ servers: server.url });
    const errors = socketErrors();
    let relayed = 0;
    let rewritten = 0;
    const ours = new Set<string>();
    // Requests of the relay itself that came back to it are published again, for the listener.
    const upstream = (body: Uint8Array, reply: string) =>
      relay.publish('ftl-ipc.svc.bank', body, { reply });
    relay.subscribe('ftl-ipc.svc.bank', {
      queue: 'ftl-ipc.svc.bank',
      callback: (_err, req: Msg) => {
        const reply = req.reply as string;
        if (ours.has(reply)) {
          upstream(req.data, reply);
          return;
        }
        relayed++;
        const client = reply.slice(0, -2);
        const mine = `ftl-ipc.c.${nuid.next()}`;
        const face = `ftl-ipc.s.${nuid.next()}.${'0'.repeat(32)}`;
        ours.add(`${mine}.r`);
        let real = '';
        const early: Msg[] = [];
        // What the client sends to our face goes to the real listener, rewritten once sealed.
        const forward = (m: Msg) => {
          const data = Buffer.from(m.data);
          if (data.length > 64 && data.readUInt32LE(0) >= 2) {
            data[NATS_HEADER + 20] = (data[NATS_HEADER + 20] as number) ^ 1;
            rewritten++;
          }
          relay.publish(real, data, data.readUInt32LE(0) === 0 ? { reply: mine } : {});
        };
        relay.subscribe(face, {
          callback: (_e, m) => (real === '' ? void early.push(m) : forward(m)),
        });
        relay.subscribe(`${mine}.r`, {
          max: 1,
          callback: (_e, answer) => {
            real = answer.string();
            for (const m of early.splice(0)) forward(m);
          },
        });
        relay.subscribe(mine, { callback: (_e, m) => relay.publish(client, m.data) });
        void relay.flush().then(() => {
          upstream(req.data, `${mine}.r`);
          req.respond(face);
        });
      },
    });
    await relay.flush();
    const { made, failed } = await clients(8);
    await relay.close();
    errors.stop();
    assert.equal(made + failed, 8);
    assert.equal(failed, relayed, `${relayed} relayed, ${failed} failed`);
    assert.ok(relayed > 0, 'the relay never got a client');
    t.diagnostic(
      `${relayed} of 8 relayed, each AUTH_FAILED; ${rewritten} sealed messages rewritten`,
    );
    assert.ok(errors.errors.some((e) => e.code === 'AUTH_FAILED'));
  });

  it('impersonation: a listener without the secret that answers first gets nothing', async (t) => {
    const fake = await natsConnect({ servers: server.url });
    const got: Buffer[] = [];
    fake.subscribe('ftl-ipc.svc.bank', {
      callback: (_err, req: Msg) => {
        const face = `ftl-ipc.s.${nuid.next()}.${'f'.repeat(32)}`;
        const client = (req.reply as string).slice(0, -2);
        fake.subscribe(face, { callback: (_e, m) => void got.push(Buffer.from(m.data)) });
        req.respond(face);
        // It claims the secret handshake and sends a guessed AUTH.
        const hello = encodeHello({
          flags: HELLO_FLAG_AUTH,
          nonce: randomBytes(32),
          limits: { capacity: 8, capacityBytes: 1024, maxMessageBytes: 1024, maxHandles: 0 },
          heartbeatMs: 0,
        });
        fake.publish(client, Buffer.concat([natsHeader(0), hello]));
        fake.publish(
          client,
          Buffer.concat([natsHeader(1), frame(FRAME_AUTH, 0, 0, randomBytes(AUTH_BYTES))]),
        );
      },
    });
    await fake.flush();
    const impersonated = (await clients(10)).failed;
    await fake.flush();
    await fake.close();
    // The impersonator saw HELLO and AUTH at most: nothing of what any client sent.
    for (const m of got) assert.equal(m.includes(SECRET_TEXT), false);
    // In clear it got HELLO and AUTH only; the rest (the client's ERROR, RESET) is sealed.
    for (const m of got.filter((m) => m.readUInt32LE(0) < 2 && m[8] === 0)) {
      assert.ok([1, 2].includes(m[NATS_HEADER + 4] as number), 'a HELLO or an AUTH');
    }
    assert.ok(impersonated > 0, 'the impersonator never answered first');
    t.diagnostic(`the impersonator answered first ${impersonated} of 10 times, each AUTH_FAILED`);
  });
});
