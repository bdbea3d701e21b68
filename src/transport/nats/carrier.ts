import type { NatsConnection } from '@nats-io/transport-node';
import { IpcError } from '../../errors.js';
import type { Carrier, CarrierSink } from '../socket/carrier.js';
import { binding, deriveKeys, Sealer, type Suite } from './seal.js';

/**
 * Each NATS message is `[u64 number][u8 kind][payload][tag]` (docs/nats.md "Messages", the
 * protection in docs/wire-format.md). NATS core is at most once and a reconnect drops what the
 * client had buffered, so the stream messages (data, end, reset) are numbered, kept until the
 * peer acknowledges them, and sent again after a reconnect or when no acknowledgement comes:
 * the receiver takes each number once, in order.
 */
export const HEADER = 9;
const KIND_DATA = 0;
/** No more data from this side (after what was sent). */
const KIND_END = 1;
/** This side gave up on the connection: close now. Its payload is the reason, as text. */
const KIND_RESET = 2;
/** Not numbered: the count of stream messages received in order. */
const KIND_ACK = 3;
/** An ACK that also asks for everything after it now (after a reconnect, or a gap). */
const KIND_RESEND = 4;
const KIND_NAMES = ['data', 'end', 'reset', 'ack', 'resend'];
/** With a secret, the messages before the keys exist travel in clear: HELLO and AUTH (or an ERROR). */
export const CLEAR_MESSAGES = 2;
/** The largest message in clear with a secret: an ERROR frame fits. */
const MAX_CLEAR_BYTES = 2048;
const MAX_EARLY = 8;
const MAX_REASON = 256;
/** Unacknowledged messages are sent again after this long without an acknowledgement. */
export const RESEND_MS = 500;
/** After its end or reset, a carrier waits this long at most for the peer to acknowledge it. */
export const LINGER_MS = 5000;
const MIN_RESEND_GAP_MS = 100;

/** A stream message not yet acknowledged: its bytes as published, and the write it ends. */
interface Unacked {
  msg: Buffer;
  bytes: number;
  done: (() => void) | undefined;
}

/** The live carriers of each NATS connection: one set of hooks per connection, not per carrier. */
const carriers = new WeakMap<NatsConnection, Set<NatsCarrier>>();

function carriersOf(nc: NatsConnection): Set<NatsCarrier> {
  let live = carriers.get(nc);
  if (live === undefined) {
    const set = new Set<NatsCarrier>();
    live = set;
    carriers.set(nc, set);
    void nc.closed().then((err) => {
      for (const c of [...set]) c.connectionClosed(err ?? undefined);
    });
    void (async () => {
      // What was published while the client reconnected is gone: every carrier sends again.
      for await (const s of nc.status()) {
        if (s.type === 'reconnect') for (const c of [...set]) c.reconnected();
      }
    })().catch(() => {
      // The connection closed with an error: `closed()` above tells the carriers.
    });
  }
  return live;
}

export interface NatsCarrierOptions {
  /** The subject this side receives on (its owner subscribes and calls `arrived`). */
  own: string;
  /** The connecting side (it puts its subject in the reply of its first message). */
  client: boolean;
  /** With a secret: how messages after the handshake are protected; undefined without one. */
  suite: Suite | undefined;
  /** Runs once when the carrier is done (unsubscribe, close an owned connection). */
  onFinish: () => void;
}

/**
 * The byte stream of one engine connection over two NATS subjects: this side receives on
 * `own` and publishes to `peer`. Output counts as pending until the peer acknowledged it, so
 * the engine's output budget (`maxOutputBytes`) bounds what is kept for sending again.
 */
export class NatsCarrier implements Carrier {
  readonly kind = 'nats';
  readonly own: string;
  readonly #nc: NatsConnection;
  readonly #client: boolean;
  readonly #suite: Suite | undefined;
  readonly #onFinish: () => void;
  #peer = '';
  #sink: CarrierSink | undefined;
  /** Messages that arrived before the engine started (the peer may speak first). */
  #early: Uint8Array[] = [];
  #maxPayload: number;
  #sendKey: Sealer | undefined;
  #recvKey: Sealer | undefined;
  // Sending: numbers below `#acked` are acknowledged; `#unacked` holds `#acked` to `#sendSeq`.
  #sendSeq = 0;
  #acked = 0;
  #unacked: Unacked[] = [];
  #unackedHead = 0;
  #pending = 0;
  #lastProgress = 0;
  #lastResend = 0;
  #timer: NodeJS.Timeout | undefined;
  // Receiving.
  #recvSeq = 0;
  #ackScheduled = false;
  #endSent = false;
  #resetSent = false;
  /** The engine was told the stream is over (closed); the carrier may linger for acknowledgements. */
  #sinkClosed = false;
  #lingerUntil = 0;
  #finished = false;
  /** Why this side resets, for the peer (sealed like the rest). */
  #reason = '';

  constructor(nc: NatsConnection, options: NatsCarrierOptions) {
    this.#nc = nc;
    this.own = options.own;
    this.#client = options.client;
    this.#suite = options.suite;
    this.#onFinish = options.onFinish;
    this.#maxPayload = Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - HEADER - 32);
    carriersOf(nc).add(this);
  }

  /** Names the subject this side publishes to; before `start`. */
  connectTo(peer: string): void {
    this.#peer = peer;
  }

  get remote(): string {
    return `NATS subject ${this.#peer} via ${this.#nc.getServer()}`;
  }

  get pendingBytes(): number {
    return this.#pending;
  }

  start(sink: CarrierSink): void {
    // After the engine's constructor returns and its handshake began, as a socket's events are.
    queueMicrotask(() => {
      this.#sink = sink;
      if (this.#sinkClosed) sink.closed();
      for (const data of this.#early.splice(0)) this.arrived(data);
    });
  }

  bind(secret: Buffer, clientNonce: Buffer, serverNonce: Buffer): Buffer {
    const suite = this.#suite as Suite;
    const [c, s] = this.#client ? [this.own, this.#peer] : [this.#peer, this.own];
    const bound = binding(suite, c, s);
    const keys = deriveKeys(secret, clientNonce, serverNonce, bound);
    this.#sendKey = new Sealer(suite, this.#client ? keys.c2s : keys.s2c);
    this.#recvKey = new Sealer(suite, this.#client ? keys.s2c : keys.c2s);
    return bound;
  }

  write(buf: Buffer, done: () => void): void {
    if (this.#finished || this.#endSent) return;
    for (let at = 0; at < buf.length; at += this.#maxPayload) {
      const n = Math.min(this.#maxPayload, buf.length - at);
      const last = at + n >= buf.length;
      this.#send(
        KIND_DATA,
        buf.subarray(at, at + n),
        last ? buf.length : 0,
        last ? done : undefined,
      );
    }
    this.#pending += buf.length;
  }

  end(): void {
    if (this.#finished || this.#endSent) return;
    this.#endSent = true;
    this.#send(KIND_END, Buffer.alloc(0), 0, undefined);
  }

  /** Resets the connection: the peer is told (reliably, while this side lingers), the engine now. */
  destroy(): void {
    if (this.#finished) return;
    if (!this.#resetSent) {
      this.#resetSent = true;
      this.#endSent = true;
      this.#send(KIND_RESET, Buffer.from(this.#reason.slice(0, MAX_REASON)), 0, undefined);
    }
    this.#closeSink();
  }

  /** The NATS connection closed for good (by its owner, or out of reconnect attempts). */
  connectionClosed(err: Error | undefined): void {
    if (this.#finished) return;
    this.#sink?.error(err ?? new Error('the NATS connection was closed'));
    this.#finish();
  }

  /** The subscription failed (a permission denied, say). */
  failed(err: Error): void {
    if (this.#finished) return;
    this.#sink?.error(err);
    this.destroy();
  }

  /** The client reconnected, maybe to another server: what it had buffered is lost. */
  reconnected(): void {
    if (this.#finished) return;
    this.#resend(true);
    this.#sendAck(KIND_RESEND);
  }

  /** One message from the peer's subject. */
  arrived(data: Uint8Array): void {
    if (this.#finished) return;
    const sink = this.#sink;
    if (sink === undefined) {
      // Only the peer's HELLO (and AUTH) can come this early; a flood is not held.
      if (this.#early.push(data) > MAX_EARLY) {
        this.#reason = 'too many NATS messages before the handshake';
        this.destroy();
      }
      return;
    }
    if (data.length < HEADER) {
      this.#violation(
        'PROTOCOL_ERROR',
        `a NATS message of ${data.length} bytes, shorter than its header`,
      );
      return;
    }
    const seq = readNumber(data);
    const kind = data[8] as number;
    if (kind === KIND_ACK || kind === KIND_RESEND) {
      this.#ackArrived(seq, kind, data);
      return;
    }
    if (kind > KIND_RESET) {
      this.#violation('PROTOCOL_ERROR', `a NATS message of unknown kind ${kind}`);
      return;
    }
    if (seq < this.#recvSeq) {
      // Sent again (a reconnect, a late acknowledgement): taken already. Our acknowledgement
      // may have been lost, so it goes again.
      this.#scheduleAck();
      return;
    }
    const payload = this.#open(seq, kind, data);
    if (payload === undefined) return;
    if (seq > this.#recvSeq) {
      // Authentic but early: the messages before it were lost. Ask for them again.
      this.#sendAck(KIND_RESEND);
      return;
    }
    this.#recvSeq++;
    if (kind === KIND_DATA) {
      this.#scheduleAck();
      if (!this.#sinkClosed && payload.length > 0) sink.data(payload, 0);
      return;
    }
    this.#sendAck(KIND_ACK);
    if (kind === KIND_END) {
      // As a socket does, answer the peer's end with ours: nothing more flows either way.
      this.end();
      this.#closeSink();
    } else {
      if (!this.#sinkClosed) {
        const why = payload.length > 0 ? `: ${payload.toString('utf8', 0, MAX_REASON)}` : '';
        sink.error(new Error(`the peer reset the connection${why}`));
      }
      this.#finish();
    }
  }

  /** The payload of an authentic stream message, or undefined (the connection then failed). */
  #open(seq: number, kind: number, data: Uint8Array): Buffer | undefined {
    if (this.#suite === undefined || seq < CLEAR_MESSAGES) {
      if (this.#suite !== undefined && data.length > MAX_CLEAR_BYTES) {
        this.#violation(
          'PROTOCOL_ERROR',
          `handshake message ${seq} of ${data.length} bytes, more than ${MAX_CLEAR_BYTES}`,
        );
        return undefined;
      }
      return viewOrCopy(data);
    }
    const plain = this.#recvKey?.open(data, HEADER);
    if (plain === undefined) {
      this.#violation(
        'AUTH_FAILED',
        this.#recvKey === undefined
          ? `NATS message ${seq} (${KIND_NAMES[kind]}) arrived before the handshake gave keys`
          : `NATS message ${seq} (${KIND_NAMES[kind]}, ${data.length} bytes) failed authentication: forged, altered or truncated`,
      );
    }
    return plain;
  }

  #ackArrived(n: number, kind: number, data: Uint8Array): void {
    if (this.#suite !== undefined && data.length !== HEADER) {
      if (this.#recvKey === undefined) return;
      if (this.#recvKey.open(data, HEADER) === undefined) {
        this.#violation(
          'AUTH_FAILED',
          `NATS ${KIND_NAMES[kind]} of message ${n} failed authentication: forged, altered or truncated`,
        );
        return;
      }
    } else if (this.#suite !== undefined && (n > CLEAR_MESSAGES || this.#recvKey !== undefined)) {
      // In clear, an acknowledgement may only speak of the handshake's messages, and only
      // before the keys exist; one still in flight after that is dropped.
      if (n > CLEAR_MESSAGES) {
        this.#violation('AUTH_FAILED', `NATS ${KIND_NAMES[kind]} of message ${n} in clear`);
      }
      return;
    } else if (data.length !== HEADER) {
      this.#violation('PROTOCOL_ERROR', `NATS ${KIND_NAMES[kind]} of ${data.length} bytes`);
      return;
    }
    if (n > this.#sendSeq) {
      this.#violation(
        'PROTOCOL_ERROR',
        `the peer acknowledged ${n} NATS messages; ${this.#sendSeq} were sent`,
      );
      return;
    }
    if (n > this.#acked) this.#release(n);
    // Only a resend about what is kept now: a stale one (replayed, say) does nothing.
    if (kind === KIND_RESEND && n === this.#acked) this.#resend(false);
    if (this.#sinkClosed && this.#acked === this.#sendSeq) this.#finish();
  }

  /** The peer has every message below `n`: their writes are done. */
  #release(n: number): void {
    const q = this.#unacked;
    while (this.#acked < n) {
      const m = q[this.#unackedHead] as Unacked;
      q[this.#unackedHead++] = undefined as never;
      this.#acked++;
      if (m.done !== undefined) {
        this.#pending -= m.bytes;
        m.done();
      }
    }
    if (this.#unackedHead === q.length) {
      q.length = 0;
      this.#unackedHead = 0;
    } else if (this.#unackedHead > 1024 && this.#unackedHead * 2 > q.length) {
      q.splice(0, this.#unackedHead);
      this.#unackedHead = 0;
    }
    this.#lastProgress = Date.now();
  }

  #send(kind: number, payload: Uint8Array, bytes: number, done: (() => void) | undefined): void {
    const seq = this.#sendSeq++;
    const header = headerOf(seq, kind);
    let msg: Buffer;
    if (this.#sendKey !== undefined && seq >= CLEAR_MESSAGES)
      msg = this.#sendKey.seal(header, payload);
    else {
      msg = Buffer.allocUnsafe(HEADER + payload.length);
      header.copy(msg);
      msg.set(payload, HEADER);
    }
    if (this.#unackedHead === this.#unacked.length) this.#lastProgress = Date.now();
    this.#unacked.push({ msg, bytes, done });
    this.#publish(msg, seq);
    this.#timer ??= setInterval(() => this.#tick(), RESEND_MS / 2).unref();
  }

  #publish(msg: Buffer, seq: number): void {
    if (this.#peer === '' || this.#nc.isClosed()) return;
    try {
      // The listener learns the connecting side's subject from its first message.
      if (seq === 0 && this.#client) this.#nc.publish(this.#peer, msg, { reply: this.own });
      else this.#nc.publish(this.#peer, msg);
    } catch (err) {
      this.failed(err as Error);
    }
  }

  /** Sends every unacknowledged message again; at most every 100 ms unless after a reconnect. */
  #resend(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.#lastResend < MIN_RESEND_GAP_MS) return;
    this.#lastResend = now;
    this.#lastProgress = now;
    for (let i = this.#unackedHead; i < this.#unacked.length; i++) {
      this.#publish((this.#unacked[i] as Unacked).msg, this.#acked + i - this.#unackedHead);
    }
  }

  #tick(): void {
    const now = Date.now();
    if (this.#sinkClosed && now >= this.#lingerUntil) {
      this.#finish();
      return;
    }
    if (this.#acked === this.#sendSeq) {
      if (!this.#sinkClosed) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
      return;
    }
    if (now - this.#lastProgress >= RESEND_MS) this.#resend(true);
  }

  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      if (!this.#finished) this.#sendAck(KIND_ACK);
    });
  }

  #sendAck(kind: number): void {
    if (this.#recvSeq === 0 && kind === KIND_ACK) return;
    const header = headerOf(this.#recvSeq, kind);
    const key = this.#sendKey;
    this.#publish(key === undefined ? header : key.seal(header, Buffer.alloc(0)), -1);
  }

  /** What the peer sent cannot be right: the engine fails the connection (and publishes why). */
  #violation(code: 'AUTH_FAILED' | 'PROTOCOL_ERROR', problem: string): void {
    this.#reason = problem;
    const error = new IpcError(
      code,
      `${code === 'AUTH_FAILED' ? 'authentication' : 'protocol error'} on ${this.remote}: ${problem}`,
    );
    if (this.#sink === undefined) this.destroy();
    else this.#sink.error(error);
  }

  #closeSink(): void {
    if (this.#sinkClosed) return;
    this.#sinkClosed = true;
    this.#early = [];
    this.#lingerUntil = Date.now() + LINGER_MS;
    this.#sink?.closed();
    // Nothing to wait for: everything acknowledged, or no peer yet to tell.
    if (this.#acked === this.#sendSeq || this.#peer === '') this.#finish();
    else this.#timer ??= setInterval(() => this.#tick(), RESEND_MS / 2).unref();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearInterval(this.#timer);
    carriersOf(this.#nc).delete(this);
    const unacked = this.#unacked.splice(this.#unackedHead);
    this.#unacked = [];
    for (const m of unacked) m.done?.();
    this.#pending = 0;
    if (!this.#sinkClosed) {
      this.#sinkClosed = true;
      this.#sink?.closed();
    }
    this.#onFinish();
  }
}

/** A refusal in clear, for a connecting side the listener keeps no state for: reset, message 0. */
export function refusal(reason: string): Buffer {
  return Buffer.concat([headerOf(0, KIND_RESET), Buffer.from(reason.slice(0, MAX_REASON))]);
}

function headerOf(seq: number, kind: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt32LE(seq % 0x1_0000_0000, 0);
  h.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), 4);
  h[8] = kind;
  return h;
}

function readNumber(data: Uint8Array): number {
  const lo =
    ((data[0] as number) | ((data[1] as number) << 8) | ((data[2] as number) << 16)) +
    (data[3] as number) * 0x100_0000;
  const hi =
    ((data[4] as number) | ((data[5] as number) << 8) | ((data[6] as number) << 16)) +
    (data[7] as number) * 0x100_0000;
  return hi * 0x1_0000_0000 + lo;
}

/**
 * A message's payload for the engine. The client's data is a view into its socket read buffer
 * and the engine may keep views of what it is given, so it gets that buffer only when this
 * message is most of it.
 */
function viewOrCopy(data: Uint8Array): Buffer {
  const n = data.length - HEADER;
  if (2 * n >= data.buffer.byteLength) return Buffer.from(data.buffer, data.byteOffset + HEADER, n);
  return Buffer.from(data.subarray(HEADER));
}
