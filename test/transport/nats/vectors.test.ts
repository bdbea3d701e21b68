/*
 * test/vectors/nats-protection.json against the implementation, and against the spec of
 * docs/wire-format.md ("NATS protection") rebuilt here from node:crypto primitives alone: HKDF,
 * HMAC-SHA256 and AES-256-GCM. Then a peer built the same way (no code of the transport) joins
 * a real listener with each suite: the spec is enough to speak it.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect as natsConnect, nuid } from '@nats-io/transport-node';
import { type Channel, listen } from '../../../src/index.js';
import { binding, deriveKeys, Sealer, type Suite } from '../../../src/transport/nats/seal.js';
import {
  encodeHello,
  FRAME_AUTH,
  FRAME_HELLO,
  FRAME_MSG,
  HELLO_FLAG_AUTH,
} from '../../../src/transport/socket/frame.js';
import { frame } from '../socket/helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

interface Vector {
  suite: Suite;
  secret_hex: string;
  client_nonce_hex: string;
  server_nonce_hex: string;
  client_subject: string;
  server_subject: string;
  binding_hex: string;
  key_c2s_hex: string;
  key_s2c_hex: string;
  auth_client_hex: string;
  auth_server_hex: string;
  messages: {
    direction: 'c2s' | 's2c';
    number: number;
    kind: number;
    payload_hex: string;
    message_hex: string;
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../../../test/vectors/nats-protection.json', import.meta.url), 'utf8'),
) as { cases: Vector[] };
const hex = (s: string) => Buffer.from(s, 'hex');

/** The spec, from primitives. */
const spec = {
  binding(suite: string, client: string, server: string): Buffer {
    return Buffer.concat(
      ['nats', suite, client, server].map((p) =>
        Buffer.concat([Buffer.from([p.length]), Buffer.from(p)]),
      ),
    );
  },
  key(secret: Buffer, cn: Buffer, sn: Buffer, bound: Buffer, direction: 'c2s' | 's2c'): Buffer {
    const info = Buffer.concat([Buffer.from(`ftl-ipc nats keys v1 ${direction}`), bound]);
    return Buffer.from(hkdfSync('sha256', secret, Buffer.concat([cn, sn]), info, 32));
  },
  auth(secret: Buffer, role: 'c' | 's', own: Buffer, theirs: Buffer, bound: Buffer): Buffer {
    return createHmac('sha256', secret)
      .update('ftl-ipc socket auth v1')
      .update(role)
      .update(own)
      .update(theirs)
      .update(bound)
      .digest();
  },
  header(n: number, kind: number): Buffer {
    const h = Buffer.alloc(9);
    h.writeUInt32LE(n % 2 ** 32, 0);
    h.writeUInt32LE(Math.floor(n / 2 ** 32), 4);
    h[8] = kind;
    return h;
  },
  seal(suite: string, key: Buffer, n: number, kind: number, payload: Buffer): Buffer {
    const header = spec.header(n, kind);
    if (suite === 'hmac-sha256') {
      const body = Buffer.concat([header, payload]);
      return Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);
    }
    const nonce = Buffer.concat([Buffer.from([kind, 0, 0, 0]), header.subarray(0, 8)]);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(header);
    const body = Buffer.concat([c.update(payload), c.final()]);
    return Buffer.concat([header, body, c.getAuthTag()]);
  },
};

describe('NATS protection: the vectors', () => {
  for (const v of vectors.cases) {
    it(`${v.suite}: keys, AUTH and every message, by the implementation and by the spec`, () => {
      const secret = hex(v.secret_hex);
      const cn = hex(v.client_nonce_hex);
      const sn = hex(v.server_nonce_hex);
      const bound = binding(v.suite, v.client_subject, v.server_subject);
      assert.equal(bound.toString('hex'), v.binding_hex);
      assert.equal(
        spec.binding(v.suite, v.client_subject, v.server_subject).toString('hex'),
        v.binding_hex,
      );
      const keys = deriveKeys(secret, cn, sn, bound);
      assert.equal(keys.c2s.toString('hex'), v.key_c2s_hex);
      assert.equal(keys.s2c.toString('hex'), v.key_s2c_hex);
      assert.equal(spec.key(secret, cn, sn, bound, 'c2s').toString('hex'), v.key_c2s_hex);
      assert.equal(spec.key(secret, cn, sn, bound, 's2c').toString('hex'), v.key_s2c_hex);
      assert.equal(spec.auth(secret, 'c', cn, sn, bound).toString('hex'), v.auth_client_hex);
      assert.equal(spec.auth(secret, 's', sn, cn, bound).toString('hex'), v.auth_server_hex);
      for (const m of v.messages) {
        const key = m.direction === 'c2s' ? keys.c2s : keys.s2c;
        const other = m.direction === 'c2s' ? keys.s2c : keys.c2s;
        const payload = hex(m.payload_hex);
        const message = hex(m.message_hex);
        assert.equal(
          spec.seal(v.suite, key, m.number, m.kind, payload).toString('hex'),
          m.message_hex,
        );
        assert.equal(
          new Sealer(v.suite, key).seal(spec.header(m.number, m.kind), payload).toString('hex'),
          m.message_hex,
        );
        assert.equal(new Sealer(v.suite, key).open(message, 9)?.toString('hex'), m.payload_hex);
        // One bit anywhere, the other direction's key, or a shorter message: refused.
        for (let bit = 0; bit < message.length * 8; bit += 7) {
          const bad = Buffer.from(message);
          bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
          assert.equal(new Sealer(v.suite, key).open(bad, 9), undefined, `bit ${bit}`);
        }
        assert.equal(new Sealer(v.suite, other).open(message, 9), undefined);
        assert.equal(new Sealer(v.suite, key).open(message.subarray(0, -1), 9), undefined);
      }
    });
  }
});

describe('NATS protection: a peer built from the spec alone', natsSuite, () => {
  let server: NatsServer;
  before(async () => {
    server = await startNats();
  });
  after(() => server.stop());

  for (const suite of ['aes-256-gcm', 'hmac-sha256'] as const) {
    it(`joins a listener with ${suite} and sends it a message`, async () => {
      const secret = Buffer.from('from the spec');
      const mine = await natsConnect({ servers: server.url });
      const listener = await listen(
        { nats: mine, service: 'spec' },
        { secret, suites: ['aes-256-gcm', 'hmac-sha256'], heartbeatMs: 0 },
      );
      const nc = await natsConnect({ servers: server.url });
      try {
        const own = `ftl-ipc.c.${nuid.next()}`;
        const got: Buffer[] = [];
        let wake = () => {};
        nc.subscribe(own, {
          callback: (_e, m) => {
            got.push(Buffer.from(m.data));
            wake();
          },
        });
        const next = async (i: number) => {
          while (got.length <= i) await new Promise<void>((resolve) => (wake = resolve));
          return got[i] as Buffer;
        };
        const subject = (
          await nc.request('ftl-ipc.svc.spec', `ftl-ipc nats 1 ${suite}`, {
            timeout: 5000,
            noMux: true,
            reply: `${own}.r`,
          })
        ).string();
        const cn = randomBytes(32);
        const limits = { capacity: 8, capacityBytes: 4096, maxMessageBytes: 1024, maxHandles: 0 };
        const hello = encodeHello({ flags: HELLO_FLAG_AUTH, nonce: cn, limits, heartbeatMs: 0 });
        nc.publish(subject, Buffer.concat([spec.header(0, 0), hello]), { reply: own });
        const theirs = await next(0);
        assert.equal(theirs[9 + 4], FRAME_HELLO);
        const sn = theirs.subarray(9 + 16 + 8, 9 + 16 + 40);
        const bound = spec.binding(suite, own, subject);
        const mac = spec.auth(secret, 'c', cn, sn, bound);
        nc.publish(subject, Buffer.concat([spec.header(1, 0), frame(FRAME_AUTH, 0, 0, mac)]));
        const accepted = (await listener.accept()) as Channel;
        const key = spec.key(secret, cn, sn, bound, 'c2s');
        const msg = frame(FRAME_MSG, 0, 7, Buffer.from('spoken from the spec'));
        nc.publish(subject, spec.seal(suite, key, 2, 0, msg));
        const m = await accepted.recv();
        assert.equal(m.type, 7);
        assert.equal(Buffer.from(m.data).toString(), 'spoken from the spec');
        // The end, sealed as message 3; the listener's side then closes too.
        nc.publish(subject, spec.seal(suite, key, 3, 1, Buffer.alloc(0)));
        assert.equal(await accepted.closed, 'peer');
        accepted.close();
      } finally {
        await nc.close();
        await listener.close();
        // Its connections end with it (the spec peer does not acknowledge the listener's end).
        await mine.close();
      }
    });
  }
});
