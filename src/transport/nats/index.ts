import { createHmac, randomBytes } from 'node:crypto';
import {
  type Msg,
  type NatsConnection,
  type NodeConnectionOptions,
  connect as natsConnect,
  nuid,
  TimeoutError,
} from '@nats-io/transport-node';
import { Channel } from '../../channel/channel.js';
import { Deque } from '../../channel/deque.js';
import { IpcError, type IpcErrorCode } from '../../errors.js';
import {
  Connection,
  type ConnectionOptions,
  resolveConnectionOptions,
  socketDiagnostics,
} from '../socket/connection.js';
import { Listener, type ListenOptions } from '../socket/listen.js';
import { NatsCarrier, refusal } from './carrier.js';
import { SUITES, type Suite } from './seal.js';

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

/** Options of `connect` over NATS, besides the engine's. */
export interface NatsConnectOptions extends ConnectionOptions {
  /**
   * Run without `secret`: every client of the NATS account that may subscribe under the prefix
   * can then read, forge and close the channels (docs/nats.md, "Without a secret"). Required
   * when there is no secret, so that nobody runs so by mistake.
   */
  insecure?: boolean;
  /** With a secret: `aes-256-gcm` (default) seals every message, `hmac-sha256` only authenticates. */
  suite?: Suite;
}

/** Options of `listen` over NATS, besides the engine's. */
export interface NatsListenOptions extends ListenOptions {
  /** As for `connect`. */
  insecure?: boolean;
  /** The suites a client may choose, with a secret. Default `['aes-256-gcm']`. */
  suites?: Suite[];
  /**
   * Most handshakes in progress at once; a client beyond it is refused at once. Default 256.
   * A connect request alone costs no state (docs/nats.md, "Half-open handshakes").
   */
  maxHandshakes?: number;
}

const RECONNECT = { reconnectTimeWait: 250, maxReconnectAttempts: -1 } as const;
const TOKENS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const ID = /^[A-Za-z0-9]{1,64}$/;
/** Longest connect request or answer. */
const MAX_REQUEST = 256;
const REQUEST = /^ftl-ipc nats 1 ([a-z0-9-]{1,32})$/;
const NONE = 'none';
const ANSWER_CODES: IpcErrorCode[] = ['AUTH_FAILED', 'CONNECTION_FAILED'];
const DEFAULT_MAX_HANDSHAKES = 256;
/** Connect requests waiting to be answered; beyond it, dropped (the client asks again). */
const MAX_QUEUED_REQUESTS = 1024;
const REQUEST_BATCH = 64;
/** A refused client asks again after this long, doubling, until its handshake timeout. */
const RETRY_MS = 20;
/** A request without an answer within this long goes again. */
const ASK_MS = 250;
const MAX_RETRY_MS = 500;

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

function checkSuite(value: unknown, name: string): Suite {
  if (!SUITES.includes(value as Suite)) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${name} must be one of ${SUITES.join(', ')}, got ${String(value)}`,
    );
  }
  return value as Suite;
}

/**
 * Checks the options (INVALID_ARGUMENT) and says how messages are protected: the suites this
 * side takes (the first is what `connect` asks for), or none without a secret.
 */
function checkOptions(
  options: NatsConnectOptions & { tls?: unknown; suites?: unknown },
  listening: boolean,
): Suite[] | undefined {
  resolveConnectionOptions(options);
  if (options.tls !== undefined) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      'tls over NATS belongs in the NATS connection options (address.nats.tls)',
    );
  }
  if (options.insecure !== undefined && typeof options.insecure !== 'boolean') {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `insecure must be a boolean, got ${String(options.insecure)}`,
    );
  }
  const named = listening ? options.suites : options.suite;
  if (options.secret === undefined) {
    if (options.insecure !== true) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `a NATS ${listening ? 'listener' : 'connection'} needs a secret: without one, every client of the NATS account that may subscribe under the prefix can read, forge and close its channels (docs/nats.md, "Without a secret"); pass secret, or insecure: true to accept that`,
      );
    }
    if (named !== undefined) {
      throw new IpcError('INVALID_ARGUMENT', `${listening ? 'suites' : 'suite'} needs a secret`);
    }
    return undefined;
  }
  if (options.insecure === true) {
    throw new IpcError('INVALID_ARGUMENT', 'secret and insecure: true contradict each other');
  }
  if (!listening) return [named === undefined ? 'aes-256-gcm' : checkSuite(named, 'suite')];
  if (named === undefined) return ['aes-256-gcm'];
  if (!Array.isArray(named) || named.length === 0) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `suites must be a non-empty array, got ${String(named)}`,
    );
  }
  return named.map((s) => checkSuite(s, 'each of suites'));
}

/** The NATS connection to use, and whether it is ours to close. */
async function open(nats: NatsAddress['nats']): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (typeof nats === 'object' && !Array.isArray(nats) && 'publish' in nats) {
    return { nc: nats, owned: false };
  }
  // A channel outlives the loss of a server: try the others at once, and keep trying while
  // the channels' heartbeat timeout has not given up on the peer (docs/nats.md, "Failover").
  const options: NodeConnectionOptions = {
    ...RECONNECT,
    ...(typeof nats === 'string' || Array.isArray(nats) ? { servers: nats } : nats),
  };
  try {
    return { nc: await natsConnect(options), owned: true };
  } catch (err) {
    throw new IpcError(
      'CONNECTION_FAILED',
      `cannot connect to NATS ${String(options.servers ?? 'localhost:4222')}: ${(err as Error).message} (one attempt; with waitOnFirstConnect: true in the NATS options it tries again every reconnectTimeWait, ${options.reconnectTimeWait} ms here, until a server answers)`,
      { cause: err },
    );
  }
}

/** Closes a connection of ours once what it buffered (a last acknowledgement) reached the server. */
function closeOwned(nc: NatsConnection): void {
  const late = new Promise((resolve) => setTimeout(resolve, 1000).unref());
  void Promise.race([nc.flush().catch(() => {}), late]).then(() => nc.close());
}

/**
 * Asks the listener of `subject` for a connection: the answer comes to `reply`, `<own>.r`, the
 * only reply subject a listener answers. A listener flooded with requests drops those it
 * cannot queue, or answers busy: then the request goes again, until `timeoutMs`.
 */
async function ask(
  nc: NatsConnection,
  subject: string,
  body: string,
  reply: string,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = RETRY_MS; ; wait = Math.min(2 * wait, MAX_RETRY_MS)) {
    const left = deadline - Date.now();
    try {
      const msg = await nc.request(subject, body, {
        timeout: Math.max(1, Math.min(ASK_MS, left)),
        noMux: true,
        reply,
      });
      const answer = msg.data.length <= MAX_REQUEST ? msg.string() : '';
      if (!answer.startsWith('!CONNECTION_FAILED busy') || Date.now() + wait >= deadline) {
        return answer;
      }
    } catch (err) {
      if (!(err instanceof TimeoutError) || Date.now() >= deadline) throw err;
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random())));
  }
}

/** Connects to the listener of `address.service`; resolves with the root channel. */
export async function connectNats(
  address: NatsAddress,
  options: NatsConnectOptions = {},
): Promise<Channel> {
  const { prefix, service } = checkAddress(address);
  const suite = checkOptions(options, false)?.[0];
  const timeout = options.handshakeTimeoutMs ?? 10_000;
  const { nc, owned } = await open(address.nats);
  const own = `${prefix}.c.${nuid.next()}`;
  const sub = nc.subscribe(own, {
    callback: (err, msg) => (err === null ? carrier.arrived(msg.data) : carrier.failed(err)),
  });
  const carrier = new NatsCarrier(nc, {
    own,
    client: true,
    suite,
    onFinish: () => {
      sub.unsubscribe();
      if (owned) closeOwned(nc);
    },
  });
  const subject = `${prefix}.svc.${service}`;
  let answer: string;
  try {
    answer = await ask(nc, subject, `ftl-ipc nats 1 ${suite ?? NONE}`, `${own}.r`, timeout);
  } catch (err) {
    carrier.destroy();
    throw new IpcError(
      'CONNECTION_FAILED',
      `no listener of service ${service} answered on NATS subject ${subject}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const refused = /^!([A-Z_]+) (.*)$/s.exec(answer);
  const base = `${prefix}.s.`;
  const [lid, tok, more] = answer.startsWith(base) ? answer.slice(base.length).split('.') : [];
  if (
    refused !== null ||
    more !== undefined ||
    !ID.test(lid ?? '') ||
    !/^[0-9a-f]{32}$/.test(tok ?? '')
  ) {
    carrier.destroy();
    const code = ANSWER_CODES.find((c) => c === refused?.[1]);
    throw code !== undefined
      ? new IpcError(code, `the listener of ${service} refused: ${refused?.[2]}`)
      : new IpcError(
          'PROTOCOL_ERROR',
          `the listener of ${service} answered ${JSON.stringify(answer.slice(0, 80))}, not a subject under ${base}`,
        );
  }
  carrier.connectTo(answer);
  return new Channel(await new Connection(carrier, true, options).handshake(timeout));
}

/**
 * Listens for `address.service` on NATS (a queue group: several listeners of one service share
 * the connections). Each connection that completes the handshake yields its root channel.
 */
export async function listenNats(
  address: NatsAddress,
  options: NatsListenOptions = {},
): Promise<Listener<NatsAddress>> {
  const { prefix, service } = checkAddress(address);
  const suites = checkOptions(options, true);
  const accepted: string[] = suites ?? [NONE];
  const maxHandshakes = options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES;
  if (!Number.isInteger(maxHandshakes) || maxHandshakes < 1 || maxHandshakes > 1 << 20) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `maxHandshakes must be an integer from 1 to ${1 << 20}, got ${String(maxHandshakes)}`,
    );
  }
  const handshakeMs = resolveConnectionOptions(options).handshakeTimeoutMs;
  const { nc, owned } = await open(address.nats);
  // With a connection of its own, a listener takes requests on a second one: a flood of them
  // then waits in that socket, not in front of the connections' messages.
  const front = owned
    ? (
        await open(address.nats).catch(async (err) => {
          await nc.close();
          throw err;
        })
      ).nc
    : nc;
  // An owned NATS connection lives until the listener stopped and its last connection ended.
  let live = 0;
  let handshakes = 0;
  let stopped = false;
  const subject = `${prefix}.svc.${service}`;
  const clientStart = `${prefix}.c.`;
  /** Every connection of this listener has a subject `<base><token>`; one subscription takes them all. */
  const base = `${prefix}.s.${nuid.next()}.`;
  const connections = new Map<string, NatsCarrier>();
  const cookieKey = randomBytes(32);
  /**
   * The token of a connection: a MAC of the client's subject, the suite and the time, so the
   * listener keeps nothing for a request until the client answers on the subject it was given.
   */
  const cookie = (client: string, suite: string, slot: number) =>
    createHmac('sha256', cookieKey).update(`${client} ${suite} ${slot}`).digest('hex').slice(0, 32);
  const slot = () => Math.floor(Date.now() / handshakeMs);
  const isClient = (s: string) => s.startsWith(clientStart) && ID.test(s.slice(clientStart.length));
  const refuse = (what: string, error: IpcError) => {
    if (socketDiagnostics.error.hasSubscribers) {
      socketDiagnostics.error.publish({ error, remote: `NATS ${what}` });
    }
  };
  const release = () => {
    if (!stopped || live > 0) return;
    streams.unsubscribe();
    if (owned) closeOwned(nc);
  };

  // Only the reply subject `connect` makes, `<prefix>.c.<id>.r`, is ever answered.
  const isAnswerable = (msg: Msg) => {
    const reply = msg.reply ?? '';
    return reply.endsWith('.r') && isClient(reply.slice(0, -2));
  };
  const request = (msg: Msg) => {
    const reply = msg.reply ?? '';
    if (!isAnswerable(msg)) {
      refuse(
        `subject ${subject}`,
        new IpcError(
          'PROTOCOL_ERROR',
          `a connect request on ${subject} asked for an answer on ${JSON.stringify(reply.slice(0, 80))}, not ${clientStart}<id>.r`,
        ),
      );
      return;
    }
    const asked = REQUEST.exec(msg.data.length <= MAX_REQUEST ? msg.string() : '')?.[1];
    let problem: [IpcErrorCode, string] | undefined;
    if (asked === undefined) {
      problem = ['CONNECTION_FAILED', 'a connect request must read "ftl-ipc nats 1 <suite>"'];
    } else if (!accepted.includes(asked)) {
      problem = [
        'AUTH_FAILED',
        suites === undefined
          ? `this listener has no secret and takes only insecure clients, not suite ${asked}`
          : `suite ${asked} is not taken here (${accepted.join(', ')}${asked === NONE ? ', with the shared secret' : ''})`,
      ];
    } else if (handshakes >= maxHandshakes) {
      problem = ['CONNECTION_FAILED', `busy: ${handshakes} handshakes in progress`];
    }
    if (problem === undefined) {
      msg.respond(`${base}${cookie(reply.slice(0, -2), asked as string, slot())}`);
      return;
    }
    msg.respond(`!${problem[0]} ${problem[1]}`);
    refuse(
      `${reply}`,
      new IpcError(problem[0], `refused a connect request from ${reply}: ${problem[1]}`),
    );
  };

  /** The first message on a token: the client got our answer; now it gets state. */
  const first = (token: string, msg: Msg) => {
    const theirs = msg.reply ?? '';
    if (stopped || !isClient(theirs)) return;
    const now = slot();
    const suite = accepted.find(
      (s) => cookie(theirs, s, now) === token || cookie(theirs, s, now - 1) === token,
    );
    if (suite === undefined) {
      refuse(
        `subject ${theirs}`,
        new IpcError(
          'PROTOCOL_ERROR',
          `a message from ${theirs} on ${base}${token}, a subject this listener did not give it (or long ago)`,
        ),
      );
      return;
    }
    if (handshakes >= maxHandshakes) {
      nc.publish(theirs, refusal(`busy: ${handshakes} handshakes in progress`));
      return;
    }
    live++;
    handshakes++;
    const carrier = new NatsCarrier(nc, {
      own: `${base}${token}`,
      client: false,
      suite: suite === NONE ? undefined : (suite as Suite),
      onFinish: () => {
        connections.delete(token);
        live--;
        release();
      },
    });
    connections.set(token, carrier);
    carrier.connectTo(theirs);
    const conn = new Connection(carrier, false, options, false);
    conn.handshake(handshakeMs).then(
      (root) => {
        handshakes--;
        listener.offer(root);
      },
      // The failure was published on ftl-ipc:socket:error; the listener carries on.
      () => handshakes--,
    );
    carrier.arrived(msg.data);
  };

  // Requests wait in a bounded queue and are answered a batch per turn: a flood of them only
  // costs each its place in the queue (or a refusal), and the connections' messages, which the
  // client delivers in the same reads, are not held up behind the work of answering.
  const queued = new Deque<Msg>();
  const drain = () => {
    for (let i = 0; i < REQUEST_BATCH && queued.length > 0; i++) request(queued.shift() as Msg);
    if (stopped) queued.drain();
    else if (queued.length > 0) setImmediate(drain);
  };
  const requests = front.subscribe(subject, {
    queue: subject,
    callback: (err, msg) => {
      if (err !== null || stopped) return;
      // Beyond the queue, a request is dropped unanswered, the cheapest refusal; the client
      // asks again after 250 ms.
      if (queued.length >= MAX_QUEUED_REQUESTS) return;
      queued.push(msg);
      if (queued.length === 1) setImmediate(drain);
    },
  });
  const streams = nc.subscribe(`${base}*`, {
    callback: (err, msg) => {
      if (err !== null) {
        for (const c of connections.values()) c.failed(err);
        return;
      }
      const token = msg.subject.slice(base.length);
      const carrier = connections.get(token);
      if (carrier !== undefined) carrier.arrived(msg.data);
      else first(token, msg);
    },
  });
  const listener = new Listener<NatsAddress>(
    {
      address: () => ({ nats: nc, service, prefix }),
      serverAddress: () => nc.getServer(),
      stop: () => {
        if (stopped) return;
        stopped = true;
        requests.unsubscribe();
        if (front !== nc) void front.close();
        release();
      },
    },
    options.backlog ?? 64,
  );
  // The server knows the subscriptions before anyone is told to connect.
  await Promise.all([nc.flush(), front.flush()]);
  return listener;
}
