import { type NatsConnection, connect as natsConnect, nuid } from '@nats-io/transport-node';

/**
 * A hand-driven peer on NATS: it asks the listener of `service` for a connection as `connect`
 * does, then publishes whatever bytes a test wants, numbered as NatsCarrier numbers them.
 */
export interface RawNatsPeer {
  nc: NatsConnection;
  /** Where the listener's side of this connection listens. */
  subject: string;
  /** One NATS message: sequence `seq` (the next one by default), `kind` 0 (data), `bytes`. */
  send(bytes: Buffer, options?: { seq?: number; kind?: number }): void;
  /** A NATS message exactly as given, with no carrier header. */
  publishRaw(payload: Uint8Array): void;
  /** Resolves when the listener's side ended or reset the connection. */
  ended: Promise<'end' | 'reset'>;
  close(): Promise<void>;
}

export async function rawNatsPeer(url: string, service: string): Promise<RawNatsPeer> {
  const nc = await natsConnect({ servers: url });
  const own = `ftl-ipc.c.${nuid.next()}`;
  let seq = 0;
  let ended!: (how: 'end' | 'reset') => void;
  const endedP = new Promise<'end' | 'reset'>((resolve) => {
    ended = resolve;
  });
  nc.subscribe(own, {
    callback: (_err, msg) => {
      const kind = msg.data[4];
      if (kind === 1) ended('end');
      if (kind === 2) ended('reset');
    },
  });
  const subject = (await nc.request(`ftl-ipc.svc.${service}`, own, { timeout: 5000 })).string();
  return {
    nc,
    subject,
    send(bytes, options = {}) {
      const msg = Buffer.alloc(5 + bytes.length);
      msg.writeUInt32LE(options.seq ?? seq, 0);
      seq = (options.seq ?? seq) + 1;
      msg[4] = options.kind ?? 0;
      bytes.copy(msg, 5);
      nc.publish(subject, msg);
    },
    publishRaw: (payload) => nc.publish(subject, payload),
    ended: endedP,
    close: () => nc.close(),
  };
}
