import { type NatsConnection, connect as natsConnect, nuid } from '@nats-io/transport-node';

/** The carrier's header: u64 number, u8 kind (src/transport/nats/carrier.ts). */
export const NATS_HEADER = 9;

/** A carrier header for message `seq` of `kind`. */
export function natsHeader(seq: number, kind = 0): Buffer {
  const h = Buffer.alloc(NATS_HEADER);
  h.writeUInt32LE(seq % 2 ** 32, 0);
  h.writeUInt32LE(Math.floor(seq / 2 ** 32), 4);
  h[8] = kind;
  return h;
}

/**
 * A hand-driven peer on NATS: it asks the listener of `service` for a connection as `connect`
 * does (insecure, or with the suite given), then publishes whatever bytes a test wants,
 * numbered as NatsCarrier numbers them. It never acknowledges what it gets.
 */
export interface RawNatsPeer {
  nc: NatsConnection;
  /** This peer's own subject, where the listener publishes. */
  own: string;
  /** Where the listener's side of this connection listens. */
  subject: string;
  /** One NATS message: number `seq` (the next one by default), `kind` 0 (data), `bytes`. */
  send(bytes: Buffer, options?: { seq?: number; kind?: number }): void;
  /** A NATS message exactly as given, with no carrier header. */
  publishRaw(payload: Uint8Array): void;
  /** Every message the listener sent this peer, as it arrived. */
  received: Buffer[];
  /** Resolves when the listener's side ended or reset the connection. */
  ended: Promise<'end' | 'reset'>;
  close(): Promise<void>;
}

export async function rawNatsPeer(
  url: string,
  service: string,
  suite = 'none',
): Promise<RawNatsPeer> {
  const nc = await natsConnect({ servers: url });
  const own = `ftl-ipc.c.${nuid.next()}`;
  let seq = 0;
  let ended!: (how: 'end' | 'reset') => void;
  const endedP = new Promise<'end' | 'reset'>((resolve) => {
    ended = resolve;
  });
  const received: Buffer[] = [];
  nc.subscribe(own, {
    callback: (_err, msg) => {
      received.push(Buffer.from(msg.data));
      const kind = msg.data[8];
      if (kind === 1) ended('end');
      if (kind === 2) ended('reset');
    },
  });
  const answer = await nc.request(`ftl-ipc.svc.${service}`, `ftl-ipc nats 1 ${suite}`, {
    timeout: 5000,
    noMux: true,
    reply: `${own}.r`,
  });
  const subject = answer.string();
  return {
    nc,
    own,
    subject,
    received,
    send(bytes, options = {}) {
      const n = options.seq ?? seq;
      seq = n + 1;
      const msg = Buffer.concat([natsHeader(n, options.kind ?? 0), bytes]);
      nc.publish(subject, msg, n === 0 ? { reply: own } : {});
    },
    publishRaw: (payload) => nc.publish(subject, payload, seq === 0 ? { reply: own } : {}),
    ended: endedP,
    close: () => nc.close(),
  };
}
