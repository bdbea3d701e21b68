import {
  type NatsConnection,
  type NodeConnectionOptions,
  connect as natsConnect,
  nuid,
} from '@nats-io/transport-node';
import { Channel } from '../../channel/channel.js';
import { IpcError } from '../../errors.js';
import {
  Connection,
  type ConnectionOptions,
  resolveConnectionOptions,
  socketDiagnostics,
} from '../socket/connection.js';
import { Listener, type ListenOptions } from '../socket/listen.js';
import { NatsCarrier } from './carrier.js';

/**
 * A service on NATS: `connect` reaches a `listen` of the same `service` under the same `prefix`.
 * `nats` is a server URL (or several), the NATS client's connection options (user and password,
 * token, nkeys, credentials, TLS pass through as they are), or a connection to share.
 */
export interface NatsAddress {
  nats: string | string[] | NodeConnectionOptions | NatsConnection;
  service: string;
  /** The first subject tokens of everything this transport publishes. Default 'ftl-ipc'. */
  prefix?: string;
}

const TOKENS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/** Longest connect request or reply: one subject. */
const MAX_SUBJECT = 256;

function checkAddress(address: NatsAddress): { prefix: string; service: string } {
  const prefix = address.prefix ?? 'ftl-ipc';
  for (const [name, value] of [
    ['prefix', prefix],
    ['service', address.service],
  ] as const) {
    if (typeof value !== 'string' || value.length > 128 || !TOKENS.test(value)) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `NATS ${name} must be subject tokens of letters, digits, '_' and '-' separated by '.', got ${String(value)}`,
      );
    }
  }
  if (address.nats === null || typeof address.nats !== 'object') {
    if (typeof address.nats !== 'string') {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `nats must be server URLs, NATS connection options or a NatsConnection, got ${String(address.nats)}`,
      );
    }
  }
  return { prefix, service: address.service };
}

function checkOptions(options: ConnectionOptions & { tls?: unknown }): void {
  resolveConnectionOptions(options);
  if (options.tls !== undefined) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      'tls over NATS belongs in the NATS connection options (address.nats.tls)',
    );
  }
}

/** A per-connection subject under `prefix`: `c` for the connecting side, `s` for the listener. */
function ownSubject(prefix: string, side: 'c' | 's'): string {
  return `${prefix}.${side}.${nuid.next()}`;
}

function isSubject(value: string, prefix: string, side: 'c' | 's'): boolean {
  const start = `${prefix}.${side}.`;
  return value.startsWith(start) && /^[A-Za-z0-9]{1,64}$/.test(value.slice(start.length));
}

/** The NATS connection to use, and whether it is ours to close. */
async function open(nats: NatsAddress['nats']): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (typeof nats === 'object' && !Array.isArray(nats) && 'publish' in nats) {
    return { nc: nats, owned: false };
  }
  const options: NodeConnectionOptions =
    typeof nats === 'string' || Array.isArray(nats) ? { servers: nats } : nats;
  try {
    return { nc: await natsConnect(options), owned: true };
  } catch (err) {
    throw new IpcError(
      'CONNECTION_FAILED',
      `cannot connect to NATS ${String(options.servers ?? 'localhost:4222')}: ${(err as Error).message} (one attempt; with waitOnFirstConnect: true in the NATS options it tries again every reconnectTimeWait, 2 s by default, until a server answers)`,
      { cause: err },
    );
  }
}

/** Connects to the listener of `address.service`; resolves with the root channel. */
export async function connectNats(
  address: NatsAddress,
  options: ConnectionOptions = {},
): Promise<Channel> {
  const { prefix, service } = checkAddress(address);
  checkOptions(options);
  const { nc, owned } = await open(address.nats);
  const carrier = new NatsCarrier(nc, ownSubject(prefix, 'c'), () => {
    if (owned) void nc.close();
  });
  const subject = `${prefix}.svc.${service}`;
  let peer: string;
  try {
    const reply = await nc.request(subject, carrier.own, {
      timeout: options.handshakeTimeoutMs ?? 10_000,
    });
    peer = reply.data.length <= MAX_SUBJECT ? reply.string() : '';
  } catch (err) {
    carrier.destroy();
    throw new IpcError(
      'CONNECTION_FAILED',
      `no listener of service ${service} answered on NATS subject ${subject}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!isSubject(peer, prefix, 's')) {
    carrier.destroy();
    throw new IpcError(
      'PROTOCOL_ERROR',
      `the listener of ${service} answered with subject ${JSON.stringify(peer.slice(0, 80))}, not one under ${prefix}.s`,
    );
  }
  carrier.connectTo(peer);
  return new Channel(
    await new Connection(carrier, true, options).handshake(options.handshakeTimeoutMs),
  );
}

/**
 * Listens for `address.service` on NATS (a queue group: several listeners of one service share
 * the connections). Each connection that completes the handshake yields its root channel.
 */
export async function listenNats(
  address: NatsAddress,
  options: ListenOptions = {},
): Promise<Listener<NatsAddress>> {
  const { prefix, service } = checkAddress(address);
  checkOptions(options);
  const { nc, owned } = await open(address.nats);
  // An owned NATS connection lives until the listener stopped and its last connection ended.
  let live = 0;
  let stopped = false;
  const release = () => {
    if (owned && stopped && live === 0) void nc.close();
  };
  const subject = `${prefix}.svc.${service}`;
  const sub = nc.subscribe(subject, {
    queue: subject,
    callback: (err, msg) => {
      if (err !== null || stopped) return;
      const theirs = msg.data.length <= MAX_SUBJECT ? msg.string() : '';
      if (!isSubject(theirs, prefix, 'c')) {
        const error = new IpcError(
          'PROTOCOL_ERROR',
          `a connect request on ${subject} named ${JSON.stringify(theirs.slice(0, 80))}, not a subject under ${prefix}.c`,
        );
        socketDiagnostics.error.publish({ error, remote: `NATS subject ${subject}` });
        return;
      }
      live++;
      const carrier = new NatsCarrier(nc, ownSubject(prefix, 's'), () => {
        live--;
        release();
      });
      carrier.connectTo(theirs);
      const conn = new Connection(carrier, false, options, false);
      conn.handshake(options.handshakeTimeoutMs).then(
        (root) => listener.offer(root),
        // The failure was published on ftl-ipc:socket:error; the listener carries on.
        () => {},
      );
      msg.respond(carrier.own);
    },
  });
  const listener = new Listener<NatsAddress>(
    {
      address: () => ({ nats: nc, service, prefix }),
      serverAddress: () => nc.getServer(),
      stop: () => {
        if (stopped) return;
        stopped = true;
        sub.unsubscribe();
        release();
      },
    },
    options.backlog ?? 64,
  );
  // The server knows the subscription before anyone is told to connect.
  await nc.flush();
  return listener;
}
